package reminder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shopspring/decimal"

	"github.com/pipewatch/pipewatch/internal/notify"
	"github.com/pipewatch/pipewatch/pipeline"
	"github.com/pipewatch/pipewatch/pipeline/alerting"
)

// Queue is the job queue as reminders use it, always inside the caller's transaction so
// that a reminder row and its job commit together (jobs adapts River to it).
type Queue interface {
	// ScheduleReminder enqueues the job that fires reminder reminderID at at.
	ScheduleReminder(ctx context.Context, tx pgx.Tx, reminderID int64, at time.Time) (jobID int64, err error)
	// CancelJob cancels a job that has not run; a job that is gone is no error.
	CancelJob(ctx context.Context, tx pgx.Tx, jobID int64) error
	// Notify enqueues a reminder's message for delivery. It returns the notification id,
	// or 0 when an earlier notification had the same DedupeKey.
	Notify(ctx context.Context, tx pgx.Tx, n Notice) (int64, error)
}

// Notice is a reminder message to deliver: a Slack DM to the rep.
type Notice struct {
	ReminderID int64
	// Recipient is the rep's email.
	Recipient string
	Message   notify.Message
	// At is the earliest delivery time (delivery also waits for the rep's working hours).
	At        time.Time
	DedupeKey string
}

// Beginner starts transactions: a *pgxpool.Pool, or in tests a pgx.Tx (a savepoint).
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Querier reads: a pool, a connection or a transaction.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Cadences plans, fires and changes the reminder cadences of every deal.
type Cadences struct {
	queue  Queue
	logger *slog.Logger
	now    func() time.Time
}

// Config configures Cadences.
type Config struct {
	Queue  Queue
	Logger *slog.Logger
	// NowFunc is the clock (nil = time.Now).
	NowFunc func() time.Time
}

// New returns Cadences.
func New(cfg Config) *Cadences {
	c := &Cadences{queue: cfg.Queue, logger: cfg.Logger, now: cfg.NowFunc}
	if c.now == nil {
		c.now = time.Now
	}
	return c
}

// Cadence and reminder states (reminder_cadences.state, reminders.state).
const (
	cadenceActive    = "active"
	cadenceFinished  = "finished"
	cadenceStopped   = "stopped"
	cadenceCancelled = "cancelled"

	stateScheduled = "scheduled"
	stateSent      = "sent"
	stateSkipped   = "skipped"
	stateCancelled = "cancelled"
)

// What ended a cadence (reminder_cadences.ended_by).
const (
	endedByLastStep = "last_step"
	endedByRep      = "rep"
	endedByDeal     = "deal"
	endedByConfig   = "config"
)

// cadenceRow is a reminder_cadences row.
type cadenceRow struct {
	ID           int64
	DealID       int64
	OwnerID      *int64
	Trigger      pipeline.CanonicalStage
	EnteredAt    time.Time
	State        string
	Reason       string
	Timezone     string
	ZoneSource   ZoneSource
	PlanKey      string
	AnchorAt     time.Time
	AnchorStep   int
	AnchorReason string
	SinceAt      time.Time
}

// lockCadence loads cadence id for update.
func lockCadence(ctx context.Context, tx pgx.Tx, id int64) (cadenceRow, error) {
	var c cadenceRow
	err := tx.QueryRow(ctx, `
		SELECT id, deal_id, owner_id, trigger_stage, entered_at, state, coalesce(reason, ''), timezone, zone_source,
		       plan_key, anchor_at, anchor_step, anchor_reason, since_at
		FROM reminder_cadences WHERE id = $1 FOR UPDATE`, id,
	).Scan(&c.ID, &c.DealID, &c.OwnerID, &c.Trigger, &c.EnteredAt, &c.State, &c.Reason, &c.Timezone, &c.ZoneSource,
		&c.PlanKey, &c.AnchorAt, &c.AnchorStep, &c.AnchorReason, &c.SinceAt)
	if err != nil {
		return c, fmt.Errorf("locking reminder cadence %d: %w", id, err)
	}
	return c, nil
}

