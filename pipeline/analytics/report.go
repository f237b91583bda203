// Package analytics computes pipewatch's pipeline metrics in Postgres: lead velocity, lead
// and stage conversion, win rate, sales cycle, open and weighted pipeline, coverage against
// targets, pipeline velocity, slipped and overdue deals, for a period and a scope. Every
// metric is one set-based query over the normalized model; the definitions are written on
// the types below and in README.md (Metrics).
//
// Rules shared by every metric:
//   - Deleted rows (deleted_at set) never count. A deal's owner, team, stage and amount are
//     its current values; deals of owners who left (inactive or tombstoned) still count.
//   - Periods are whole UTC days; a timestamp belongs to the UTC day it falls on.
//   - Money is never added across currencies: every amount is reported per currency
//     ("" = deals without a currency). Counts and count-based rates span all currencies.
//   - A deal without an amount counts in every count and adds nothing to any sum; it is
//     reported in deals_without_amount. A deal without an owner counts in the org totals,
//     in its own owner row ("owner": "") and in no team or owner target.
//   - A reopened deal (closed, then open again: it is open now and its stage history shows
//     a stay in a closed stage that ended) is an open deal; its earlier close never counts.
//     A deal closed, reopened and closed again counts once, at its last close.
package analytics

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
)

// SchemaVersion is the version of the JSON document; it changes only when a field is
// renamed or removed (fields are added without a change).
const SchemaVersion = 1

// DB is what the report reads from: a pool, a connection or a transaction.
type DB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Request says what to report on.
type Request struct {
	Period Period
	Scope  Scope
	// Now is the report's clock: "today" (past close date, future periods, the month in
	// progress) is its UTC day.
	Now time.Time
}

// Report is the pipeline metrics of one period and scope. Its JSON form is the stable
// document of `pipewatch report --format json` and GET /api/report.
type Report struct {
	SchemaVersion int        `json:"schema_version"`
	GeneratedAt   time.Time  `json:"generated_at"`
	AsOf          string     `json:"as_of"`
	Period        PeriodInfo `json:"period"`
	Scope         ScopeInfo  `json:"scope"`
	// LeadVelocity and LeadFunnel are null for a pipeline scope: leads belong to no pipeline.
	LeadVelocity   *LeadVelocity   `json:"lead_velocity"`
	LeadFunnel     *LeadFunnel     `json:"lead_funnel"`
	StageFunnel    StageFunnel     `json:"stage_funnel"`
	WinRate        WinRate         `json:"win_rate"`
	SalesCycle     SalesCycle      `json:"sales_cycle"`
	OpenPipeline   OpenPipeline    `json:"open_pipeline"`
	Coverage       []Coverage      `json:"coverage"`
	Velocity       []Velocity      `json:"velocity"`
	Slipped        DealSet         `json:"slipped"`
	PastCloseDate  DealSet         `json:"past_close_date"`
	Owners         []OwnerRow      `json:"owners"`
	UnmappedStages []UnmappedStage `json:"unmapped_stages"`
}

// PeriodInfo is the report's period in JSON.
type PeriodInfo struct {
	Label string `json:"label"`
	Start string `json:"start"`
	End   string `json:"end"`
}

// ScopeInfo is the report's scope in JSON.
type ScopeInfo struct {
	Kind  ScopeKind `json:"kind"`
	Value string    `json:"value"`
}

