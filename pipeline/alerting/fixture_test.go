package alerting_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/config"
	"github.com/pipewatch/pipewatch/internal/dbtest"
	"github.com/pipewatch/pipewatch/internal/notify"
	"github.com/pipewatch/pipewatch/jobs"
	"github.com/pipewatch/pipewatch/pipeline/alerting"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// wednesday is the tests' default clock: Wednesday 2026-06-10 12:00 UTC.
var wednesday = time.Date(2026, 6, 10, 12, 0, 0, 0, time.UTC)

// fakeInserter records the delivery jobs the outbox schedules.
type fakeInserter struct {
	mu   sync.Mutex
	jobs []int64
}

func (f *fakeInserter) InsertTx(_ context.Context, _ pgx.Tx, args river.JobArgs, _ *river.InsertOpts) (*rivertype.JobInsertResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jobs = append(f.jobs, args.(jobs.DeliverNotificationArgs).NotificationID)
	return &rivertype.JobInsertResult{Job: &rivertype.JobRow{}}, nil
}

type testBundle struct {
	ctx context.Context
	tx  pgx.Tx
	now time.Time
	ins *fakeInserter
	det *alerting.Detector
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	ctx := context.Background()
	b := &testBundle{ctx: ctx, tx: dbtest.TestTx(ctx, t), now: wednesday, ins: &fakeInserter{}}
	b.det = &alerting.Detector{
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		NowFunc: func() time.Time { return b.now },
		Outbox:  jobs.NotificationOutbox{Inserter: b.ins},
	}
	return b
}

func (b *testBundle) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	_, err := b.tx.Exec(b.ctx, sql, args...)
	require.NoError(t, err)
}

func (b *testBundle) id(t *testing.T, sql string, args ...any) int64 {
	t.Helper()
	var id int64
	require.NoError(t, b.tx.QueryRow(b.ctx, sql, args...).Scan(&id))
	return id
}

// connection creates an active connection that synced five minutes ago.
func (b *testBundle) connection(t *testing.T, name, kind string, config map[string]any) int64 {
	t.Helper()
	if config == nil {
		config = map[string]any{"schedule": "15m", "freshness": "45m"}
	}
	doc, err := json.Marshal(config)
	require.NoError(t, err)
	return b.id(t, `INSERT INTO connections (name, kind, config, last_synced_at) VALUES ($1, $2, $3, $4) RETURNING id`,
		name, kind, doc, b.now.Add(-5*time.Minute))
}

// established creates a connection whose first (baseline) evaluation is behind it, so
// new conditions notify normally.
func (b *testBundle) established(t *testing.T, name, kind string, config map[string]any) int64 {
	t.Helper()
	id := b.connection(t, name, kind, config)
	b.detect(t)
	return id
}

// synced records a successful sync of the connection at the clock's time.
func (b *testBundle) synced(t *testing.T, conn int64) {
	t.Helper()
	b.exec(t, `UPDATE connections SET last_synced_at = $2 WHERE id = $1`, conn, b.now)
}

type ownerOpts struct {
	team      string
	manager   int64
	inactive  bool
	timezone  string
	deletedAt time.Time
}

func (b *testBundle) owner(t *testing.T, conn int64, email string, o ownerOpts) int64 {
	t.Helper()
	var deleted *time.Time
	if !o.deletedAt.IsZero() {
		deleted = &o.deletedAt
	}
	return b.id(t, `INSERT INTO owners (connection_id, external_id, email, name, team, manager_owner_id, active, timezone, deleted_at)
		VALUES ($1, $2, $3, $4, nullif($5, ''), nullif($6, 0), $7, nullif($8, ''), $9) RETURNING id`,
		conn, "u-"+email, email, strings.Split(email, "@")[0], o.team, o.manager, !o.inactive, o.timezone, deleted)
}

func (b *testBundle) stage(t *testing.T, conn int64, name, canonical string, rotDays int) int64 {
	t.Helper()
	return b.id(t, `INSERT INTO stages (connection_id, external_id, name, canonical_stage, rot_days)
		VALUES ($1, $2, $3, nullif($4, ''), nullif($5, 0)) RETURNING id`, conn, "s-"+name, name, canonical, rotDays)
}

// deal is a deal row; zero times are NULL.
type deal struct {
	conn, stage, owner int64
	name               string
	amount             *float64
	currency           string
	closeDate          time.Time
	created            time.Time
	stageEntered       time.Time
	lastActivity       time.Time
	nextActivity       time.Time
	closed, won        bool
	closedAt           time.Time
}

func money(v float64) *float64 { return &v }

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

var dealSeq atomic.Int64

func (b *testBundle) deal(t *testing.T, d deal) int64 {
	t.Helper()
	n := strconv.FormatInt(dealSeq.Add(1), 10)
	if d.name == "" {
		d.name = "Deal " + n
	}
	if d.currency == "" {
		d.currency = "USD"
	}
	var closeDate *string
	if !d.closeDate.IsZero() {
		s := d.closeDate.Format(time.DateOnly)
		closeDate = &s
	}
	return b.id(t, `INSERT INTO deals (connection_id, external_id, name, amount, currency, stage_id, owner_id, close_date,
		remote_created_at, stage_entered_at, last_activity_at, next_activity_at, is_closed, is_won, closed_at)
		VALUES ($1, $2, $3, $4, $5, nullif($6, 0), nullif($7, 0), $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id`,
		d.conn, "d-"+n, d.name, d.amount, d.currency, d.stage, d.owner,
		closeDate, nullTime(d.created), nullTime(d.stageEntered), nullTime(d.lastActivity), nullTime(d.nextActivity),
		d.closed, d.won, nullTime(d.closedAt))
}