// saveSchedule writes what planning and re-anchoring change on a cadence.
func saveSchedule(ctx context.Context, tx pgx.Tx, c cadenceRow, now time.Time) error {
	_, err := tx.Exec(ctx, `
		UPDATE reminder_cadences SET owner_id = $2, timezone = $3, zone_source = $4, plan_key = $5, anchor_at = $6,
		       anchor_step = $7, anchor_reason = $8, since_at = $9, updated_at = $10
		WHERE id = $1`,
		c.ID, c.OwnerID, c.Timezone, c.ZoneSource, c.PlanKey, c.AnchorAt, c.AnchorStep, c.AnchorReason, c.SinceAt, now)
	if err != nil {
		return fmt.Errorf("updating reminder cadence %d: %w", c.ID, err)
	}
	return nil
}

// reminderRow is a reminders row.
type reminderRow struct {
	ID       int64
	Step     int
	DueAt    time.Time
	State    string
	JobID    *int64
	Action   string
	ActionAt *time.Time
}

const reminderColumns = `id, step, due_at, state, river_job_id, coalesce(action, ''), action_at`

func scanReminder(row pgx.Row) (reminderRow, error) {
	var r reminderRow
	err := row.Scan(&r.ID, &r.Step, &r.DueAt, &r.State, &r.JobID, &r.Action, &r.ActionAt)
	return r, err
}

