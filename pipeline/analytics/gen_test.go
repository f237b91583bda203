package analytics_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"
)

// The generated data set: plain records inserted with SQL, from which the tests compute
// the expected metrics on their own (expect_test.go).

type genConnection struct {
	id   int64
	name string
	kind string
}

type genPipeline struct {
	id       int64
	conn     int
	name     string
	position int
}

type genStage struct {
	id          int64
	pipeline    int
	ext         string
	name        string
	position    int
	canonical   string // "" = NULL (unmapped)
	probability decimal.NullDecimal
	isClosed    bool
	isWon       bool
	deleted     bool
}

type genOwner struct {
	id    int64
	conn  int
	ext   string
	email string // "" = NULL
	name  string
	team  string // "" = NULL
	left  bool   // tombstoned: their deals still count
}

type genHistory struct {
	stage   int
	entered time.Time
}

type genChange struct {
	field    string
	old, new string
	at       time.Time
}

type genDeal struct {
	id          int64
	ext         string
	pipeline    int
	stage       int
	owner       int // -1 = none
	amount      decimal.NullDecimal
	currency    string // "" = NULL
	created     time.Time
	closeDate   time.Time // zero = NULL
	closedAt    time.Time // zero = NULL
	isClosed    bool
	isWon       bool
	probability decimal.NullDecimal
	forecast    string
	deleted     bool
	history     []genHistory
	changes     []genChange
}

type genLead struct {
	conn          int
	owner         int
	created       time.Time
	mqlAt, sqlAt  time.Time
	convertedDeal int // -1 = none
	deleted       bool
}

type genTarget struct {
	ownerEmail, team string
	period           string
	amount           decimal.Decimal
	currency         string
}

type dataSet struct {
	connections []genConnection
	pipelines   []genPipeline
	stages      []genStage
	owners      []genOwner
	deals       []genDeal
	leads       []genLead
	targets     []genTarget
}

var (
	genStart = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	genEnd   = time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC)
	// testNow is the report clock: inside 2026-Q4 and 2026-11.
	testNow = time.Date(2026, 11, 18, 15, 4, 5, 0, time.UTC)
)

func prob(p float64) decimal.NullDecimal {
	return decimal.NewNullDecimal(decimal.NewFromFloat(p))
}

