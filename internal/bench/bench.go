// Package bench measures pipewatch's performance figures (DESIGN §8) in one run, side by
// side: the write path against a raw COPY of the same rows, the full path from a fake
// vendor through the connector into Postgres with the fake's own cost beside it, API
// efficiency against the minimum number of requests, detect and report on a large
// pipeline, and peak memory of syncs growing tenfold twice. `pipewatch bench` runs it.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os/exec"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pipewatch/pipewatch/connectors"
	"github.com/pipewatch/pipewatch/migrations"
	"github.com/pipewatch/pipewatch/pipeline/store"
)

// DefaultRecords sizes a default run: the write path writes that many deals; syncs of about
// a tenth of it, it and ten times it records (deals and their stage history) measure peak
// memory, the middle one the full path and API efficiency; detect and report run on ten
// times it open deals.
const DefaultRecords = 100_000

// Targets the figures are held against.
const (
	TargetWriteRatio    = 0.5  // write path ≥ 50 % of raw COPY
	TargetRequestsRatio = 1.05 // requests ≤ 1.05 × the minimum
	TargetDetectSeconds = 3.0
	TargetReportSeconds = 2.0
	TargetRSSGrowth     = 2.0 // peak RSS at the largest size < 2 × at the smallest
)

// Search and list page sizes of the HubSpot API (the minimum number of requests is
// records ÷ page size).
const (
	searchPageSize = 200
	listPageSize   = 100
	writeBatchSize = 5000
)

// StartChildFunc returns the command that runs a sync child with args (the binary re-run
// with its hidden child subcommand); the bench adds the environment and runs it.
type StartChildFunc func(ctx context.Context, args []string) *exec.Cmd

// Config configures a run.
type Config struct {
	// Records sizes the run (DefaultRecords when zero).
	Records int
	// DatabaseURL is a scratch database the run may fill; the caller creates and drops it.
	DatabaseURL string
	// StartChild starts sync children (peak memory is measured per process).
	StartChild StartChildFunc
	Logger     *slog.Logger
	// Progress receives a line as each part starts (nil: none).
	Progress io.Writer
}

// Results are every figure of a run. Their JSON form is `pipewatch bench --format json`.
type Results struct {
	Hardware      Hardware      `json:"hardware"`
	Records       int           `json:"records"`
	WritePath     WritePath     `json:"write_path"`
	FullPath      FullPath      `json:"full_path"`
	APIEfficiency []APIRun      `json:"api_efficiency"`
	Rules         Rules         `json:"detect_and_report"`
	PeakRSS       []MemoryPoint `json:"peak_rss"`
	// RSSGrowth is the peak RSS at the largest size ÷ at the smallest.
	RSSGrowth float64       `json:"rss_growth"`
	Targets   []TargetCheck `json:"targets"`
	Seconds   float64       `json:"seconds"`
}

// WritePath is normalized deals through the real upsert against a raw COPY of the same
// rows into a table of the same shape, batch by batch.
type WritePath struct {
	Rows                int     `json:"rows"`
	BatchSize           int     `json:"batch_size"`
	UpsertSeconds       float64 `json:"upsert_seconds"`
	CopySeconds         float64 `json:"copy_seconds"`
	ReplaySeconds       float64 `json:"replay_seconds"`
	UpsertRowsPerSecond float64 `json:"upsert_rows_per_second"`
	CopyRowsPerSecond   float64 `json:"copy_rows_per_second"`
	// Ratio is the write path's speed as a fraction of raw COPY's: the headline figure.
	Ratio float64 `json:"ratio"`
}

// FullPath is a backfill of the deals stream from the fake HubSpot through the connector
// and the sync engine into Postgres, rate limiting off on both sides. Records are the
// normalized records the stream carried: the deals and their stage-history entries.
type FullPath struct {
	Deals            int64   `json:"deals"`
	Records          int64   `json:"records"`
	Seconds          float64 `json:"seconds"`
	DealsPerSecond   float64 `json:"deals_per_second"`
	RecordsPerSecond float64 `json:"records_per_second"`
	// FakeServeSeconds is the time the fake vendor spent answering (decoding, querying,
	// encoding); FakeShare is that time over Seconds.
	FakeServeSeconds float64 `json:"fake_serve_seconds"`
	FakeShare        float64 `json:"fake_share"`
}