// loadReminders returns the rows of a cadence by step.
func loadReminders(ctx context.Context, tx pgx.Tx, cadenceID int64) ([]reminderRow, error) {
	rows, err := tx.Query(ctx, `SELECT `+reminderColumns+` FROM reminders WHERE cadence_id = $1 ORDER BY step, id`, cadenceID)
	if err != nil {
		return nil, fmt.Errorf("loading the reminders of cadence %d: %w", cadenceID, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (reminderRow, error) { return scanReminder(row) })
	if err != nil {
		return nil, fmt.Errorf("loading the reminders of cadence %d: %w", cadenceID, err)
	}
	return out, nil
}

// errReminderGone means the reminder row was deleted (with its deal).
var errReminderGone = errors.New("reminder no longer exists")

// lockReminder locks reminder id and its cadence (cadence first, the order every writer
// takes them in).
func lockReminder(ctx context.Context, tx pgx.Tx, id int64) (cadenceRow, reminderRow, error) {
	var cadenceID *int64
	err := tx.QueryRow(ctx, `SELECT cadence_id FROM reminders WHERE id = $1`, id).Scan(&cadenceID)
	if errors.Is(err, pgx.ErrNoRows) {
		return cadenceRow{}, reminderRow{}, errReminderGone
	}
	if err != nil {
		return cadenceRow{}, reminderRow{}, fmt.Errorf("loading reminder %d: %w", id, err)
	}
	if cadenceID == nil {
		return cadenceRow{}, reminderRow{}, fmt.Errorf("reminder %d belongs to no cadence", id)
	}
	c, err := lockCadence(ctx, tx, *cadenceID)
	if err != nil {
		return cadenceRow{}, reminderRow{}, err
	}
	r, err := scanReminder(tx.QueryRow(ctx, `SELECT `+reminderColumns+` FROM reminders WHERE id = $1 FOR UPDATE`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return cadenceRow{}, reminderRow{}, errReminderGone
	}
	if err != nil {
		return cadenceRow{}, reminderRow{}, fmt.Errorf("locking reminder %d: %w", id, err)
	}
	return c, r, nil
}

// setState finishes a scheduled reminder as sent, skipped or cancelled.
func setState(ctx context.Context, tx pgx.Tx, id int64, state, reason string, now time.Time) error {
	if _, err := tx.Exec(ctx, `UPDATE reminders SET state = $2, reason = $3, updated_at = $4 WHERE id = $1`,
		id, state, reason, now); err != nil {
		return fmt.Errorf("marking reminder %d %s: %w", id, state, err)
	}
	return nil
}

// deal is what reminders read about a deal, its owner and its connection.
type deal struct {
	DealState
	Facts DealFacts
	Rep   Rep
	// OwnerExternalID is the deal's owner reference at the vendor.
	OwnerExternalID string
	// Connection is the name of the deal's connection, ConnectionStatus its status
	// (active, paused, needs_reauth, error) and StatusReason why.
	Connection, ConnectionStatus, StatusReason string
}

// dealColumns and dealJoins read a deal (d) for scanDeal.
const (
	dealColumns = `d.id, coalesce(d.name, ''), d.amount, coalesce(d.currency, ''), d.external_id, d.deleted_at IS NOT NULL,
		d.is_closed, d.is_won, coalesce(s.canonical_stage, ''), coalesce(s.name, ''), d.last_activity_at,
		coalesce(d.owner_external_id, ''), coalesce(o.id, 0), coalesce(o.email, ''), coalesce(o.name, ''),
		coalesce(o.active AND o.deleted_at IS NULL, false), coalesce(o.timezone, ''), coalesce(o.team, ''),
		coalesce(su.timezone, ''), cn.kind, cn.name, cn.config, cn.status, coalesce(cn.status_reason, '')`
	dealJoins = `JOIN connections cn ON cn.id = d.connection_id
		LEFT JOIN stages s ON s.id = d.stage_id
		LEFT JOIN owners o ON o.id = d.owner_id
		LEFT JOIN slack_users su ON su.email = lower(o.email)`
)

// dealScan holds the scan targets of dealColumns.
type dealScan struct {
	d              deal
	amount         decimal.NullDecimal
	externalID     string
	lastActivityAt *time.Time
	kind, name     string
	config         []byte
}

func (s *dealScan) targets() []any {
	d := &s.d
	return []any{&d.Facts.ID, &d.Facts.Name, &s.amount, &d.Facts.Currency, &s.externalID, &d.Deleted,
		&d.Closed, &d.Won, &d.Stage, &d.StageName, &s.lastActivityAt,
		&d.OwnerExternalID, &d.Rep.OwnerID, &d.Rep.Email, &d.Rep.Name,
		&d.Rep.Active, &d.Rep.CRMZone, &d.Rep.Team,
		&d.Rep.SlackZone, &s.kind, &s.name, &s.config, &d.ConnectionStatus, &d.StatusReason}
}

// finish fills what needs decoding after the scan.
func (s *dealScan) finish() (deal, error) {
	d := s.d
	d.Facts.Amount = s.amount
	d.Facts.Stage, d.Facts.StageName = d.Stage, d.StageName
	if s.lastActivityAt != nil {
		d.Facts.LastActivityAt = *s.lastActivityAt
	}
	var cfg struct {
		BaseURL string                     `json:"base_url"`
		Options map[string]json.RawMessage `json:"options"`
	}
	if len(s.config) > 0 {
		if err := json.Unmarshal(s.config, &cfg); err != nil {
			return d, fmt.Errorf("decoding the config of connection %s: %w", s.name, err)
		}
	}
	options := make(map[string]string, len(cfg.Options))
	for k, raw := range cfg.Options {
		var text string
		if json.Unmarshal(raw, &text) != nil {
			text = string(raw) // a number or boolean written without quotes
		}
		options[k] = text
	}
	conn := alerting.Connection{Name: s.name, Kind: s.kind, BaseURL: cfg.BaseURL, Options: options}
	d.Facts.URL = conn.DealURL(s.externalID)
	d.Facts.CRM = crmName(s.kind)
	d.Connection = s.name
	return d, nil
}

func crmName(kind string) string {
	switch kind {
	case "hubspot":
		return "HubSpot"
	case "pipedrive":
		return "Pipedrive"
	case "salesforce":
		return "Salesforce"
	}
	return kind
}

// loadDeal reads deal id.
func loadDeal(ctx context.Context, tx pgx.Tx, id int64) (deal, error) {
	var s dealScan
	err := tx.QueryRow(ctx, `SELECT `+dealColumns+` FROM deals d `+dealJoins+` WHERE d.id = $1`, id).Scan(s.targets()...)
	if err != nil {
		return deal{}, fmt.Errorf("loading deal %d: %w", id, err)
	}
	return s.finish()
}

// maxTouches bounds the touches read for one decision (the latest decide).
const maxTouches = 20

// loadTouches returns the touches of a deal after since (latest first): done outbound
// emails and calls by the deal's owner (or by no recorded owner), done inbound emails and
// calls, meetings held until now, and meetings booked after since that lie ahead.
func loadTouches(ctx context.Context, tx pgx.Tx, d deal, since, now time.Time) ([]Touch, error) {
	var ownerID *int64
	if d.Rep.OwnerID != 0 {
		ownerID = &d.Rep.OwnerID
	}
	rows, err := tx.Query(ctx, `
		SELECT a.kind, coalesce(a.direction, ''), a.occurred_at, coalesce(a.subject, ''), a.occurred_at > $4
		FROM activities a
		WHERE a.deal_id = $1 AND a.deleted_at IS NULL AND a.occurred_at IS NOT NULL
		  AND ((a.done AND a.occurred_at > $3 AND a.occurred_at <= $4
		        AND (a.kind = 'meeting'
		             OR a.kind IN ('email', 'call') AND a.direction = 'inbound'
		             OR a.kind IN ('email', 'call') AND a.direction = 'outbound'
		                AND (a.owner_id = $2 OR a.owner_external_id = $5
		                     OR a.owner_id IS NULL AND a.owner_external_id IS NULL)))
		       OR (a.kind = 'meeting' AND a.occurred_at > $4 AND coalesce(a.remote_created_at, a.synced_at) > $3))
		ORDER BY a.occurred_at DESC, a.id DESC
		LIMIT $6`, d.Facts.ID, ownerID, since, now, d.OwnerExternalID, maxTouches)
	if err != nil {
		return nil, fmt.Errorf("loading the touches of deal %d: %w", d.Facts.ID, err)
	}
	touches, err := pgx.CollectRows(rows, scanTouch)
	if err != nil {
		return nil, fmt.Errorf("loading the touches of deal %d: %w", d.Facts.ID, err)
	}
	return touches, nil
}

// loadLastTouch returns the deal's latest logged email, call or meeting up to now.
func loadLastTouch(ctx context.Context, tx pgx.Tx, dealID int64, now time.Time) (*Touch, error) {
	rows, err := tx.Query(ctx, `
		SELECT a.kind, coalesce(a.direction, ''), a.occurred_at, coalesce(a.subject, ''), false
		FROM activities a
		WHERE a.deal_id = $1 AND a.deleted_at IS NULL AND a.done AND a.occurred_at <= $2
		  AND a.kind IN ('email', 'call', 'meeting')
		ORDER BY a.occurred_at DESC, a.id DESC
		LIMIT 1`, dealID, now)
	if err != nil {
		return nil, fmt.Errorf("loading the last touch of deal %d: %w", dealID, err)
	}
	touches, err := pgx.CollectRows(rows, scanTouch)
	if err != nil {
		return nil, fmt.Errorf("loading the last touch of deal %d: %w", dealID, err)
	}
	if len(touches) == 0 {
		return nil, nil
	}
	return &touches[0], nil
}

func scanTouch(row pgx.CollectableRow) (Touch, error) {
	var t Touch
	err := row.Scan(&t.Kind, &t.Direction, &t.At, &t.Subject, &t.Booked)
	return t, err
}
