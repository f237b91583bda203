package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/oauth2"

	"github.com/pipewatch/pipewatch/connectors"
	"github.com/pipewatch/pipewatch/connectors/hubspot"
	"github.com/pipewatch/pipewatch/connectors/hubspot/hubspottest"
	"github.com/pipewatch/pipewatch/jobs"
)

// TokenEnv passes the fake portal's token to a sync child.
const TokenEnv = "PIPEWATCH_BENCH_HUBSPOT_TOKEN"

// ChildArgs say what a sync child does: one run of the HubSpot deals stream of a bench
// connection, through the real sync engine and connector, without client-side rate
// limiting.
type ChildArgs struct {
	DatabaseURL  string
	ConnectionID int64
	Mode         connectors.Mode
}

// Flags are the child's command-line arguments (ParseChildFlags reads them back).
func (a ChildArgs) Flags() []string {
	return []string{"-database-url", a.DatabaseURL, "-connection", fmt.Sprint(a.ConnectionID), "-mode", string(a.Mode)}
}

// ChildResult is what a sync child reports on stdout (JSON).
type ChildResult struct {
	Read     int64   `json:"read"`
	Inserted int64   `json:"inserted"`
	Updated  int64   `json:"updated"`
	Deleted  int64   `json:"deleted"`
	Requests int64   `json:"requests"`
	Retries  int64   `json:"retries"`
	Seconds  float64 `json:"seconds"`
	Status   string  `json:"status"`
	// PeakRSSKiB is the child's own peak resident set (VmHWM), read by the child as it ends.
	PeakRSSKiB int64 `json:"peak_rss_kib"`
}

// Writes is what the run wrote.
func (r ChildResult) Writes() int64 { return r.Inserted + r.Updated + r.Deleted }

// RunChild is the sync child's body: it runs one sync of the deals stream and writes a
// ChildResult to out.
func RunChild(ctx context.Context, args ChildArgs, out io.Writer, logger *slog.Logger) error {
	pool, err := pgxpool.New(ctx, args.DatabaseURL)
	if err != nil {
		return fmt.Errorf("opening the bench database: %w", err)
	}
	defer pool.Close()
	engine := &jobs.SyncEngine{DB: pool, Connectors: unlimitedHubSpot(os.Getenv(TokenEnv)), Logger: logger}
	start := time.Now()
	res, err := engine.Run(ctx, jobs.SyncRequest{ConnectionID: args.ConnectionID, Stream: hubspot.StreamDeals, Mode: args.Mode})
	if err != nil {
		return fmt.Errorf("syncing the bench deals: %w", err)
	}
	hwm, err := strconv.ParseInt(strings.TrimSuffix(procField("/proc/self/status", "VmHWM"), " kB"), 10, 64)
	if err != nil {
		return fmt.Errorf("reading the peak memory of the sync child (/proc/self/status VmHWM): %w", err)
	}
	return json.NewEncoder(out).Encode(ChildResult{
		Read: res.Read, Inserted: res.Inserted, Updated: res.Updated, Deleted: res.Deleted, Requests: res.Requests,
		Retries: res.Retries, Seconds: time.Since(start).Seconds(), Status: string(res.Status), PeakRSSKiB: hwm,
	})
}

// unlimitedHubSpot builds hubspot connectors through the shared HTTP chain with a static
// token and no client-side rate limiter (the bench fake enforces none either), so the
// figures measure the code, not the vendor's budget. Production connections are built by
// jobs.HubSpotConnector, which adds HubSpot's limits.
func unlimitedHubSpot(token string) jobs.ConnectorRegistry {
	return jobs.ConnectorRegistry{"hubspot": func(_ context.Context, p jobs.ConnectorParams) (connectors.Connector, error) {
		hc := connectors.NewHTTPClient(connectors.HTTPConfig{
			Connection: "bench", Auth: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: token}),
			Stats: p.Stats, Logger: p.Logger,
		})
		return hubspot.New(hubspot.Config{BaseURL: p.Connection.Config.BaseURL}, hc)
	}}
}

// fakePortal starts a fake HubSpot portal with n deals (and the owners and companies they
// reference), its rate limits out of the way.
func fakePortal(n int) (*hubspottest.Server, string) {
	srv := hubspottest.New(hubspottest.Options{BurstLimit: 1 << 30, SearchPerSecond: 1 << 30, DailyLimit: 1 << 30, Seed: 42})
	srv.GenerateOwners(20)
	srv.GenerateCompanies(max(1, n/50), hubspottest.GenerateOptions{})
	srv.GenerateDeals(n, hubspottest.GenerateOptions{Span: 365 * 24 * time.Hour})
	return srv, srv.AddPrivateAppToken()
}

// runChild starts a sync child with start and waits for it, returning its result and
// peak RSS. The child measures its peak itself: the rusage maxrss the parent could read
// includes the parent's own memory, which a child started with vfork shares until exec
// and Linux carries over (the fake portal of a million records would count as the sync's).
func runChild(ctx context.Context, start StartChildFunc, args ChildArgs, token string) (ChildResult, error) {
	cmd := start(ctx, args.Flags())
	cmd.Env = append(os.Environ(), TokenEnv+"="+token)
	out, err := cmd.Output()
	var res ChildResult
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return res, fmt.Errorf("sync child failed: %w: %s", err, exit.Stderr)
		}
		return res, fmt.Errorf("running the sync child: %w", err)
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return res, fmt.Errorf("reading the sync child's result %q: %w", out, err)
	}
	return res, nil
}
