package devdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultPrivatePort is where a private instance listens (on 127.0.0.1): fixed, so that
// later runs find the instance an earlier run started, and not 5432, so that it never
// takes the place of a real server.
const DefaultPrivatePort = 54329

// ErrNoServer is wrapped by the error Discover returns when no server answers and no
// private instance can be started.
var ErrNoServer = errors.New("no PostgreSQL server answers")

// Discovery finds the Postgres server pipewatch uses, in this order:
//
//  1. the URL in the environment variable EnvVar, when set (used as is);
//  2. the default server, postgres://localhost:5432/<Database>, when one answers;
//  3. a private instance in the user's cache directory, started with the PostgreSQL
//     server binaries when they are installed (initdb and pg_ctl on PATH or under
//     /usr/lib/postgresql/*/bin, newest version first), and reused by later runs;
//
// and otherwise fails with one message that says what to do. In every case the
// database is created when missing. The fields after Logger exist for tests; their zero
// values use the real system.
type Discovery struct {
	// EnvVar names the environment variable holding the URL (DATABASE_URL).
	EnvVar string
	// Database is the database used on the default server or a private instance.
	Database string
	Logger   *slog.Logger

	// LookupEnv reads the environment (os.LookupEnv).
	LookupEnv func(string) (string, bool)
	// DefaultURL is the server tried when EnvVar is unset (postgres://localhost:5432/<Database>).
	DefaultURL string
	// LookPath and Glob find the server binaries (exec.LookPath, filepath.Glob).
	LookPath func(string) (string, error)
	Glob     func(string) ([]string, error)
	// Dir is where private instances live (<user cache dir>/pipewatch; as root
	// /var/cache/pipewatch, since the postgres user can't enter /root).
	Dir string
	// Port is the private instance's port (DefaultPrivatePort).
	Port int
}

// Open discovers the database and returns a pool on it, checked with a ping.
func (d *Discovery) Open(ctx context.Context) (*pgxpool.Pool, error) {
	u, err := d.URL(ctx)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.New(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("opening database pool: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("pinging database: %w", err)
	}
	return pool, nil
}

// URL returns the connection string of a reachable server whose database exists.
func (d *Discovery) URL(ctx context.Context) (string, error) {
	lookupEnv := d.LookupEnv
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	if u, ok := lookupEnv(d.EnvVar); ok && u != "" {
		if err := EnsureDatabase(ctx, u); err != nil {
			return "", fmt.Errorf("using %s: %w", d.EnvVar, err)
		}
		return u, nil
	}
	def := d.DefaultURL
	if def == "" {
		def = "postgres://localhost:5432/" + url.PathEscape(d.Database)
	}
	probeCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err := EnsureDatabase(probeCtx, def)
	cancel()
	if err == nil {
		return def, nil
	}
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	if !errors.Is(err, ErrNoServer) {
		return "", fmt.Errorf("%w\n(%s is unset, so pipewatch tried the default server; set %s to choose another)", err, d.EnvVar, d.EnvVar)
	}
	bin, version, err := d.findBinaries()
	if err != nil {
		return "", err
	}
	if bin == "" {
		return "", fmt.Errorf("%w at %s and no PostgreSQL server binaries (initdb, pg_ctl) are installed.\n"+
			"Do one of these:\n"+
			"  - set %s to your server, e.g. export %s=postgres://user:password@host:5432/%s\n"+
			"  - install PostgreSQL (Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql), "+
			"and pipewatch starts a private instance by itself\n"+
			"  - run `docker compose up -d postgres` in the repository and export %s=postgres://pipewatch:pipewatch@localhost:5432/%s",
			ErrNoServer, redact(def), d.EnvVar, d.EnvVar, d.Database, d.EnvVar, d.Database)
	}
	inst := &privateInstance{bin: bin, version: version, dir: d.instanceDir(version), port: d.port(), logger: d.logger()}
	u, err := inst.start(ctx)
	if err != nil {
		return "", fmt.Errorf("%w at %s; starting a private PostgreSQL %s in %s: %w\n"+
			"(or set %s to a server you run)", ErrNoServer, redact(def), version, inst.dir, err, d.EnvVar)
	}
	u += "/" + url.PathEscape(d.Database) + "?sslmode=disable"
	if err := EnsureDatabase(ctx, u); err != nil {
		return "", fmt.Errorf("creating database %s on the private instance in %s: %w", d.Database, inst.dir, err)
	}
	return u, nil
}

func (d *Discovery) logger() *slog.Logger {
	if d.Logger != nil {
		return d.Logger
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func (d *Discovery) port() int {
	if d.Port != 0 {
		return d.Port
	}
	return DefaultPrivatePort
}

func (d *Discovery) instanceDir(version string) string {
	base := d.Dir
	if base == "" {
		base = "/var/cache/pipewatch"
		if cache, err := os.UserCacheDir(); err == nil && os.Geteuid() != 0 {
			base = filepath.Join(cache, "pipewatch")
		}
	}
	return filepath.Join(base, "postgres-"+version)
}

// findBinaries returns the directory holding initdb, pg_ctl and postgres and the major
// version, or "" when none is installed: PATH first, then /usr/lib/postgresql/*/bin
// newest first.
func (d *Discovery) findBinaries() (dir, version string, err error) {
	lookPath, glob := d.LookPath, d.Glob
	if lookPath == nil {
		lookPath = exec.LookPath
	}
	if glob == nil {
		glob = filepath.Glob
	}
	var candidates []string
	if p, err := lookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		candidates = append(candidates, filepath.Dir(p))
	}
	dirs, err := glob("/usr/lib/postgresql/*/bin")
	if err != nil {
		return "", "", fmt.Errorf("looking for PostgreSQL binaries: %w", err)
	}
	sortByVersionDesc(dirs)
	candidates = append(candidates, dirs...)
	for _, c := range candidates {
		if !isExecutable(filepath.Join(c, "initdb")) || !isExecutable(filepath.Join(c, "pg_ctl")) {
			continue
		}
		v, err := majorVersion(filepath.Join(c, "pg_ctl"))
		if err != nil {
			d.logger().Warn("devdb: skipping PostgreSQL binaries", "dir", c, "error", err)
			continue
		}
		return c, v, nil
	}
	return "", "", nil
}

// redact drops the password from a URL for messages.
func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "the configured server"
	}
	return p.Redacted()
}
