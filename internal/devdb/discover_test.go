package devdb_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/dbtest"
	"github.com/pipewatch/pipewatch/internal/devdb"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

func noEnv(string) (string, bool) { return "", false }

// withDatabase returns the test server's URL with another database name.
func withDatabase(t *testing.T, base, name string) string {
	t.Helper()
	u, err := url.Parse(base)
	require.NoError(t, err)
	u.Path = "/" + name
	return u.String()
}

func randomName(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func TestDiscovery(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("EnvironmentURLIsUsedAsIs", func(t *testing.T) {
		t.Parallel()
		server := dbtest.URL(ctx, t)
		d := &devdb.Discovery{EnvVar: "DATABASE_URL", Database: "unused", DefaultURL: "postgres://127.0.0.1:1/unused",
			LookupEnv: func(name string) (string, bool) { return server, name == "DATABASE_URL" }}
		got, err := d.URL(ctx)
		require.NoError(t, err)
		require.Equal(t, server, got)
	})

	t.Run("ExistingServer", func(t *testing.T) {
		t.Parallel()
		server := dbtest.URL(ctx, t)
		d := &devdb.Discovery{EnvVar: "DATABASE_URL", Database: "pipewatch_test", DefaultURL: server, LookupEnv: noEnv,
			LookPath: func(string) (string, error) {
				t.Error("looked for binaries although a server answers")
				return "", exec.ErrNotFound
			}}
		pool, err := d.Open(ctx)
		require.NoError(t, err)
		defer pool.Close()
		var one int
		require.NoError(t, pool.QueryRow(ctx, "SELECT 1").Scan(&one))
		require.Equal(t, 1, one)
	})

	t.Run("CreatesTheMissingDatabase", func(t *testing.T) {
		t.Parallel()
		server := dbtest.URL(ctx, t)
		name := randomName("pipewatch_devdb_")
		d := &devdb.Discovery{EnvVar: "DATABASE_URL", Database: name, DefaultURL: withDatabase(t, server, name), LookupEnv: noEnv}
		t.Cleanup(func() {
			conn, err := pgx.Connect(ctx, server)
			require.NoError(t, err)
			defer conn.Close(ctx)
			_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			require.NoError(t, err)
		})
		// Several processes may start at once: each must succeed.
		var wg sync.WaitGroup
		errs := make([]error, 3)
		for i := range errs {
			wg.Go(func() { _, errs[i] = d.URL(ctx) })
		}
		wg.Wait()
		require.NoError(t, errors.Join(errs...))

		conn, err := pgx.Connect(ctx, server)
		require.NoError(t, err)
		defer conn.Close(ctx)
		var exists bool
		require.NoError(t, conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", name).Scan(&exists))
		require.True(t, exists)
	})

	t.Run("ServerThatRefusesIsNotReplaced", func(t *testing.T) {
		t.Parallel()
		u, err := url.Parse(dbtest.URL(ctx, t))
		require.NoError(t, err)
		u.User = url.User("no_such_role_pipewatch")
		d := &devdb.Discovery{EnvVar: "DATABASE_URL", Database: "pipewatch_test", DefaultURL: u.String(), LookupEnv: noEnv,
			LookPath: func(string) (string, error) {
				t.Error("looked for binaries although a server answers")
				return "", exec.ErrNotFound
			}}
		_, err = d.URL(ctx)
		require.Error(t, err)
		require.NotErrorIs(t, err, devdb.ErrNoServer)
		require.Contains(t, err.Error(), `connecting to database "pipewatch_test" as "no_such_role_pipewatch"`)
		require.Contains(t, err.Error(), "(DATABASE_URL is unset, so pipewatch tried the default server; set DATABASE_URL to choose another)")
	})

	t.Run("ClearErrorWhenNothingAnswersAndNoBinaries", func(t *testing.T) {
		t.Parallel()
		addr := closedPort(t)
		d := &devdb.Discovery{EnvVar: "DATABASE_URL", Database: "pipewatch", DefaultURL: "postgres://" + addr + "/pipewatch",
			LookupEnv: noEnv,
			LookPath:  func(string) (string, error) { return "", exec.ErrNotFound },
			Glob:      func(string) ([]string, error) { return nil, nil },
		}
		_, err := d.URL(ctx)
		require.ErrorIs(t, err, devdb.ErrNoServer)
		require.Equal(t, "no PostgreSQL server answers at postgres://"+addr+"/pipewatch and no PostgreSQL server binaries (initdb, pg_ctl) are installed.\n"+
			"Do one of these:\n"+
			"  - set DATABASE_URL to your server, e.g. export DATABASE_URL=postgres://user:password@host:5432/pipewatch\n"+
			"  - install PostgreSQL (Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql), and pipewatch starts a private instance by itself\n"+
			"  - run `docker compose up -d postgres` in the repository and export DATABASE_URL=postgres://pipewatch:pipewatch@localhost:5432/pipewatch",
			err.Error())
	})

	t.Run("UnreachableEnvironmentURL", func(t *testing.T) {
		t.Parallel()
		addr := closedPort(t)
		d := &devdb.Discovery{EnvVar: "DATABASE_URL", Database: "pipewatch",
			LookupEnv: func(string) (string, bool) { return "postgres://app:s3cret@" + addr + "/pipewatch", true },
			LookPath: func(string) (string, error) {
				t.Error("DATABASE_URL is set: no private instance")
				return "", exec.ErrNotFound
			}}
		_, err := d.URL(ctx)
		require.ErrorIs(t, err, devdb.ErrNoServer)
		require.Contains(t, err.Error(), "using DATABASE_URL: no PostgreSQL server answers at 127.0.0.1:")
	})
}

// TestPrivateInstance really starts PostgreSQL from the installed binaries in a
// temporary directory, as the discovery does when no server answers.
func TestPrivateInstance(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if _, err := exec.LookPath("initdb"); err != nil && len(dirs) == 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true and no PostgreSQL server binaries are installed")
		}
		t.Skip("no PostgreSQL server binaries installed")
	}
	base := t.TempDir()
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		// The instance runs as the postgres user, who must be able to enter the temp dir.
		for dir := base; dir != os.TempDir() && dir != "/"; dir = filepath.Dir(dir) {
			require.NoError(t, os.Chmod(dir, 0o755))
		}
		u, err := user.Lookup("postgres")
		require.NoError(t, err)
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	_, portText, err := net.SplitHostPort(closedPort(t))
	require.NoError(t, err)
	port, err := strconv.Atoi(portText)
	require.NoError(t, err)

	var logs bytes.Buffer
	var logMu sync.Mutex
	d := &devdb.Discovery{
		EnvVar: "DATABASE_URL", Database: "pipewatch", DefaultURL: "postgres://" + closedPort(t) + "/pipewatch",
		LookupEnv: noEnv, Dir: base, Port: port,
		Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, nil)),
	}
	t.Cleanup(func() {
		matches, _ := filepath.Glob(filepath.Join(base, "postgres-*", "data"))
		for _, data := range matches {
			version := filepath.Base(filepath.Dir(data))[len("postgres-"):]
			cmd := exec.Command(filepath.Join("/usr/lib/postgresql", version, "bin", "pg_ctl"), "stop", "-m", "immediate", "-D", data)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("stopping the private instance: %v: %s", err, out)
			}
		}
	})

	start := time.Now()
	u, err := d.URL(ctx)
	require.NoError(t, err)
	t.Logf("private instance up in %s: %s", time.Since(start), u)
	require.Equal(t, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/pipewatch?sslmode=disable", port), u)

	conn, err := pgx.Connect(ctx, u)
	require.NoError(t, err)
	var db string
	require.NoError(t, conn.QueryRow(ctx, "SELECT current_database()").Scan(&db))
	require.Equal(t, "pipewatch", db)
	require.NoError(t, conn.Close(ctx))

	logMu.Lock()
	first := logs.String()
	logs.Reset()
	logMu.Unlock()
	require.Contains(t, first, "devdb: creating a private PostgreSQL instance")
	require.Contains(t, first, "devdb: no PostgreSQL server answers; starting a private instance")
	if os.Geteuid() == 0 {
		require.Contains(t, first, "running as root; running the private PostgreSQL instance as the postgres user")
	}

	// A later run reuses the running instance and its data.
	again, err := d.URL(ctx)
	require.NoError(t, err)
	require.Equal(t, u, again)
	logMu.Lock()
	require.Contains(t, logs.String(), "devdb: using the private PostgreSQL instance")
	require.NotContains(t, logs.String(), "creating a private")
	logMu.Unlock()
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
