package devdb

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// privateInstance is a PostgreSQL server pipewatch runs for itself in dir, listening on
// 127.0.0.1:port with trust authentication for the superuser "postgres". It keeps
// running after pipewatch exits so that the next run reuses it (and its data).
type privateInstance struct {
	bin, version string
	dir          string
	port         int
	logger       *slog.Logger
}

// PrivateSuperuser is the superuser of a private instance.
const PrivateSuperuser = "postgres"

func (p *privateInstance) dataDir() string { return filepath.Join(p.dir, "data") }

// start initializes the instance when new, starts it when it is not running, and
// returns its URL without a database path. Concurrent callers serialize on a lock file.
func (p *privateInstance) start(ctx context.Context) (string, error) {
	cred, err := p.credential()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return "", fmt.Errorf("creating the instance directory: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(p.dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", fmt.Errorf("opening the instance lock: %w", err)
	}
	defer lock.Close() // releases the lock
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("locking the instance: %w", err)
	}

	if cred != nil {
		if err := os.Chown(p.dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return "", fmt.Errorf("handing the instance directory to the postgres user: %w", err)
		}
	}
	if _, err := os.Stat(filepath.Join(p.dataDir(), "PG_VERSION")); os.IsNotExist(err) {
		if err := p.initdb(ctx, cred); err != nil {
			return "", err
		}
	}
	if p.run(ctx, cred, "pg_ctl", "status", "-D", p.dataDir()) == nil {
		p.logger.InfoContext(ctx, "devdb: using the private PostgreSQL instance", "dir", p.dir, "port", p.port)
		return p.url(), nil
	}
	p.logger.InfoContext(ctx, "devdb: no PostgreSQL server answers; starting a private instance",
		"version", p.version, "dir", p.dir, "port", p.port,
		"stop_with", fmt.Sprintf("%s stop -D %s", filepath.Join(p.bin, "pg_ctl"), p.dataDir()))
	err = p.run(ctx, cred, "pg_ctl", "start", "-w", "-t", "60", "-D", p.dataDir(),
		"-l", filepath.Join(p.dir, "postgres.log"), "-o", "-p "+strconv.Itoa(p.port))
	if err != nil {
		return "", fmt.Errorf("%w (server log: %s)", err, filepath.Join(p.dir, "postgres.log"))
	}
	return p.url(), nil
}

func (p *privateInstance) url() string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d", PrivateSuperuser, p.port)
}

func (p *privateInstance) initdb(ctx context.Context, cred *syscall.Credential) error {
	p.logger.InfoContext(ctx, "devdb: creating a private PostgreSQL instance", "version", p.version, "dir", p.dir)
	if err := p.run(ctx, cred, "initdb", "-D", p.dataDir(), "-U", PrivateSuperuser, "--auth=trust",
		"--encoding=UTF8", "--locale=C", "--no-instructions"); err != nil {
		_ = os.RemoveAll(p.dataDir()) // a half-made cluster would stop every later run
		return err
	}
	conf := fmt.Sprintf("\n# pipewatch private instance\nlisten_addresses = '127.0.0.1'\nport = %d\n"+
		"unix_socket_directories = ''\nmax_connections = 200\n", p.port)
	f, err := os.OpenFile(filepath.Join(p.dataDir(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("configuring the private instance: %w", err)
	}
	if _, err := f.WriteString(conf); err != nil {
		f.Close()
		return fmt.Errorf("configuring the private instance: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("configuring the private instance: %w", err)
	}
	return nil
}

// credential returns the postgres user's ids when running as root (initdb and the
// server refuse to run as root), else nil.
func (p *privateInstance) credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, and PostgreSQL refuses to run as root; there is no `postgres` user "+
			"to run it as (create one with `useradd --system postgres`, or run pipewatch as another user): %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("reading the postgres user's uid: %w", err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("reading the postgres user's gid: %w", err)
	}
	p.logger.Info("devdb: running as root; running the private PostgreSQL instance as the postgres user",
		"uid", uid, "gid", gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// run runs one of the server binaries (as cred when set) and returns its output in
// the error when it fails.
func (p *privateInstance) run(ctx context.Context, cred *syscall.Credential, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(p.bin, name), args...)
	cmd.Dir = p.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	// Its own process group: a Ctrl-C meant for pipewatch must not stop the server.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// pg_ctl start leaves the server running with our pipes as its stdout/stderr
	// unless -l is given (it is); WaitDelay bounds the wait for stray holders anyway.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("running %s %s: %w: %s", name, args[0], err, strings.TrimSpace(out.String()))
	}
	return nil
}

var versionPattern = regexp.MustCompile(`\(PostgreSQL\) (\d+)`)

// majorVersion asks pg_ctl for its major version ("15").
func majorVersion(pgCtl string) (string, error) {
	out, err := exec.Command(pgCtl, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("running %s --version: %w", pgCtl, err)
	}
	m := versionPattern.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("reading the version in %q", strings.TrimSpace(string(out)))
	}
	return string(m[1]), nil
}

// sortByVersionDesc orders /usr/lib/postgresql/<version>/bin directories newest first.
func sortByVersionDesc(dirs []string) {
	version := func(dir string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(dir)), 64)
		return v
	}
	slices.SortStableFunc(dirs, func(a, b string) int {
		va, vb := version(a), version(b)
		switch {
		case va > vb:
			return -1
		case va < vb:
			return 1
		}
		return 0
	})
}

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}