// APIRun is one sync's requests against the fewest its page size allows.
type APIRun struct {
	Run      string  `json:"run"`
	Deals    int     `json:"deals"`
	PageSize int     `json:"page_size"`
	Requests int64   `json:"requests"`
	Minimum  int64   `json:"minimum"`
	Ratio    float64 `json:"ratio"`
	Writes   int64   `json:"writes"`
}

// MemoryPoint is the peak RSS of a sync child that backfilled Deals deals, Records records.
type MemoryPoint struct {
	Records     int64   `json:"records"`
	Deals       int     `json:"deals"`
	MaxRSSBytes int64   `json:"max_rss_bytes"`
	Seconds     float64 `json:"seconds"`
}

// TargetCheck is one figure against its target.
type TargetCheck struct {
	Name     string  `json:"name"`
	Measured float64 `json:"measured"`
	Target   string  `json:"target"`
	Met      bool    `json:"met"`
}

// Run measures every figure. It needs an empty database (it migrates it).
func Run(ctx context.Context, cfg Config) (*Results, error) {
	if cfg.Records <= 0 {
		cfg.Records = DefaultRecords
	}
	if cfg.StartChild == nil {
		return nil, errors.New("bench: StartChild is required (sync children measure peak memory)")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	progress := func(format string, args ...any) {
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "bench: "+format+"\n", args...)
		}
	}
	start := time.Now()
	pool, err := pgxpool.New(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("opening the bench database: %w", err)
	}
	defer pool.Close()
	if err := migrations.Up(ctx, pool, cfg.Logger); err != nil {
		return nil, err
	}
	r := &Results{Records: cfg.Records}
	if r.Hardware, err = hardware(ctx, pool); err != nil {
		return nil, err
	}

	n := cfg.Records
	progress("write path: %d deals through the upsert and through raw COPY", n)
	wc, err := store.CompareWritePath(ctx, pool, store.SyntheticDeals(n, 1), writeBatchSize)
	if err != nil {
		return nil, err
	}
	r.WritePath = WritePath{Rows: wc.Rows, BatchSize: wc.BatchSize, UpsertSeconds: wc.Upsert.Seconds(),
		CopySeconds: wc.RawCopy.Seconds(), ReplaySeconds: wc.Replay.Seconds(), UpsertRowsPerSecond: wc.UpsertRowsPerSecond(),
		CopyRowsPerSecond: wc.CopyRowsPerSecond(), Ratio: wc.Ratio()}

	s := &syncBench{pool: pool, start: cfg.StartChild, url: cfg.DatabaseURL}
	for i, records := range []int{max(1, n/10), n, n * 10} {
		progress("sync: backfilling about %d records (%d deals) from the fake HubSpot in a child process", records, dealsFor(records))
		role := roleMemoryOnly
		if i == 1 {
			role = roleMain
		}
		if err := s.level(ctx, dealsFor(records), role, r); err != nil {
			return nil, err
		}
	}
	if small, large := r.PeakRSS[0].MaxRSSBytes, r.PeakRSS[len(r.PeakRSS)-1].MaxRSSBytes; small > 0 {
		r.RSSGrowth = float64(large) / float64(small)
	}

	progress("detect and report: generating %d open deals with SQL", n*10)
	if r.Rules, err = measureRules(ctx, pool, n*10, cfg.Logger); err != nil {
		return nil, err
	}
	r.Targets = r.checks()
	r.Seconds = time.Since(start).Seconds()
	return r, nil
}

// recordsPerDeal is about how many records a deal of the fake portal makes: the deal and
// the stage-history entries of the stages it went through.
const recordsPerDeal = 4

func dealsFor(records int) int { return max(1, records/recordsPerDeal) }

// syncRole is what a sync level measures besides peak memory.
type syncRole int

const (
	roleMemoryOnly syncRole = iota
	// roleMain also measures the full path, a reconciliation (a full read through the
	// list API) and a no-change incremental sync.
	roleMain
)

// syncBench runs the sync children against fake portals.
type syncBench struct {
	pool  *pgxpool.Pool
	start StartChildFunc
	url   string
	conns int
}

