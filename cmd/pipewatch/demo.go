package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/slack-go/slack"

	"github.com/pipewatch/pipewatch/connectors"
	"github.com/pipewatch/pipewatch/internal/config"
	"github.com/pipewatch/pipewatch/internal/credentials"
	"github.com/pipewatch/pipewatch/internal/sandbox"
	"github.com/pipewatch/pipewatch/internal/secrets"
	"github.com/pipewatch/pipewatch/internal/web"
	"github.com/pipewatch/pipewatch/jobs"
	"github.com/pipewatch/pipewatch/migrations"
	"github.com/pipewatch/pipewatch/pipeline/store"
)

// demoDatabase is the database `pipewatch demo` resets and fills on the discovered server;
// it never touches the pipewatch database.
const demoDatabase = "pipewatch_demo"

// demoOptions configure one demo run.
type demoOptions struct {
	Seed uint64
	// Once runs one cycle and returns; otherwise the demo runs until ctx ends.
	Once bool
	// Every is how often the sandbox changes deals (without Once).
	Every time.Duration
	// Listener serves the HTTP endpoints.
	Listener net.Listener
	// Schema is River's schema ("" = the search path): tests run the demo in their own.
	Schema string
	// Database is shown to people: where to look at the data afterwards (a URL without its
	// password, or a name).
	Database string
	// Timeout bounds each wait for the jobs of a step.
	Timeout time.Duration
	// ConfigDir is where the generated config file is written for people to read.
	ConfigDir string
	// Logger receives the workers' log lines (stderr, warnings by default).
	Logger *slog.Logger
	// SlackToken and SlackAPIURL post the messages to Slack (SLACK_BOT_TOKEN, SLACK_API_URL);
	// without a token they are printed.
	SlackToken, SlackAPIURL string
	// SlackUser and SlackChannel route the sandbox's messages to a real workspace (with
	// SLACK_BOT_TOKEN): every person's DMs to this user (an email), every channel message
	// to this channel.
	SlackUser, SlackChannel string
}

func runDemo(ctx context.Context, a *app, args []string) error {
	fs := newFlagSet(a, "demo")
	o := demoOptions{Database: demoDatabase, Timeout: 90 * time.Second, ConfigDir: os.TempDir()}
	fs.BoolVar(&o.Once, "once", false, "run one full cycle (sync, detect, deliver, plan reminders, one minute of changes), print the summary and exit")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed of the generated company: the same `N` gives the same company")
	fs.DurationVar(&o.Every, "every", time.Minute, "how often the sandbox changes deals while the demo runs")
	addr := fs.String("http", envOr("PIPEWATCH_HTTP_ADDR", web.DefaultAddr), "HTTP listen `address` (PIPEWATCH_HTTP_ADDR)")
	fs.StringVar(&o.SlackUser, "slack-user", "", "with SLACK_BOT_TOKEN: deliver the sandbox people's DMs to the Slack user with this `email`")
	fs.StringVar(&o.SlackChannel, "slack-channel", "", "with SLACK_BOT_TOKEN: post the sandbox's channel messages to this `channel` (the bot must be in it)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if o.Every < time.Second {
		return fmt.Errorf("%w: --every must be at least 1s", errUsage)
	}
	o.SlackToken, o.SlackAPIURL = os.Getenv("SLACK_BOT_TOKEN"), os.Getenv("SLACK_API_URL")
	o.Logger = a.logger
	if os.Getenv("PIPEWATCH_LOG_LEVEL") == "" { // the demo's own output first; workers only warn
		o.Logger = newLoggerAt(a.stderr, slog.LevelWarn)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listening on %s for the demo's HTTP endpoints (choose another with --http 127.0.0.1:0): %w", *addr, err)
	}
	o.Listener = ln
	db, err := scratchDatabase(ctx, a, demoDatabase)
	if err != nil {
		return err
	}
	if u, err := url.Parse(db.url); err == nil && u.Scheme != "" {
		o.Database = u.Redacted()
	}
	pool, err := pgxpool.New(ctx, db.url)
	if err != nil {
		return fmt.Errorf("opening the demo database: %w", err)
	}
	defer pool.Close()
	if err := migrations.Up(ctx, pool, o.Logger); err != nil {
		return err
	}
	return playDemo(ctx, a.stdout, pool, o)
}