// generate builds a deterministic data set with every case the metrics must handle:
// two connections (one Pipedrive-like without won/lost stages), unmapped and deleted
// stages, an owner in two CRMs under one email, an owner who left, an owner without an
// email, deals without owner, amount, currency or creation time, deleted deals and leads,
// reopened deals, close-date pushes (and changes of other fields), zero targets.
func generate(seed uint64) *dataSet {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	ds := &dataSet{
		connections: []genConnection{{name: "hubspot-main", kind: "hubspot"}, {name: "pipedrive-eu", kind: "pipedrive"}},
		pipelines:   []genPipeline{{conn: 0, name: "Sales", position: 0}, {conn: 1, name: "EU", position: 0}},
		stages: []genStage{
			{pipeline: 0, ext: "appointmentscheduled", name: "Appointment Scheduled", canonical: "lead_generation", probability: prob(0.1)},
			{pipeline: 0, ext: "qualifiedtobuy", name: "Qualified To Buy", canonical: "qualification", probability: prob(0.2)},
			{pipeline: 0, ext: "discovery", name: "Discovery", canonical: "needs_assessment", probability: prob(0.4)},
			{pipeline: 0, ext: "presentationscheduled", name: "Presentation Scheduled", canonical: "proposal", probability: prob(0.6)},
			{pipeline: 0, ext: "decisionmakerboughtin", name: "Decision Maker Bought-In", canonical: "negotiation", probability: prob(0.8)},
			{pipeline: 0, ext: "contractsent", name: "Contract Sent", canonical: "closing", probability: prob(0.9)},
			{pipeline: 0, ext: "closedwon", name: "Closed Won", canonical: "closed_won", probability: prob(1), isClosed: true, isWon: true},
			{pipeline: 0, ext: "closedlost", name: "Closed Lost", canonical: "closed_lost", probability: prob(0), isClosed: true},
			{pipeline: 0, ext: "legal", name: "Legal Review"},
			{pipeline: 1, ext: "1", name: "Lead In", canonical: "lead_generation", probability: prob(0.1)},
			{pipeline: 1, ext: "2", name: "Contact Made", canonical: "qualification", probability: prob(0.25)},
			{pipeline: 1, ext: "3", name: "Demo Scheduled", canonical: "proposal"},
			{pipeline: 1, ext: "4", name: "Negotiations Started", canonical: "negotiation", probability: prob(0.8)},
			{pipeline: 1, ext: "5", name: "Mystery", probability: prob(0.5)},
			{pipeline: 1, ext: "6", name: "Retired", deleted: true},
		},
		owners: []genOwner{
			{conn: 0, ext: "u1", email: "ana@example.com", name: "Ana", team: "east"},
			{conn: 0, ext: "u2", email: "bob@example.com", name: "Bob", team: "east"},
			{conn: 0, ext: "u3", email: "cy@example.com", name: "Cy", team: "west"},
			{conn: 0, ext: "u4", email: "dee@example.com", name: "Dee", team: "west", left: true},
			{conn: 1, ext: "10", email: "ANA@example.com", name: "Ana P", team: "east"},
			{conn: 1, ext: "11", email: "eve@example.com", name: "Eve"},
			{conn: 1, ext: "12", name: "Robot", team: "west"},
		},
		targets: []genTarget{
			{period: "2026-Q4", amount: decimal.NewFromInt(500000), currency: "USD"},
			{period: "2026-Q4", amount: decimal.NewFromInt(300000), currency: "EUR"},
			{period: "2026-Q4", team: "east", amount: decimal.NewFromInt(200000), currency: "USD"},
			{period: "2026-Q4", team: "west", amount: decimal.Zero, currency: "EUR"},
			{period: "2026-Q4", ownerEmail: "ana@example.com", amount: decimal.NewFromInt(150000), currency: "USD"},
			{period: "2026-Q4", ownerEmail: "BOB@example.com", amount: decimal.NewFromInt(1000), currency: "USD"},
			{period: "2026-Q4", ownerEmail: "cy@example.com", amount: decimal.NewFromInt(50000), currency: "EUR"},
			{period: "2026-Q4", ownerEmail: "nobody@example.com", amount: decimal.NewFromInt(10000), currency: "USD"},
			{period: "2026-10", amount: decimal.NewFromInt(150000), currency: "USD"},
			{period: "2026-10", ownerEmail: "ana@example.com", amount: decimal.NewFromInt(50000), currency: "USD"},
			{period: "2027-Q1", amount: decimal.NewFromInt(600000), currency: "USD"},
			{period: "2027-Q1", team: "east", amount: decimal.NewFromInt(100000), currency: "USD"},
		},
	}
	span := genEnd.Sub(genStart)
	randTime := func(from, to time.Time) time.Time {
		if !to.After(from) {
			return from
		}
		return from.Add(time.Duration(rng.Int64N(int64(to.Sub(from)/time.Second))) * time.Second)
	}
	day := func(t time.Time) time.Time { return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC) }
	openStages := map[int][]int{0: {0, 1, 2, 3, 4, 5, 8}, 1: {9, 10, 11, 12, 13}}
	currencies := []string{"USD", "USD", "USD", "EUR", "EUR", ""}
	forecasts := []string{"pipeline", "best_case", "commit", "omitted", "", "Omitted"}

	for i := range 700 {
		d := genDeal{ext: fmt.Sprintf("D%04d", i), pipeline: rng.IntN(2), owner: rng.IntN(len(ds.owners))}
		if rng.Float64() < 0.06 {
			d.owner = -1
		}
		d.created = genStart.Add(time.Duration(rng.Int64N(int64(span/time.Second))) * time.Second)
		if d.created.After(testNow) {
			d.created = randTime(genStart, testNow)
		}
		if rng.Float64() < 0.95 {
			d.amount = decimal.NewNullDecimal(decimal.New(rng.Int64N(10_000_000)+10_000, -2))
		}
		d.currency = currencies[rng.IntN(len(currencies))]
		if d.currency == "" && rng.Float64() < 0.5 {
			d.currency = "GBP"
		}
		if rng.Float64() < 0.2 {
			d.probability = prob(float64(rng.IntN(21)) * 0.05)
		}
		d.forecast = forecasts[rng.IntN(len(forecasts))]
		d.deleted = rng.Float64() < 0.03
		opens := openStages[d.pipeline]
		state := rng.Float64()
		end := testNow
		if state >= 0.35 {
			closedAt := d.created.Add(time.Duration(1+rng.Int64N(200*86400)) * time.Second)
			if rng.Float64() < 0.02 {
				closedAt = d.created.Add(-time.Duration(1+rng.Int64N(5*86400)) * time.Second) // bad vendor data
			}
			if closedAt.Before(testNow) {
				d.isClosed, d.isWon, d.closedAt, end = true, state < 0.65, closedAt, closedAt
				d.closeDate = day(closedAt)
			}
		}
		// Walk forward through the pipeline's open stages, sometimes skipping some.
		pos := rng.IntN(3)
		t := d.created
		for pos < len(opens) && len(d.history) < 4 {
			t = randTime(t, t.Add(end.Sub(t)/3))
			d.history = append(d.history, genHistory{stage: opens[pos], entered: t})
			pos += 1 + rng.IntN(2)
		}
		last := d.history[len(d.history)-1].stage
		d.stage = last
		switch {
		case d.isClosed && d.pipeline == 0:
			d.stage = 7
			if d.isWon {
				d.stage = 6
			}
			d.history = append(d.history, genHistory{stage: d.stage, entered: end})
		case !d.isClosed && d.pipeline == 0 && rng.Float64() < 0.15:
			// Reopened: lost, then back to an open stage.
			lostAt := randTime(t, testNow)
			d.history = append(d.history, genHistory{stage: 7, entered: lostAt},
				genHistory{stage: opens[rng.IntN(len(opens))], entered: randTime(lostAt, testNow)})
			d.stage = d.history[len(d.history)-1].stage
		}
		if rng.Float64() < 0.05 {
			d.history = nil // the vendor keeps no stage history for this deal
		}
		if !d.isClosed {
			if rng.Float64() < 0.95 {
				d.closeDate = day(randTime(d.created, d.created.Add(240*24*time.Hour)))
			}
		}
		if rng.Float64() < 0.3 {
			for range 1 + rng.IntN(3) {
				old := day(randTime(genStart, genEnd))
				shift := time.Duration(rng.IntN(181)-60) * 24 * time.Hour
				d.changes = append(d.changes, genChange{field: "close_date", old: old.Format(time.DateOnly),
					new: old.Add(shift).Format(time.DateOnly), at: randTime(d.created, testNow)})
			}
			if rng.Float64() < 0.3 {
				d.changes = append(d.changes, genChange{field: "amount", old: "100", new: "2026-12-01", at: randTime(d.created, testNow)},
					genChange{field: "close_date", old: "", new: "2027-01-15", at: randTime(d.created, testNow)})
			}
		}
		if rng.Float64() < 0.03 {
			d.created = time.Time{} // the vendor sent no creation time
		}
		ds.deals = append(ds.deals, d)
	}

	for range 400 {
		l := genLead{conn: rng.IntN(2), owner: rng.IntN(len(ds.owners)), convertedDeal: -1}
		if rng.Float64() < 0.08 {
			l.owner = -1
		}
		l.created = randTime(genStart, testNow)
		if rng.Float64() < 0.7 {
			l.mqlAt = randTime(l.created, l.created.Add(40*24*time.Hour))
			if rng.Float64() < 0.6 {
				l.sqlAt = randTime(l.mqlAt, l.mqlAt.Add(40*24*time.Hour))
			}
		} else if rng.Float64() < 0.15 {
			l.sqlAt = randTime(l.created, l.created.Add(60*24*time.Hour)) // skipped MQL
		}
		if l.mqlAt.After(testNow) {
			l.mqlAt, l.sqlAt = time.Time{}, time.Time{}
		}
		if l.sqlAt.After(testNow) {
			l.sqlAt = time.Time{}
		}
		if rng.Float64() < 0.35 {
			l.convertedDeal = rng.IntN(len(ds.deals))
		}
		l.deleted = rng.Float64() < 0.03
		ds.leads = append(ds.leads, l)
	}
	return ds
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

