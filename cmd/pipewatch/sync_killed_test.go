package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/connectors/hubspot/hubspottest"
	"github.com/pipewatch/pipewatch/internal/credentials"
	"github.com/pipewatch/pipewatch/internal/dbtest"
	"github.com/pipewatch/pipewatch/internal/secrets"
)

// interruptedSync is a `pipewatch sync` of a 3,000-deal HubSpot portal, to be interrupted
// at its sixth search page.
type interruptedSync struct {
	pool *pgxpool.Pool
	want []string
	// run starts the sync process; interrupt runs while its sixth search request is in
	// flight.
	run func(interrupt func(cmd *exec.Cmd)) ([]byte, error)
	// appName is the application_name of the process's database sessions.
	appName string
}

func newInterruptedSync(t *testing.T) *interruptedSync {
	t.Helper()
	ctx := context.Background()
	bin := buildBinary(t)
	schema, pool := dbtest.TestSchema(ctx, t)

	key := make([]byte, 32)
	_, err := rand.Read(key)
	require.NoError(t, err)
	box, err := secrets.New(key)
	require.NoError(t, err)

	fake := hubspottest.New(hubspottest.Options{})
	t.Cleanup(fake.Close)
	fake.GenerateOwners(4)
	want := fake.GenerateDeals(3000, hubspottest.GenerateOptions{SharedModified: 450})
	slices.Sort(want)

	// The sync reaches the fake through a proxy that interrupts at the sixth search page,
	// while the request is in flight.
	target, err := url.Parse(fake.URL)
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	// A fresh connection per request: a kept-alive one the fake dropped when the victim
	// died would fail the next run's POST, which the proxy cannot retry.
	proxy.Transport = &http.Transport{DisableKeepAlives: true}
	var (
		searches  atomic.Int64
		interrupt atomic.Pointer[func()]
	)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/crm/v3/objects/deals/search" && searches.Add(1) == 6 {
			if f := interrupt.Load(); f != nil {
				(*f)()
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)

	cfg, err := json.Marshal(map[string]any{"base_url": front.URL, "schedule": "15m"})
	require.NoError(t, err)
	var connID int64
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO connections (name, kind, config) VALUES ('hubspot-main', 'hubspot', $1) RETURNING id`, cfg).Scan(&connID))
	require.NoError(t, (&credentials.Store{Box: box}).Save(ctx, pool, connID, credentials.Credentials{Token: fake.AddPrivateAppToken()}))

	s := &interruptedSync{pool: pool, want: want, appName: "pipewatch-sync-" + schema}
	dbURL, err := url.Parse(dbtest.SchemaURL(ctx, t, schema))
	require.NoError(t, err)
	q := dbURL.Query()
	q.Set("application_name", s.appName)
	dbURL.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20")
	env := append(os.Environ(), "DATABASE_URL="+dbURL.String(), secrets.EnvKey+"="+hex.EncodeToString(key))
	s.run = func(f func(cmd *exec.Cmd)) ([]byte, error) {
		cmd := exec.Command(bin, "sync", "--connection", "hubspot-main", "--stream", "deals")
		cmd.Env = env
		if f != nil {
			searches.Store(0)
			call := func() { f(cmd) }
			interrupt.Store(&call)
		} else {
			interrupt.Store(nil)
		}
		return cmd.CombinedOutput()
	}
	return s
}

// requireExact checks that the deals are an exact copy of the portal, each stay in a
// stage recorded once, and the runs' statuses are want.
func (s *interruptedSync) requireExact(t *testing.T, statuses ...string) {
	t.Helper()
	ctx := context.Background()
	rows, err := s.pool.Query(ctx, `SELECT external_id FROM deals WHERE deleted_at IS NULL ORDER BY external_id`)
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, s.want, got, "every deal exactly once")

	var dupStays int64
	require.NoError(t, s.pool.QueryRow(ctx, `SELECT count(*) - count(DISTINCT (deal_id, stage_external_id, entered_at)) FROM deal_stage_history`).Scan(&dupStays))
	require.Zero(t, dupStays)
	rows, err = s.pool.Query(ctx, `SELECT status FROM sync_runs WHERE stream = 'deals' ORDER BY id`)
	require.NoError(t, err)
	got, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, statuses, got)
}

func (s *interruptedSync) storedDeals(t *testing.T) int {
	t.Helper()
	var n int
	require.NoError(t, s.pool.QueryRow(context.Background(), `SELECT count(*) FROM deals`).Scan(&n))
	return n
}

// TestSyncCommandKilledMidRun kills a `pipewatch sync` process (SIGKILL: no cleanup runs)
// in the middle of a backfill and runs it again: the second run ends with an exact copy,
// nothing lost, nothing twice, and the killed run is recorded as interrupted.
func TestSyncCommandKilledMidRun(t *testing.T) {
	t.Parallel()
	s := newInterruptedSync(t)

	_, err := s.run(func(cmd *exec.Cmd) { _ = cmd.Process.Kill() })
	require.Error(t, err, "the first run dies")
	require.Equal(t, "signal: killed", err.Error())
	require.Less(t, s.storedDeals(t), len(s.want), "the killed run stopped part way")

	out, err := s.run(nil)
	require.NoError(t, err, "%s", out)
	s.requireExact(t, "failed", "succeeded")
}

// TestSyncCommandDatabaseConnectionsDropped drops the sync's database session in the
// middle of a batch's transaction, as a Postgres restart does: the run fails with an error
// that says what happened (the batch it was committing and Postgres's reason), and the
// next run ends exact.
func TestSyncCommandDatabaseConnectionsDropped(t *testing.T) {
	t.Parallel()
	s := newInterruptedSync(t)

	var dropped atomic.Bool
	out, err := s.run(func(*exec.Cmd) {
		// From the sixth page on, wait for the sync to be inside a transaction, then end
		// its sessions.
		go func() {
			for range 5000 {
				var n int
				err := s.pool.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
					WHERE application_name = $1 AND (state = 'active' OR state LIKE 'idle in transaction%')`, s.appName).Scan(&n)
				if err != nil || n > 0 {
					dropped.Store(n > 0)
					return
				}
				time.Sleep(time.Millisecond)
			}
		}()
	})
	require.True(t, dropped.Load(), "a session was dropped in a transaction")
	require.Error(t, err, "%s", out)
	require.Contains(t, string(out), "terminating connection due to administrator command")
	require.Contains(t, string(out), "hubspot-main deals:")
	require.Contains(t, string(out), "committing deals batch")
	require.Less(t, s.storedDeals(t), len(s.want), "the run stopped part way")

	out, err = s.run(nil)
	require.NoError(t, err, "%s", out)
	s.requireExact(t, "failed", "succeeded")
}