// demo is one running demo: the sandbox, the database, River and what it printed.
type demo struct {
	opts   demoOptions
	out    *lockedWriter
	pool   *pgxpool.Pool
	sb     *sandbox.Sandbox
	client *river.Client[pgx.Tx]
	engine *jobs.SyncEngine
	// alertsShown is the highest alert id already printed.
	alertsShown int64
}

// lockedWriter keeps the demo's lines and the console deliveries from interleaving.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (d *demo) printf(format string, args ...any) { fmt.Fprintf(d.out, format, args...) }

// playDemo runs the demo on a migrated database: it starts the sandbox CRMs, applies their
// config, runs the worker (River with every worker, the HTTP server) and narrates.
func playDemo(ctx context.Context, stdout io.Writer, pool *pgxpool.Pool, o demoOptions) error {
	d := &demo{opts: o, out: &lockedWriter{w: stdout}, pool: pool}
	started := time.Now()
	sb, err := sandbox.Start(sandbox.Options{Seed: o.Seed, Now: started})
	if err != nil {
		return err
	}
	defer sb.Close()
	d.sb = sb
	sb.SlackChannel = o.SlackChannel
	d.introduce()

	box, keyNote, err := demoSecrets()
	if err != nil {
		return err
	}
	if err := d.applyConfig(ctx, box, keyNote); err != nil {
		return err
	}
	adminToken := os.Getenv("PIPEWATCH_ADMIN_TOKEN")
	if adminToken == "" {
		adminToken = randomHex(16)
	}
	rt, err := newRuntime(ctx, pool, o.Logger, runtimeOptions{
		Jobs:        jobs.Config{Schema: o.Schema, SyncWorkers: 4, DetectWorkers: 1, NotifyWorkers: 2, MaintenanceWorkers: 1},
		Credentials: &credentials.Store{Box: box},
		Console:     d.out,
		SlackToken:  o.SlackToken, SlackAPIURL: o.SlackAPIURL,
		SlackSigningSecret: os.Getenv("SLACK_SIGNING_SECRET"),
		Web:                web.Config{AdminToken: adminToken},
	})
	if err != nil {
		return err
	}
	slackNote := "printed here (set SLACK_BOT_TOKEN to post them to a workspace)"
	if rt.deps.Slack != nil {
		slackNote = "posted to your Slack workspace (SLACK_BOT_TOKEN)"
		if err := d.routeSlack(ctx, rt.deps.Slack); err != nil {
			return err
		}
		if o.SlackUser == "" {
			slackNote += "; the sandbox people are not in it, so their DMs fail:\n             pass --slack-user you@example.com to get them"
		}
	}
	d.engine = jobs.NewSyncEngine(rt.deps)
	client, srv := rt.client, rt.srv
	d.client = client

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(runCtx, o.Listener) }()
	defer func() {
		cancel()
		<-served
	}()
	base := "http://" + o.Listener.Addr().String()
	d.printf("  HTTP:      %s/healthz, /readyz, /metrics; the report as JSON:\n", base)
	d.printf("             curl -H 'Authorization: Bearer %s' %s/api/report\n", adminToken, base)
	d.printf("  Slack:     messages are %s. Each waits for its\n", slackNote)
	d.printf("             recipient's working hours (08:00–18:00 local; the sandbox teams work every day):\n")
	d.printf("             it is now %s.\n\n", d.localTimes(time.Now()))

	if err := client.Start(runCtx); err != nil {
		return fmt.Errorf("starting River: %w", err)
	}
	defer func() {
		stopCtx, stop := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer stop()
		if err := client.Stop(stopCtx); err != nil {
			_ = client.StopAndCancel(context.WithoutCancel(ctx))
		}
	}()

	if err := d.firstSync(runCtx); err != nil {
		return err
	}
	if err := d.minute(runCtx); err != nil {
		return err
	}
	if err := d.summary(runCtx); err != nil {
		return err
	}
	if o.Once {
		d.printf("\nDone in %s (--once). Run `pipewatch demo` without --once to keep the sandbox changing every minute.\n",
			time.Since(started).Round(time.Second))
		return nil
	}
	return d.live(runCtx)
}

