// Package dbtest gives tests real, isolated Postgres: a transaction rolled back after each
// test in a schema migrated once per test binary (TestTx), or a whole migrated schema for
// tests that commit or run a started River client (TestSchema).
//
// The server comes from TEST_DATABASE_URL, else from the same discovery every pipewatch
// command uses (internal/devdb): the default server postgres://localhost:5432 or a
// private instance started from the installed PostgreSQL binaries, with the database
// pipewatch_test (created when missing). When none can be had the tests are skipped,
// except with CI=true, where they fail: CI never passes by skipping.
package dbtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/pipewatch/pipewatch/internal/devdb"
	"github.com/pipewatch/pipewatch/migrations"
)

// Database is the test database on a discovered server.
const Database = "pipewatch_test"

// schemaTTL is how old a leftover test schema must be before a later run drops it.
const schemaTTL = time.Hour

var (
	shared struct {
		once   sync.Once
		pool   *pgxpool.Pool
		schema string
		// err is why no server could be reached; migrateErr why the shared schema failed.
		err, migrateErr error
	}
	schemaSeq atomic.Int64
)

// URL returns the connection string of the test database, for tests that start
// processes or open their own connections. Like TestTx, it skips (or fails with CI=true)
// when there is no database.
func URL(ctx context.Context, tb testing.TB) string {
	tb.Helper()
	pool, _ := sharedSchema(ctx, tb)
	return pool.Config().ConnString()
}

// SchemaURL is URL with the search_path set to schema (from TestSchema), so that a
// separate process works in that schema.
func SchemaURL(ctx context.Context, tb testing.TB, schema string) string {
	tb.Helper()
	u, err := url.Parse(URL(ctx, tb))
	if err != nil {
		tb.Fatalf("dbtest: parsing the test database URL: %v", err)
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		tb.Fatalf("dbtest: SchemaURL needs a postgres:// URL in TEST_DATABASE_URL, got scheme %q", u.Scheme)
	}
	q := u.Query()
	q.Set("options", "-c search_path="+schema)
	u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20") // pgx reads "+" literally
	return u.String()
}

// Main runs the package's tests, closes the shared pool and checks for leaked goroutines.
// Use it as the body of TestMain in every package that touches the database.
func Main(m *testing.M) {
	before := goleak.IgnoreCurrent() // goroutines that predate the tests are not theirs
	code := m.Run()
	if shared.pool != nil {
		shared.pool.Close()
	}
	if code == 0 {
		if err := goleak.Find(before); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// TestTx returns a transaction whose search_path is this test binary's migrated schema.
// It is rolled back when the test ends, so tests can run in parallel and leave nothing.
// Code under test that calls Begin on it gets a savepoint.
func TestTx(ctx context.Context, tb testing.TB) pgx.Tx {
	tb.Helper()
	pool, schema := sharedSchema(ctx, tb)
	tx, err := pool.Begin(ctx)
	if err != nil {
		tb.Fatalf("dbtest: beginning test transaction: %v", err)
	}
	tb.Cleanup(func() { _ = tx.Rollback(context.WithoutCancel(ctx)) })
	if _, err := tx.Exec(ctx, "SET LOCAL search_path TO "+pgx.Identifier{schema}.Sanitize()); err != nil {
		tb.Fatalf("dbtest: setting search_path: %v", err)
	}
	return tx
}

// TestSchema creates a freshly migrated schema for one test and returns its name and a
// pool whose connections use it. Use it where the code under test commits, holds several
// connections or runs a River client (configure the client with Schema: schema). The
// schema is dropped when the test ends.
func TestSchema(ctx context.Context, tb testing.TB) (string, *pgxpool.Pool) {
	tb.Helper()
	admin, _ := sharedSchema(ctx, tb)
	schema := newSchemaName()
	pool := migratedSchema(ctx, tb, admin, schema)
	tb.Cleanup(func() {
		pool.Close()
		if _, err := admin.Exec(context.WithoutCancel(ctx), "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			tb.Logf("dbtest: dropping schema %s: %v", schema, err)
		}
	})
	return schema, pool
}

// EmptySchema creates an empty schema (no migrations) for one test and returns its name
// and a pool whose connections use it: for tests of the migrations themselves. The
// schema is dropped when the test ends.
func EmptySchema(ctx context.Context, tb testing.TB) (string, *pgxpool.Pool) {
	tb.Helper()
	admin, _ := sharedSchema(ctx, tb)
	schema := newSchemaName()
	pool, err := createSchema(ctx, admin, schema)
	if err != nil {
		tb.Fatalf("dbtest: %v", err)
	}
	tb.Cleanup(func() {
		pool.Close()
		if _, err := admin.Exec(context.WithoutCancel(ctx), "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			tb.Logf("dbtest: dropping schema %s: %v", schema, err)
		}
	})
	return schema, pool
}

// sharedSchema connects once per test binary and migrates one schema for TestTx.
func sharedSchema(ctx context.Context, tb testing.TB) (*pgxpool.Pool, string) {
	tb.Helper()
	shared.once.Do(func() {
		ctx := context.WithoutCancel(ctx)
		shared.pool, shared.err = connect(ctx)
		if shared.err != nil {
			return
		}
		dropExpiredSchemas(ctx, shared.pool)
		shared.schema = newSchemaName()
		var p *pgxpool.Pool
		p, shared.migrateErr = migrate(ctx, shared.pool, shared.schema)
		if p != nil {
			p.Close()
		}
	})
	if shared.migrateErr != nil {
		// A server that answers but can't take the schema is a failure, never a skip.
		tb.Fatalf("dbtest: %v", shared.migrateErr)
	}
	if shared.err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("dbtest: no test database (CI=true, so this fails instead of skipping): %v", shared.err)
		}
		tb.Skipf("dbtest: no test database, skipping: %v", shared.err)
	}
	return shared.pool, shared.schema
}

