package alerting

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pipewatch/pipewatch/internal/notify"
)

// detectLockKey serializes detect runs on one schema: two runs never reconcile the same
// alerts at once.
const detectLockKey = int32(0x70776474) // "pwdt"

// Detector evaluates the alert rules, keeps the alerts table's lifecycle and enqueues
// what people should hear.
type Detector struct {
	Logger *slog.Logger
	// NowFunc is the clock (time.Now when nil).
	NowFunc func() time.Time
	Outbox  Outbox
}

// Options narrow a run.
type Options struct {
	// ConnectionID limits the deal rules to one connection (0 = every connection). The
	// org rules (coverage, lead velocity) are evaluated either way.
	ConnectionID int64
	// ReportLimit caps how many told alerts the report lists one by one (0 = none).
	ReportLimit int
	// CountActive fills Report.Active (a count over every open alert).
	CountActive bool
}

// Report is what a run found and did.
type Report struct {
	RunID int64     `json:"run_id"`
	At    time.Time `json:"at"`
	// Scopes are the connections (and the org rules) with whether they were evaluated.
	Scopes   []ScopeStatus `json:"scopes"`
	Opened   int           `json:"opened"`
	Updated  int           `json:"updated"`
	Resolved int           `json:"resolved"`
	// Told is how many alerts were told (or recorded silently) in this run.
	Told int `json:"told"`
	// Alerts lists the told alerts, up to Options.ReportLimit.
	Alerts []Outcome `json:"alerts"`
	// Escalated counts owner alerts moved into managers' daily digests.
	Escalated     int    `json:"escalated"`
	Notifications []Sent `json:"notifications"`
	// Active counts the open (not resolved) alerts per rule, with Options.CountActive.
	Active map[string]int `json:"active_by_rule,omitempty"`
}

// ScopeStatus says whether a connection's data (or the org rules) was evaluated, and why not.
type ScopeStatus struct {
	ConnectionID int64     `json:"connection_id,omitempty"`
	Name         string    `json:"name"`
	Evaluated    bool      `json:"evaluated"`
	Reason       string    `json:"reason,omitempty"`
	DataAsOf     time.Time `json:"data_as_of,omitzero"`
	// Baseline: the first evaluation, whose conditions are recorded without per-alert messages.
	Baseline bool `json:"baseline,omitempty"`
}

// Outcome is one told alert and why.
type Outcome struct {
	AlertID  int64    `json:"alert_id"`
	Rule     Rule     `json:"rule"`
	Severity Severity `json:"severity"`
	// Reason: new, severity_rose, stage_changed, snooze_ended or cooldown_ended.
	Reason   string  `json:"reason"`
	Subject  string  `json:"subject"`
	Amount   string  `json:"amount,omitempty"`
	Owner    string  `json:"owner,omitempty"`
	Delivery string  `json:"delivery"`
	Why      string  `json:"why"`
	Details  Details `json:"details"`
}

// Sent is one notification a run enqueued.
type Sent struct {
	ID        int64          `json:"notification_id"`
	Kind      notify.Kind    `json:"kind"`
	Channel   notify.Channel `json:"channel"`
	Recipient string         `json:"recipient"`
	Title     string         `json:"title"`
	AlertID   int64          `json:"alert_id,omitempty"`
	Items     int            `json:"items,omitempty"`
}

// run is the state of one evaluation.
type run struct {
	id       int64
	tx       pgx.Tx
	now      time.Time
	logger   *slog.Logger
	outbox   Outbox
	opts     Options
	settings Settings
	cals     calendars
	dir      *Directory
	conns    map[int64]*Connection
	scope    lifecycleScope
	// dealArgs are the deal rules' parameters (nil = no deal rule runs).
	dealArgs pgx.NamedArgs
	report   *Report
}