// routeSlack makes the sandbox people's DMs reach the Slack user o.SlackUser: each
// person's email is entered in pipewatch's Slack directory cache (slack_users) as that
// user, with the zone pipewatch would read from the CRM or the team, for a year.
func (d *demo) routeSlack(ctx context.Context, api *slack.Client) error {
	if d.opts.SlackUser == "" {
		return nil
	}
	u, err := api.GetUserByEmailContext(ctx, d.opts.SlackUser)
	if err != nil {
		return fmt.Errorf("looking up --slack-user %s in Slack: %w", d.opts.SlackUser, err)
	}
	now := time.Now()
	for _, t := range d.sb.Company.Teams {
		for _, p := range t.People() {
			zone := t.Timezone
			if t.CRM == sandbox.Pipedrive {
				zone = p.Timezone
			}
			if _, err := d.pool.Exec(ctx, `
				INSERT INTO slack_users (email, slack_user_id, timezone, looked_up_at, expires_at)
				VALUES ($1, $2, $3, $4, $5)
				ON CONFLICT (email) DO UPDATE SET slack_user_id = EXCLUDED.slack_user_id, timezone = EXCLUDED.timezone,
				                                  looked_up_at = EXCLUDED.looked_up_at, expires_at = EXCLUDED.expires_at`,
				strings.ToLower(p.Email), u.ID, zone, now, now.AddDate(1, 0, 0)); err != nil {
				return fmt.Errorf("routing %s's messages to %s: %w", p.Email, d.opts.SlackUser, err)
			}
		}
	}
	return nil
}