func nullDate(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.Format(time.DateOnly)
}

func nullText(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// insert writes the data set with plain SQL and records the ids it got.
func (ds *dataSet) insert(ctx context.Context, t testing.TB, db pgx.Tx) {
	t.Helper()
	for i := range ds.connections {
		c := &ds.connections[i]
		require.NoError(t, db.QueryRow(ctx, `INSERT INTO connections (name, kind) VALUES ($1, $2) RETURNING id`,
			c.name, c.kind).Scan(&c.id))
	}
	for i := range ds.pipelines {
		p := &ds.pipelines[i]
		require.NoError(t, db.QueryRow(ctx, `INSERT INTO pipelines (connection_id, external_id, name, position)
			VALUES ($1, $2, $3, $4) RETURNING id`, ds.connections[p.conn].id, fmt.Sprint("P", i), p.name, p.position).Scan(&p.id))
	}
	positions := map[int]int{}
	for i := range ds.stages {
		s := &ds.stages[i]
		s.position = positions[s.pipeline]
		positions[s.pipeline]++
		p := ds.pipelines[s.pipeline]
		var deleted any
		if s.deleted {
			deleted = testNow.Add(-time.Hour)
		}
		require.NoError(t, db.QueryRow(ctx, `INSERT INTO stages (connection_id, external_id, pipeline_id, pipeline_external_id,
			name, position, probability, is_closed, is_won, canonical_stage, deleted_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id`,
			ds.connections[p.conn].id, s.ext, p.id, fmt.Sprint("P", s.pipeline), s.name, s.position, s.probability,
			s.isClosed, s.isWon, nullText(s.canonical), deleted).Scan(&s.id))
	}
	for i := range ds.owners {
		o := &ds.owners[i]
		var deleted any
		if o.left {
			deleted = testNow.Add(-24 * time.Hour)
		}
		require.NoError(t, db.QueryRow(ctx, `INSERT INTO owners (connection_id, external_id, email, name, team, active, deleted_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
			ds.connections[o.conn].id, o.ext, nullText(o.email), o.name, nullText(o.team), !o.left, deleted).Scan(&o.id))
	}
	rows := make([][]any, 0, len(ds.deals))
	for _, d := range ds.deals {
		p := ds.pipelines[d.pipeline]
		var owner, deleted any
		if d.owner >= 0 {
			owner = ds.owners[d.owner].id
		}
		if d.deleted {
			deleted = testNow.Add(-2 * time.Hour)
		}
		rows = append(rows, []any{ds.connections[p.conn].id, d.ext, d.amount, nullText(d.currency), p.id, ds.stages[d.stage].id,
			owner, nullDate(d.closeDate), nullTime(d.closedAt), d.isClosed, d.isWon, d.probability, nullText(d.forecast),
			nullTime(d.created), deleted})
	}
	_, err := db.CopyFrom(ctx, pgx.Identifier{"deals"}, []string{"connection_id", "external_id", "amount", "currency",
		"pipeline_id", "stage_id", "owner_id", "close_date", "closed_at", "is_closed", "is_won", "probability",
		"forecast_category", "remote_created_at", "deleted_at"}, pgx.CopyFromRows(rows))
	require.NoError(t, err)
	ids := map[string]int64{}
	r, err := db.Query(ctx, `SELECT external_id, id FROM deals`)
	require.NoError(t, err)
	var ext string
	var id int64
	_, err = pgx.ForEachRow(r, []any{&ext, &id}, func() error { ids[ext] = id; return nil })
	require.NoError(t, err)

	var history, changes [][]any
	for i := range ds.deals {
		d := &ds.deals[i]
		d.id = ids[d.ext]
		for j, h := range d.history {
			var exited any
			if j+1 < len(d.history) {
				exited = d.history[j+1].entered
			}
			var stageID any = ds.stages[h.stage].id
			if !ds.stages[h.stage].isClosed && (d.id+int64(j))%11 == 0 {
				stageID = nil // not resolved yet: the stage funnel resolves stays by external id
			}
			history = append(history, []any{d.id, stageID, ds.stages[h.stage].ext, h.entered, exited, "vendor"})
		}
		for _, c := range d.changes {
			changes = append(changes, []any{d.id, c.field, nullText(c.old), c.new, c.at})
		}
	}
	_, err = db.CopyFrom(ctx, pgx.Identifier{"deal_stage_history"},
		[]string{"deal_id", "stage_id", "stage_external_id", "entered_at", "exited_at", "source"}, pgx.CopyFromRows(history))
	require.NoError(t, err)
	_, err = db.CopyFrom(ctx, pgx.Identifier{"deal_changes"},
		[]string{"deal_id", "field", "old_value", "new_value", "changed_at"}, pgx.CopyFromRows(changes))
	require.NoError(t, err)

	leads := make([][]any, 0, len(ds.leads))
	for i, l := range ds.leads {
		var owner, deal, deleted any
		if l.owner >= 0 {
			owner = ds.owners[l.owner].id
		}
		if l.convertedDeal >= 0 {
			deal = ds.deals[l.convertedDeal].id
		}
		if l.deleted {
			deleted = testNow.Add(-time.Hour)
		}
		status := "new"
		switch {
		case l.convertedDeal >= 0:
			status = "converted"
		case !l.sqlAt.IsZero():
			status = "sql"
		case !l.mqlAt.IsZero():
			status = "mql"
		}
		leads = append(leads, []any{ds.connections[l.conn].id, fmt.Sprint("L", i), status, nullTime(l.mqlAt), nullTime(l.sqlAt),
			owner, deal, nullTime(l.created), deleted})
	}
	_, err = db.CopyFrom(ctx, pgx.Identifier{"leads"}, []string{"connection_id", "external_id", "status", "mql_at", "sql_at",
		"owner_id", "converted_deal_id", "remote_created_at", "deleted_at"}, pgx.CopyFromRows(leads))
	require.NoError(t, err)

	for _, tg := range ds.targets {
		p := mustPeriod(t, tg.period)
		_, err := db.Exec(ctx, `INSERT INTO targets (owner_email, team, period_start, period_end, amount, currency)
			VALUES ($1, $2, $3, $4, $5, $6)`, nullText(tg.ownerEmail), nullText(tg.team),
			p.Start.Format(time.DateOnly), p.End.Format(time.DateOnly), tg.amount, tg.currency)
		require.NoError(t, err)
	}
}