// Run evaluates every rule as of now inside tx and records the results there: alerts
// opened, updated and resolved, notifications enqueued. The caller commits, or rolls
// back for a dry run, which then changed and sent nothing.
func (d *Detector) Run(ctx context.Context, tx pgx.Tx, opts Options) (*Report, error) {
	now := time.Now()
	if d.NowFunc != nil {
		now = d.NowFunc()
	}
	r := &run{tx: tx, now: now, logger: d.Logger, outbox: d.Outbox, opts: opts, report: &Report{At: now}}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))`, detectLockKey); err != nil {
		return nil, fmt.Errorf("taking the detect lock: %w", err)
	}
	// Work memory for the hash joins over every open deal; no JIT: compiling the rule
	// expressions costs seconds and saves less than it costs on a million rows.
	if _, err := tx.Exec(ctx, `SET LOCAL work_mem = '64MB'; SET LOCAL jit = off`); err != nil {
		return nil, fmt.Errorf("tuning the session: %w", err)
	}
	if err := r.load(ctx); err != nil {
		return nil, err
	}
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"findings", r.findings}, {"lifecycle", r.lifecycle}, {"dispatch", r.dispatch},
		{"escalate", r.escalate}, {"finish", r.finish},
	}
	for _, step := range steps {
		start := time.Now()
		if err := step.fn(ctx); err != nil {
			return nil, err
		}
		r.logger.DebugContext(ctx, "detect: step done", "step", step.name, "took", time.Since(start))
	}
	return r.report, nil
}

// load reads settings, owners and connections, gates the connections and starts the run row.
func (r *run) load(ctx context.Context) error {
	var err error
	if r.settings, err = LoadSettings(ctx, r.tx); err != nil {
		return err
	}
	if _, _, err := digestClock(r.settings.Routing.DigestTime); err != nil {
		return err
	}
	if r.cals, err = r.settings.calendars(); err != nil {
		return err
	}
	if r.dir, err = loadDirectory(ctx, r.tx, r.settings); err != nil {
		return err
	}
	if err := r.loadConnections(ctx); err != nil {
		return err
	}
	if err := r.tx.QueryRow(ctx, `INSERT INTO detect_runs (connection_id, started_at) VALUES (nullif($1, 0), $2) RETURNING id`,
		r.opts.ConnectionID, r.now).Scan(&r.id); err != nil {
		return fmt.Errorf("recording the detect run: %w", err)
	}
	r.report.RunID = r.id
	return r.gate(ctx)
}

func (r *run) loadConnections(ctx context.Context) error {
	rows, err := r.tx.Query(ctx, `
		SELECT c.id, c.name, c.kind, c.status, coalesce(c.status_reason, ''), c.last_synced_at, c.config,
		       EXISTS (SELECT 1 FROM deals d WHERE d.connection_id = c.id AND d.deleted_at IS NULL),
		       EXISTS (SELECT 1 FROM leads l WHERE l.connection_id = c.id AND l.deleted_at IS NULL)
		FROM connections c ORDER BY c.name`)
	if err != nil {
		return fmt.Errorf("reading connections: %w", err)
	}
	r.conns = map[int64]*Connection{}
	var (
		c      Connection
		synced *time.Time
		cfg    []byte
	)
	_, err = pgx.ForEachRow(rows, []any{&c.ID, &c.Name, &c.Kind, &c.Status, &c.StatusReason, &synced, &cfg, &c.HasDeals, &c.HasLeads}, func() error {
		conn := c
		conn.LastSyncedAt = time.Time{}
		if synced != nil {
			conn.LastSyncedAt = *synced
		}
		if err := parseConnectionConfig(cfg, &conn); err != nil {
			return err
		}
		r.conns[conn.ID] = &conn
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading connections: %w", err)
	}
	return nil
}

// lastFailureSQL finds, per connection, the streams whose latest finished sync failed.
const lastFailureSQL = `
SELECT connection_id, stream, finished_at, coalesce(error, '')
FROM (SELECT DISTINCT ON (connection_id, stream) connection_id, stream, status, finished_at, error
      FROM sync_runs WHERE status IN ('succeeded', 'failed') AND finished_at IS NOT NULL
      ORDER BY connection_id, stream, started_at DESC) latest