// demoSecrets returns the key that seals the sandbox credentials: PIPEWATCH_SECRET_KEY
// when set, else a key made for this run.
func demoSecrets() (*secrets.Box, string, error) {
	box, err := secrets.FromEnv()
	switch {
	case err == nil:
		return box, "sealed with PIPEWATCH_SECRET_KEY", nil
	case !errors.Is(err, secrets.ErrNoKey):
		return nil, "", err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, "", fmt.Errorf("making a secret key for the demo: %w", err)
	}
	box, err = secrets.New(key)
	return box, "sealed with a key made for this run (PIPEWATCH_SECRET_KEY is unset)", err
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// introduce prints the sandbox company.
func (d *demo) introduce() {
	c := d.sb.Company
	var open, activities int
	for _, deal := range c.Deals {
		activities += len(deal.Activities)
		if deal.Open() {
			open++
		}
	}
	period, _, _ := sandbox.Quarter(c.Now, time.UTC)
	d.printf("pipewatch demo: the sandbox company %s (seed %d)\n\n", c.Name, c.Seed)
	for _, t := range c.Teams {
		zones := map[string]bool{}
		var names []string
		for _, p := range t.Reps {
			if !zones[p.Timezone] {
				zones[p.Timezone] = true
				names = append(names, strings.ReplaceAll(p.Timezone[strings.LastIndex(p.Timezone, "/")+1:], "_", " "))
			}
		}
		d.printf("  %-9s %s manages %d reps (%s) in %s; deals in %s\n", t.Name, t.Manager.Name(), len(t.Reps),
			strings.Join(names, ", "), crmName(t.CRM), currencies(t))
	}
	d.printf("  History:   %d deals over 18 months (%d open), %d activities, %d leads, %d targets for %s\n",
		len(c.Deals), open, activities, len(c.Leads), len(c.Targets), period)
	d.printf("  CRMs:      fake HubSpot at %s, fake Pipedrive at %s (in this process)\n", d.sb.HubSpot.URL, d.sb.Pipedrive.URL())
}

func crmName(c sandbox.CRM) string {
	if c == sandbox.HubSpot {
		return "HubSpot"
	}
	return "Pipedrive"
}

func currencies(t *sandbox.Team) string {
	if t.OtherCurrency == "" {
		return t.Currency
	}
	return t.Currency + " and " + t.OtherCurrency
}

// localTimes is t in each team's home zone.
func (d *demo) localTimes(t time.Time) string {
	var parts []string
	for _, team := range d.sb.Company.Teams {
		parts = append(parts, t.In(team.Location()).Format("Mon 15:04")+" in "+
			strings.ReplaceAll(team.Timezone[strings.LastIndex(team.Timezone, "/")+1:], "_", " "))
	}
	return strings.Join(parts, ", ")
}

// applyConfig writes the sandbox's config file and applies it the way `pipewatch apply`
// does.
func (d *demo) applyConfig(ctx context.Context, box *secrets.Box, keyNote string) error {
	data := d.sb.ConfigYAML()
	path := filepath.Join(d.opts.ConfigDir, fmt.Sprintf("pipewatch-demo-%d.yaml", d.sb.Company.Seed))
	if err := os.WriteFile(path, data, 0o644); err != nil {
		path = "(not written: " + err.Error() + ")"
	}
	f, err := config.Parse(path, data, d.sb.LookupEnv)
	if err != nil {
		return fmt.Errorf("the sandbox's config file: %w", err)
	}
	sum, err := config.Apply(ctx, d.pool, f, box)
	if err != nil {
		return err
	}
	d.printf("  Config:    %s — applied (%d changes); the CRM tokens are %s\n", path, len(sum.Changes), keyNote)
	d.printf("  Database:  %s (reset for this run; kept afterwards to explore)\n", d.opts.Database)
	return nil
}

// connections are the sandbox connections.
func (d *demo) connections(ctx context.Context) ([]store.Connection, error) {
	return store.ConnectionsByStatus(ctx, d.pool, store.StatusActive)
}

// firstSync has River fan out the first sync of every stream and waits for the syncs,
// detection (a baseline: conditions that already exist are recorded without per-deal
// messages; each manager gets one digest), reminder planning and deliveries.
func (d *demo) firstSync(ctx context.Context) error {
	d.printf("[1/3] First sync: River runs a sync_connection job per stream of both CRMs, then detect, reminder\n")
	d.printf("      planning and Slack delivery jobs. The first detection is a baseline: deals already in\n")
	d.printf("      trouble are recorded as open alerts and each manager gets one digest of them.\n\n")
	start := time.Now()
	if _, err := d.client.Insert(ctx, jobs.EnqueueSyncsArgs{}, nil); err != nil {
		return fmt.Errorf("enqueueing the first syncs: %w", err)
	}
	if err := d.waitIdle(ctx); err != nil {
		return err
	}
	if err := d.syncFailures(ctx, start); err != nil {
		return err
	}
	d.printf("\n      Synced, detected and delivered in %s.\n\n", time.Since(start).Round(100*time.Millisecond))
	return nil
}

// minute makes one minute's worth of changes in the sandbox CRMs and has River sync them,
// which shows incremental syncs, observed close-date pushes and new alerts told one by one.
func (d *demo) minute(ctx context.Context) error {
	d.printf("[2/3] A minute on the sales floor: the sandbox changes deals in both CRMs\n\n")
	if err := d.tick(ctx); err != nil {
		return err
	}
	start := time.Now()
	if err := d.syncNow(ctx); err != nil {
		return err
	}
	if err := d.waitIdle(ctx); err != nil {
		return err
	}
	if err := d.syncFailures(ctx, start); err != nil {
		return err
	}
	d.printf("\n      Incremental syncs, detection and delivery took %s.\n\n", time.Since(start).Round(100*time.Millisecond))
	return nil
}

// tick changes the sandbox and prints what changed.
func (d *demo) tick(ctx context.Context) error {
	changes, err := d.sb.Tick(time.Now())
	if err != nil {
		return err
	}
	for _, c := range changes {
		d.printf("      %s\n", c)
	}
	d.printf("\n")
	// The connectors read up to their lag behind the vendors' clock.
	select {
	case <-time.After(sandbox.Lag + time.Second):
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// syncNow enqueues an incremental sync of every stream of every sandbox connection.
func (d *demo) syncNow(ctx context.Context) error {
	conns, err := d.connections(ctx)
	if err != nil {
		return err
	}
	var params []river.InsertManyParams
	for _, conn := range conns {
		c, _, err := d.engine.Connector(ctx, conn)
		if err != nil {
			return err
		}
		for _, s := range c.Streams() {
			params = append(params, river.InsertManyParams{Args: jobs.SyncConnectionArgs{ConnectionID: conn.ID, Stream: s.Name, Mode: connectors.Incremental}})
		}
	}
	if _, err := d.client.InsertMany(ctx, params); err != nil {
		return fmt.Errorf("enqueueing the syncs: %w", err)
	}
	return nil
}

// waitIdle waits until River has nothing left to do soon: no job available, running or
// retrying, none scheduled within 20 seconds (deliveries held for quiet hours and
// reminders due later don't count). Syncs enqueue detection and reminder planning.
func (d *demo) waitIdle(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, d.opts.Timeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		var busy int
		err := d.pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE `+busyJobs).Scan(&busy)
		switch {
		case err != nil && ctx.Err() == nil:
			return fmt.Errorf("checking River's jobs: %w", err)
		case err == nil && busy == 0:
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("the demo's jobs did not finish within %s: %s", d.opts.Timeout, d.busyJobs(ctx))
			}
			return ctx.Err()
		}
	}
}

// busyJobs are the River jobs that keep the demo waiting: there is work to do now or soon
// (deliveries held for quiet hours and reminders due later do not count).
const busyJobs = `state IN ('available', 'running', 'retryable', 'pending')
   OR (state = 'scheduled' AND scheduled_at < now() + interval '20 seconds')`

// busyJobs describes the jobs still busy, for the error of a step that took too long.
func (d *demo) busyJobs(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	rows, err := d.pool.Query(ctx, `
		SELECT kind || ' ' || state || ' (attempt ' || attempt || coalesce(', ' || (errors[array_length(errors, 1)]->>'error'), '') || ')'
		FROM river_job WHERE `+busyJobs+` ORDER BY id LIMIT 5`)
	if err != nil {
		return "listing them: " + err.Error()
	}
	jobs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return "listing them: " + err.Error()
	}
	return strings.Join(jobs, "; ")
}

// syncFailures reports the streams whose sync runs since start did not succeed.
func (d *demo) syncFailures(ctx context.Context, since time.Time) error {
	rows, err := d.pool.Query(ctx, `
		SELECT c.name || ' ' || r.stream || ': ' || r.status || coalesce(' (' || nullif(r.error, '') || ')', '')
		FROM sync_runs r JOIN connections c ON c.id = r.connection_id
		WHERE r.started_at >= $1 AND r.status <> 'succeeded'
		ORDER BY r.id`, since)
	if err != nil {
		return fmt.Errorf("reading the sync runs: %w", err)
	}
	problems, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("reading the sync runs: %w", err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%d sandbox syncs did not succeed:\n  %s", len(problems), strings.Join(problems, "\n  "))
	}
	return nil
}

// live keeps the sandbox changing every d.opts.Every until ctx ends; River's scheduler
// syncs the changes (every minute), detects and delivers.
func (d *demo) live(ctx context.Context) error {
	d.printf("\nThe demo keeps running: the sandbox changes deals every %s and pipewatch syncs them every minute.\n", d.opts.Every)
	d.printf("New alerts and Slack messages appear below. Stop with Ctrl-C.\n\n")
	t := time.NewTicker(d.opts.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			d.printf("\nStopping the demo.\n")
			return nil
		case <-t.C:
		}
		d.printf("%s — the sales floor:\n", time.Now().Format("15:04:05"))
		if err := d.tick(ctx); err != nil {
			if ctx.Err() != nil {
				d.printf("\nStopping the demo.\n")
				return nil
			}
			return err
		}
		if err := d.newAlerts(ctx); err != nil {
			return err
		}
	}
}