func connect(ctx context.Context) (*pgxpool.Pool, error) {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	discovery := &devdb.Discovery{EnvVar: "TEST_DATABASE_URL", Database: Database,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	u, err := discovery.URL(ctx)
	if err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(u)
	if err != nil {
		return nil, fmt.Errorf("parsing the test database URL: %w", err)
	}
	if !strings.Contains(u, "pool_max_conns") {
		cfg.MaxConns = 10 // packages run in parallel; keep the total under max_connections
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

func migratedSchema(ctx context.Context, tb testing.TB, admin *pgxpool.Pool, schema string) *pgxpool.Pool {
	tb.Helper()
	pool, err := migrate(ctx, admin, schema)
	if err != nil {
		tb.Fatalf("dbtest: %v", err)
	}
	return pool
}

// migrate creates schema and applies every migration in it, returning a small pool
// whose search_path is the schema.
func migrate(ctx context.Context, admin *pgxpool.Pool, schema string) (*pgxpool.Pool, error) {
	pool, err := createSchema(ctx, admin, schema)
	if err != nil {
		return nil, err
	}
	if err := migrations.Up(ctx, pool, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		pool.Close()
		return nil, fmt.Errorf("migrating schema %s: %w", schema, err)
	}
	return pool, nil
}

// createSchema creates schema and returns a small pool whose search_path is it.
func createSchema(ctx context.Context, admin *pgxpool.Pool, schema string) (*pgxpool.Pool, error) {
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		return nil, fmt.Errorf("creating schema %s: %w", schema, err)
	}
	cfg := admin.Config().Copy()
	cfg.MaxConns = 5
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("opening pool on schema %s: %w", schema, err)
	}
	return pool, nil
}

// newSchemaName returns test_<package>_<hash>_<unix seconds>_<n>: unique per process,
// recognisable, and dated so that later runs can drop what a killed run left behind.
func newSchemaName() string {
	wd, _ := os.Getwd()
	sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%d", wd, os.Getpid())) // two binaries of one package never share a name
	pkg := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, strings.ToLower(filepath.Base(wd)))
	return fmt.Sprintf("test_%s_%s_%d_%d", pkg, hex.EncodeToString(sum[:3]), time.Now().Unix(), schemaSeq.Add(1))
}

func dropExpiredSchemas(ctx context.Context, pool *pgxpool.Pool) {
	rows, err := pool.Query(ctx, `SELECT nspname FROM pg_namespace WHERE nspname LIKE 'test\_%'`)
	if err != nil {
		return
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return
	}
	for _, name := range names {
		parts := strings.Split(name, "_")
		if len(parts) < 3 {
			continue
		}
		ts, err := strconv.ParseInt(parts[len(parts)-2], 10, 64)
		if err != nil || time.Since(time.Unix(ts, 0)) < schemaTTL {
			continue
		}
		_, _ = pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE")
	}
}