WHERE status = 'failed'`

// unfinishedSQL finds the streams whose first sync is still under way (a backfill: never
// succeeded, running or resumable).
const unfinishedSQL = `
SELECT connection_id, stream FROM sync_runs
GROUP BY connection_id, stream
HAVING NOT bool_or(status = 'succeeded') AND bool_or(status IN ('running', 'snoozed'))
ORDER BY connection_id, stream`

// gate decides which connections' data is trustworthy now (pitfall 10 of
// docs/sync-correctness.md): the connection is active, its last successful sync is within
// its freshness limit, no stream's latest sync failed, and no stream's first sync is
// still under way.
func (r *run) gate(ctx context.Context) error {
	rows, err := r.tx.Query(ctx, lastFailureSQL)
	if err != nil {
		return fmt.Errorf("reading failed syncs: %w", err)
	}
	failures := map[int64]string{}
	var (
		id          int64
		stream, msg string
		finishedAt  time.Time
	)
	if _, err := pgx.ForEachRow(rows, []any{&id, &stream, &finishedAt, &msg}, func() error {
		if _, seen := failures[id]; !seen {
			failures[id] = fmt.Sprintf("the last %s sync failed at %s: %s", stream, finishedAt.UTC().Format(time.RFC3339), firstLine(msg))
		}
		return nil
	}); err != nil {
		return fmt.Errorf("reading failed syncs: %w", err)
	}
	if rows, err = r.tx.Query(ctx, unfinishedSQL); err != nil {
		return fmt.Errorf("reading unfinished syncs: %w", err)
	}
	if _, err := pgx.ForEachRow(rows, []any{&id, &stream}, func() error {
		if _, seen := failures[id]; !seen {
			failures[id] = fmt.Sprintf("the first %s sync has not finished yet", stream)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("reading unfinished syncs: %w", err)
	}
	baselined, err := r.baselines(ctx)
	if err != nil {
		return err
	}
	allDealsFresh, allLeadsFresh := true, true
	var oldest time.Time
	ids := slices.SortedFunc(maps.Keys(r.conns), func(a, b int64) int { return strings.Compare(r.conns[a].Name, r.conns[b].Name) })
	for _, id := range ids {
		c := r.conns[id]
		s := ScopeStatus{ConnectionID: c.ID, Name: c.Name, DataAsOf: c.LastSyncedAt}
		switch {
		case c.Status != "active":
			s.Reason = "connection is " + strings.ReplaceAll(c.Status, "_", " ")
			if c.StatusReason != "" {
				s.Reason += ": " + c.StatusReason
			}
		case c.LastSyncedAt.IsZero():
			s.Reason = "never synced"
		case failures[c.ID] != "":
			s.Reason = failures[c.ID]
		case r.now.Sub(c.LastSyncedAt) > c.Freshness:
			s.Reason = fmt.Sprintf("last successful sync %s ago, older than its freshness limit %s",
				r.now.Sub(c.LastSyncedAt).Round(time.Minute), c.Freshness)
		default:
			s.Evaluated = true
		}
		if !s.Evaluated {
			// A connection that is not fresh makes org totals partial — also before its
			// first sync, when it holds nothing yet. A paused one (removed from the config
			// by revenue ops) only counts with the data it has.
			mayHold := c.Status != "paused"
			allDealsFresh = allDealsFresh && !c.HasDeals && !(mayHold && c.Kind != "mailchimp")
			allLeadsFresh = allLeadsFresh && !c.HasLeads && !mayHold
			r.logger.InfoContext(ctx, "detect: skipping connection", "connection", c.Name, "reason", s.Reason)
		}
		if s.Evaluated && (oldest.IsZero() || c.LastSyncedAt.Before(oldest)) {
			oldest = c.LastSyncedAt
		}
		if s.Evaluated && (r.opts.ConnectionID == 0 || r.opts.ConnectionID == c.ID) && c.Kind != "mailchimp" {
			r.scope.conns = append(r.scope.conns, c.ID)
			if !baselined[fmt.Sprintf("connection:%d", c.ID)] {
				s.Baseline = true
				r.scope.baselineConns = append(r.scope.baselineConns, c.ID)
			}
		}
		r.report.Scopes = append(r.report.Scopes, s)
	}
	rules := r.settings.Rules
	enabled := map[Rule]bool{
		RuleIdle: rules.Idle.Enabled, RuleStuckInStage: rules.StuckInStage.Enabled,
		RulePastCloseDate: rules.PastCloseDate.Enabled, RuleCloseDateSlipped: rules.CloseDateSlipped.Enabled,
		RuleNoNextStep: rules.NoNextStep.Enabled, RuleCoverageShortfall: rules.CoverageShortfall.Enabled,
		RuleLeadVelocityDrop: rules.LeadVelocityDrop.Enabled,
	}
	for _, rule := range DealRules {
		if enabled[rule] {
			r.scope.dealRules = append(r.scope.dealRules, string(rule))
		}
	}
	org := ScopeStatus{Name: "org rules (coverage shortfall, lead velocity drop)", DataAsOf: oldest}
	hasData := !oldest.IsZero() // at least one fresh connection
	if enabled[RuleCoverageShortfall] && allDealsFresh && hasData {
		r.scope.orgRules = append(r.scope.orgRules, string(RuleCoverageShortfall))
	}
	if enabled[RuleLeadVelocityDrop] && allLeadsFresh && hasData {
		r.scope.orgRules = append(r.scope.orgRules, string(RuleLeadVelocityDrop))
	}
	switch {
	case len(r.scope.orgRules) > 0:
		org.Evaluated = true
		if !baselined["org"] {
			org.Baseline, r.scope.baselineOrg = true, true
		}
		if !allDealsFresh || !allLeadsFresh {
			org.Reason = "only " + strings.Join(r.scope.orgRules, ", ") + ": some connections are not fresh"
		}
	case !enabled[RuleCoverageShortfall] && !enabled[RuleLeadVelocityDrop]:
		org.Reason = "both rules are disabled"
	case !hasData:
		org.Reason = "no connection has synced yet"
	default:
		org.Reason = "some connections are not fresh (see above), so totals would be partial"
	}
	r.report.Scopes = append(r.report.Scopes, org)
	for rule, on := range enabled {
		if !on {
			r.scope.disabled = append(r.scope.disabled, string(rule))
		}
	}
	slices.Sort(r.scope.disabled)
	r.scope.now, r.scope.run = r.now, r.id
	r.scope.nextDue = r.cals.of("").After(r.now, r.settings.Routing.Cooldown)
	return nil
}

func (r *run) baselines(ctx context.Context) (map[string]bool, error) {
	rows, err := r.tx.Query(ctx, `SELECT scope FROM alert_baselines`)
	if err != nil {
		return nil, fmt.Errorf("reading alert baselines: %w", err)
	}
	scopes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("reading alert baselines: %w", err)
	}
	out := map[string]bool{}
	for _, s := range scopes {
		out[s] = true
	}
	return out, nil
}

// findings prepares the run's tables, the deal rules' parameters and the org rules' findings.
func (r *run) findings(ctx context.Context) error {
	for _, q := range []string{`DROP TABLE IF EXISTS detect_org_findings, detect_diff`, orgFindingsTableSQL} {
		if _, err := r.tx.Exec(ctx, q); err != nil {
			return fmt.Errorf("preparing findings: %w", err)
		}
	}
	if len(r.scope.conns) > 0 && len(r.scope.dealRules) > 0 {
		var err error
		r.dealArgs, err = dealRuleArgs(ctx, r.tx, dealRuleInput{
			rules: r.settings.Rules, now: r.now, conns: r.scope.conns, cals: r.cals, dir: r.dir, logger: r.logger,
		})
		if err != nil {
			return err
		}
	}
	var asOf time.Time
	for _, s := range r.report.Scopes {
		if s.ConnectionID == 0 {
			asOf = s.DataAsOf
		}
	}
	org := r.cals.of("")
	for _, rule := range r.scope.orgRules {
		var err error
		switch Rule(rule) {
		case RuleCoverageShortfall:
			err = evaluateCoverage(ctx, r.tx, r.settings.Rules.CoverageShortfall, r.dir, org.Today(r.now), asOf)
		case RuleLeadVelocityDrop:
			err = evaluateLeadVelocity(ctx, r.tx, r.settings.Rules.LeadVelocityDrop, org, r.now, asOf)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (r *run) lifecycle(ctx context.Context) error {
	c, err := applyLifecycle(ctx, r.tx, r.scope, r.dealArgs, r.logger)
	if err != nil {
		return err
	}
	r.report.Opened, r.report.Updated, r.report.Resolved = c.Opened, c.Updated, c.Resolved
	return nil
}

// finish records the baselines taken, the run's counts and the active alerts per rule.
func (r *run) finish(ctx context.Context) error {
	var scopes []string
	for _, id := range r.scope.baselineConns {
		scopes = append(scopes, fmt.Sprintf("connection:%d", id))
	}
	if r.scope.baselineOrg {
		scopes = append(scopes, "org")
	}
	if _, err := r.tx.Exec(ctx, `
		INSERT INTO alert_baselines (scope, run_id, baselined_at) SELECT unnest($1::text[]), $2, $3
		ON CONFLICT (scope) DO NOTHING`, scopes, r.id, r.now); err != nil {
		return fmt.Errorf("recording alert baselines: %w", err)
	}
	doc, err := json.Marshal(r.report.Scopes)
	if err != nil {
		return fmt.Errorf("encoding run scopes: %w", err)
	}
	if _, err := r.tx.Exec(ctx, `
		UPDATE detect_runs SET finished_at = $2, scopes = $3, opened = $4, updated = $5, resolved = $6, notifications = $7
		WHERE id = $1`, r.id, r.now, doc, r.report.Opened, r.report.Updated, r.report.Resolved, len(r.report.Notifications)); err != nil {
		return fmt.Errorf("recording the detect run: %w", err)
	}
	if r.opts.CountActive {
		rows, err := r.tx.Query(ctx, `SELECT rule, count(*)::int FROM alerts WHERE state <> 'resolved' GROUP BY rule`)
		if err != nil {
			return fmt.Errorf("counting active alerts: %w", err)
		}
		r.report.Active = map[string]int{}
		var rule string
		var n int
		if _, err := pgx.ForEachRow(rows, []any{&rule, &n}, func() error {
			r.report.Active[rule] = n
			return nil
		}); err != nil {
			return fmt.Errorf("counting active alerts: %w", err)
		}
	}
	if _, err := r.tx.Exec(ctx, `DROP TABLE detect_org_findings, detect_diff`); err != nil {
		return fmt.Errorf("dropping findings: %w", err)
	}
	return nil
}

// outcome describes a told alert for the report.
func (r *run) outcome(a *dueAlert, delivery string) Outcome {
	o := Outcome{
		AlertID: a.id, Rule: a.rule, Severity: a.severity, Reason: a.reason, Subject: a.label(),
		Delivery: delivery, Details: a.evidence(),
	}
	if o.Details.DealID != 0 {
		o.Amount = amountText(o.Details.Amount, o.Details.Currency)
	}
	if p, ok := r.dir.Person(a.ownerID); ok {
		o.Owner = p.Email
	}
	v := r.view(Recipient{}, a.ownerID)
	o.Why = v.evidence(r.alert(a, "open"))
	return o
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