// level backfills deals deals from a fresh fake portal into a fresh connection in a child
// and records its peak memory, plus what role asks for.
func (s *syncBench) level(ctx context.Context, deals int, role syncRole, r *Results) error {
	srv, token := fakePortal(deals)
	defer srv.Close()
	s.conns++
	var connID int64
	if err := s.pool.QueryRow(ctx, `INSERT INTO connections (name, kind, config) VALUES ($1, 'hubspot', $2) RETURNING id`,
		fmt.Sprintf("bench-%d", s.conns), map[string]any{"base_url": srv.URL, "schedule": "15m"}).Scan(&connID); err != nil {
		return fmt.Errorf("creating the bench connection: %w", err)
	}
	args := ChildArgs{DatabaseURL: s.url, ConnectionID: connID, Mode: connectors.Incremental}
	srv.ResetStats()
	backfill, err := runChild(ctx, s.start, args, token)
	if err != nil {
		return err
	}
	var stored int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM deals WHERE connection_id = $1`, connID).Scan(&stored); err != nil {
		return fmt.Errorf("counting the synced deals: %w", err)
	}
	if stored != int64(deals) {
		return fmt.Errorf("bench: the backfill stored %d of %d deals", stored, deals)
	}
	r.PeakRSS = append(r.PeakRSS, MemoryPoint{Records: backfill.Read, Deals: deals, MaxRSSBytes: backfill.PeakRSSKiB * 1024,
		Seconds: backfill.Seconds})
	if role != roleMain {
		return truncate(ctx, s.pool)
	}
	served := srv.Stats().ServeTime.Seconds()
	r.FullPath = FullPath{Deals: stored, Records: backfill.Read, Seconds: backfill.Seconds,
		DealsPerSecond: float64(stored) / backfill.Seconds, RecordsPerSecond: float64(backfill.Read) / backfill.Seconds,
		FakeServeSeconds: served, FakeShare: served / backfill.Seconds}
	r.APIEfficiency = append(r.APIEfficiency, apiRun("backfill (incremental from empty, search API)", backfill, deals, searchPageSize))
	args.Mode = connectors.Full
	full, err := runChild(ctx, s.start, args, token)
	if err != nil {
		return err
	}
	r.APIEfficiency = append(r.APIEfficiency, apiRun("reconciliation (full read, list API)", full, deals, listPageSize))
	args.Mode = connectors.Incremental
	again, err := runChild(ctx, s.start, args, token)
	if err != nil {
		return err
	}
	run := apiRun("no-change incremental", again, 0, searchPageSize)
	run.Minimum, run.Ratio = 1, float64(again.Requests) // one request per stream at most
	r.APIEfficiency = append(r.APIEfficiency, run)
	return truncate(ctx, s.pool)
}

func apiRun(name string, res ChildResult, deals, pageSize int) APIRun {
	minimum := int64(math.Ceil(float64(deals) / float64(pageSize)))
	return APIRun{Run: name, Deals: deals, PageSize: pageSize, Requests: res.Requests, Minimum: minimum,
		Ratio: float64(res.Requests) / float64(max(minimum, 1)), Writes: res.Writes()}
}

// checks holds the figures against their targets.
func (r *Results) checks() []TargetCheck {
	var out []TargetCheck
	add := func(name string, measured float64, target string, met bool) {
		out = append(out, TargetCheck{Name: name, Measured: measured, Target: target, Met: met})
	}
	add("write path ÷ raw COPY", r.WritePath.Ratio, fmt.Sprintf("≥ %.2f", TargetWriteRatio), r.WritePath.Ratio >= TargetWriteRatio)
	for _, a := range r.APIEfficiency {
		if a.Run == "no-change incremental" {
			add("no-change sync: requests (deals stream)", float64(a.Requests), "≤ 1", a.Requests <= 1)
			add("no-change sync: rows written", float64(a.Writes), "0", a.Writes == 0)
			continue
		}
		add("requests ÷ minimum, "+a.Run, a.Ratio, fmt.Sprintf("≤ %.2f", TargetRequestsRatio), a.Ratio <= TargetRequestsRatio)
	}
	add(fmt.Sprintf("detect on %d open deals (s)", r.Rules.OpenDeals), r.Rules.Detect, fmt.Sprintf("< %.0f", TargetDetectSeconds), r.Rules.Detect < TargetDetectSeconds)
	add(fmt.Sprintf("report on %d deals (s)", r.Rules.Deals), r.Rules.Report, fmt.Sprintf("< %.0f", TargetReportSeconds), r.Rules.Report < TargetReportSeconds)
	add("peak RSS, largest ÷ smallest sync", r.RSSGrowth, fmt.Sprintf("< %.0f", TargetRSSGrowth), r.RSSGrowth > 0 && r.RSSGrowth < TargetRSSGrowth)
	return out
}

// WriteTable prints the figures for people.
func (r *Results) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format+"\n", args...) }
	h := r.Hardware
	p("hardware\t%s, %d cores, %.1f GiB memory, PostgreSQL %s, %s %s", h.CPUModel, h.Cores,
		float64(h.MemoryBytes)/(1<<30), h.PostgresVersion, h.GoVersion, h.OS)
	p("")
	p("INGEST WRITE PATH (%d deals, batches of %d)", r.WritePath.Rows, r.WritePath.BatchSize)
	p("  upsert (store.WriteBatch)\t%.2f s\t%.0f rows/s", r.WritePath.UpsertSeconds, r.WritePath.UpsertRowsPerSecond)
	p("  raw COPY, same rows and table shape\t%.2f s\t%.0f rows/s", r.WritePath.CopySeconds, r.WritePath.CopyRowsPerSecond)
	p("  upsert ÷ COPY\t%.2f\t(target ≥ %.2f)", r.WritePath.Ratio, TargetWriteRatio)
	p("  replay of the same deals (no changes)\t%.2f s", r.WritePath.ReplaySeconds)
	p("")
	f := r.FullPath
	p("INGEST FULL PATH (fake HubSpot → connector → sync engine → Postgres, rate limits off)")
	p("  deals backfilled\t%d in %.2f s\t%.0f deals/s", f.Deals, f.Seconds, f.DealsPerSecond)
	p("  records (deals and their stage history)\t%d\t%.0f records/s", f.Records, f.RecordsPerSecond)
	p("  the fake's own serving time\t%.2f s\t%.0f%% of the run", f.FakeServeSeconds, 100*f.FakeShare)
	p("")
	p("API EFFICIENCY (deals stream)\tREQUESTS\tMINIMUM\tRATIO\tROWS WRITTEN")
	for _, a := range r.APIEfficiency {
		p("  %s (%d deals, page %d)\t%d\t%d\t%.3f\t%d", a.Run, a.Deals, a.PageSize, a.Requests, a.Minimum, a.Ratio, a.Writes)
	}
	p("")
	ru := r.Rules
	p("DETECT AND REPORT (%d deals, %d open; generated in %.0f s)", ru.Deals, ru.OpenDeals, ru.SetupSeconds)
	p("  detect, first run (records %d existing conditions)\t%.2f s", ru.AlertsOpened, ru.DetectFirst)
	p("  detect, later runs (median of %d)\t%.2f s\t(target < %.0f s)", len(ru.DetectRuns), ru.Detect, ru.DetectTargetS)
	p("  report %s, whole org\t%.2f s\t(target < %.0f s)", ru.ReportPeriod, ru.Report, ru.ReportTargetS)
	p("")
	p("PEAK RSS OF A SYNC PROCESS")
	for _, m := range r.PeakRSS {
		p("  %d records (%d deals)\t%.1f MiB\t%.1f s", m.Records, m.Deals, float64(m.MaxRSSBytes)/(1<<20), m.Seconds)
	}
	p("  largest ÷ smallest\t%.2f\t(target < %.0f)", r.RSSGrowth, TargetRSSGrowth)
	p("")
	p("TARGETS")
	for _, t := range r.Targets {
		mark := "met"
		if !t.Met {
			mark = "MISSED"
		}
		p("  %s\t%.3g\t%s\t%s", t.Name, t.Measured, t.Target, mark)
	}
	p("")
	p("total\t%.0f s", r.Seconds)
	return tw.Flush()
}

// truncate empties the app's tables and restarts their ids, so each part starts from the
// same empty model.
func truncate(ctx context.Context, pool *pgxpool.Pool) error {
	if _, err := pool.Exec(ctx, `TRUNCATE connections, deals, owners, leads, targets RESTART IDENTITY CASCADE`); err != nil {
		return fmt.Errorf("emptying the bench tables: %w", err)
	}
	return nil
}