func (b *testBundle) detect(t *testing.T) *alerting.Report {
	t.Helper()
	rep, err := b.det.Run(b.ctx, b.tx, alerting.Options{ReportLimit: 1000})
	require.NoError(t, err)
	return rep
}

// alertRow is an alerts row as tests check it.
type alertRow struct {
	ID           int64
	Rule         string
	DealID       int64
	Severity     string
	State        string
	Fingerprint  string
	NotifiedVia  string
	Recipient    string
	NotifyCount  int
	Resolution   string
	Notification int64
	Details      alerting.Details
}

func (b *testBundle) alerts(t *testing.T, where string, args ...any) []alertRow {
	t.Helper()
	if where == "" {
		where = "true"
	}
	rows, err := b.tx.Query(b.ctx, `SELECT id, rule, coalesce(deal_id, 0), severity, state, fingerprint,
		coalesce(notified_via, ''), coalesce(notified_recipient, ''), notify_count, coalesce(resolution, ''),
		coalesce(notification_id, 0), details FROM alerts WHERE `+where+` ORDER BY id`, args...)
	require.NoError(t, err)
	var out []alertRow
	var r alertRow
	var doc []byte
	_, err = pgx.ForEachRow(rows, []any{&r.ID, &r.Rule, &r.DealID, &r.Severity, &r.State, &r.Fingerprint, &r.NotifiedVia,
		&r.Recipient, &r.NotifyCount, &r.Resolution, &r.Notification, &doc}, func() error {
		r.Details = alerting.Details{}
		if err := json.Unmarshal(doc, &r.Details); err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	require.NoError(t, err)
	return out
}

// sent is a notifications row as tests check it.
type sent struct {
	ID        int64
	Kind      string
	AlertID   int64
	Channel   string
	Recipient string
	Message   notify.Message
}

func (b *testBundle) notifications(t *testing.T) []sent {
	t.Helper()
	rows, err := b.tx.Query(b.ctx, `SELECT id, kind, coalesce(alert_id, 0), channel, recipient, payload FROM notifications ORDER BY id`)
	require.NoError(t, err)
	var out []sent
	var s sent
	var doc []byte
	_, err = pgx.ForEachRow(rows, []any{&s.ID, &s.Kind, &s.AlertID, &s.Channel, &s.Recipient, &doc}, func() error {
		s.Message = notify.Message{}
		if err := json.Unmarshal(doc, &s.Message); err != nil {
			return err
		}
		out = append(out, s)
		return nil
	})
	require.NoError(t, err)
	return out
}

// newNotifications returns the notifications after the first skip ones.
func (b *testBundle) newNotifications(t *testing.T, skip int) []sent {
	t.Helper()
	all := b.notifications(t)
	require.GreaterOrEqual(t, len(all), skip)
	return all[skip:]
}

// rules stores rules settings changed by edit, as `pipewatch apply` would.
func (b *testBundle) rules(t *testing.T, edit func(r *config.Rules)) {
	t.Helper()
	r := config.DefaultRules()
	edit(&r)
	doc, err := json.Marshal(r)
	require.NoError(t, err)
	b.exec(t, `INSERT INTO settings (key, value) VALUES ('rules', $1) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`, doc)
}

// setting stores any settings document.
func (b *testBundle) setting(t *testing.T, key string, v any) {
	t.Helper()
	doc, err := json.Marshal(v)
	require.NoError(t, err)
	b.exec(t, `INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`, key, doc)
}

// onlyRules keeps the named rules enabled and disables the others.
func onlyRules(names ...string) func(r *config.Rules) {
	return func(r *config.Rules) {
		on := func(n string) bool { return slices.Contains(names, n) }
		r.Idle.Enabled = on("idle")
		r.StuckInStage.Enabled = on("stuck_in_stage")
		r.PastCloseDate.Enabled = on("past_close_date")
		r.CloseDateSlipped.Enabled = on("close_date_slipped")
		r.NoNextStep.Enabled = on("no_next_step")
		r.CoverageShortfall.Enabled = on("coverage_shortfall")
		r.LeadVelocityDrop.Enabled = on("lead_velocity_drop")
	}
}

// advance moves the clock and records a fresh sync of the connections.
func (b *testBundle) advance(t *testing.T, d time.Duration, conns ...int64) {
	t.Helper()
	b.now = b.now.Add(d)
	for _, c := range conns {
		b.synced(t, c)
	}
}

// press applies a Slack button to an alert as the interactivity endpoint would.
func (b *testBundle) press(t *testing.T, action string, alertID int64) *notify.Message {
	t.Helper()
	h := &alerting.Actions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), NowFunc: func() time.Time { return b.now }}
	msg, err := h.HandleAction(b.ctx, b.tx, notify.Press{ActionID: action, Value: strconv.FormatInt(alertID, 10), SlackUserID: "U123"})
	require.NoError(t, err)
	return msg
}