// BuildReport computes every metric of req in one read-only snapshot of the database.
func BuildReport(ctx context.Context, db DB, req Request) (*Report, error) {
	if req.Scope.Kind == "" {
		req.Scope.Kind = ScopeAll
	}
	if req.Period.Start.IsZero() {
		return nil, errors.New("building report: no period")
	}
	tx, err := beginSnapshot(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("beginning report snapshot: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	// The queries are short aggregates over covering indexes: compiling them (JIT) and
	// parallel workers cost more than they save (measured on 2 cores, see README), their
	// hash tables fit in memory with a little more than the default work_mem, and a plan
	// made for the period at hand beats a cached generic one (a period's selectivity
	// decides between index ranges and scans).
	if _, err := tx.Exec(ctx, "SET LOCAL jit = off; SET LOCAL max_parallel_workers_per_gather = 0; SET LOCAL random_page_cost = 1.1; SET LOCAL work_mem = '64MB'; SET LOCAL plan_cache_mode = force_custom_plan"); err != nil {
		return nil, fmt.Errorf("configuring report snapshot: %w", err)
	}

	q, args := req.Scope.existsQuery()
	var exists bool
	if err := tx.QueryRow(ctx, q, args).Scan(&exists); err != nil {
		return nil, fmt.Errorf("checking scope %s: %w", req.Scope, err)
	}
	if !exists {
		return nil, fmt.Errorf("scope %s: %w", req.Scope, ErrUnknownScope)
	}

	today := utcDay(req.Now)
	r := &Report{
		SchemaVersion: SchemaVersion,
		GeneratedAt:   req.Now.UTC(),
		AsOf:          today.Format(time.DateOnly),
		Period: PeriodInfo{
			Label: req.Period.Label,
			Start: req.Period.Start.Format(time.DateOnly),
			End:   req.Period.End.Format(time.DateOnly),
		},
		Scope: ScopeInfo{Kind: req.Scope.Kind, Value: req.Scope.Value},
	}
	b := &builder{tx: tx, req: req, today: today, report: r,
		openQualified: map[string]int64{}, ownerRows: map[[2]string]*OwnerRow{}}
	steps := []struct {
		name string
		run  func(context.Context) error
	}{
		{"lead velocity", b.leadVelocity},
		{"lead funnel", b.leadFunnel},
		{"stage funnel", b.stageFunnel},
		{"open pipeline", b.openPipeline},
		{"closed deals", b.closedDeals},
		{"coverage", b.coverage},
		{"slipped deals", b.slipped},
		{"owners", b.owners},
	}
	for _, s := range steps {
		if err := s.run(ctx); err != nil {
			return nil, fmt.Errorf("computing %s: %w", s.name, err)
		}
	}
	unmapped, err := UnmappedStages(ctx, tx, req.Scope)
	if err != nil {
		return nil, err
	}
	r.UnmappedStages = unmapped
	return r, nil
}

// ErrUnknownScope is returned when the scope names no team, owner, pipeline or connection.
var ErrUnknownScope = errors.New("no such team, owner, pipeline or connection")

func beginSnapshot(ctx context.Context, db DB) (pgx.Tx, error) {
	if txb, ok := db.(interface {
		BeginTx(context.Context, pgx.TxOptions) (pgx.Tx, error)
	}); ok {
		return txb.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	}
	return db.Begin(ctx) // already in a transaction: a savepoint sees its snapshot
}

// builder fills one report.
type builder struct {
	tx     pgx.Tx
	req    Request
	today  time.Time
	report *Report
	// openQualified (per currency) and ownerRows (per owner and currency) are filled by
	// one step and completed by a later one.
	openQualified map[string]int64
	ownerRows     map[[2]string]*OwnerRow
}

// args are the named parameters every metric query may use.
func (b *builder) args() pgx.NamedArgs {
	p := b.req.Period
	tfrom, tuntil := p.trailingYear()
	return pgx.NamedArgs{
		"scope":  b.req.Scope.Value,
		"from":   p.Start,
		"until":  p.until(),
		"ps":     pgDate(p.Start),
		"pe":     pgDate(p.End),
		"today":  pgDate(b.today),
		"tfrom":  tfrom,
		"tuntil": tuntil,
	}
}

func utcDay(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// pgDate renders a day for a date parameter, so the session time zone plays no part.
func pgDate(t time.Time) string { return t.Format(time.DateOnly) }

// Rounding of reported numbers: ratios to 4 decimals, money computed here (weighted
// amounts, averages, velocity) to 2. Days are rounded to 2 in SQL.
const (
	ratioPlaces = 4
	moneyPlaces = 2
)

// ratio is n ÷ d rounded to 4 decimals, or null when d is zero.
func ratio(n, d decimal.Decimal) decimal.NullDecimal {
	if d.IsZero() {
		return decimal.NullDecimal{}
	}
	return decimal.NewNullDecimal(n.DivRound(d, 16).Round(ratioPlaces))
}

func countRatio(n, d int64) decimal.NullDecimal {
	return ratio(decimal.NewFromInt(n), decimal.NewFromInt(d))
}
