package jobs_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/connectors/pipedrive/pipedrivetest"
	"github.com/pipewatch/pipewatch/internal/dbtest"
	"github.com/pipewatch/pipewatch/jobs"
	"github.com/pipewatch/pipewatch/pipeline/alerting"
)

// discardInserter accepts delivery jobs without running them.
type discardInserter struct{}

func (discardInserter) InsertTx(context.Context, pgx.Tx, river.JobArgs, *river.InsertOpts) (*rivertype.JobInsertResult, error) {
	return &rivertype.JobInsertResult{Job: &rivertype.JobRow{}}, nil
}

// TestPipedriveRottingDaysDriveTheStuckRule: a Pipedrive stage's "rotting in N days"
// (is_deal_rot_enabled + days_to_rotten) reaches stages.rot_days through the connector and
// the engine, and the stuck-in-stage rule uses it as that stage's threshold; a stage
// without rotting keeps the rule's own threshold.
func TestPipedriveRottingDaysDriveTheStuckRule(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := dbtest.TestTx(ctx, t)
	a := newRottingAccount(ctx, t, tx, 7)
	b, rotting, plain := a.b, a.rotting, a.plain
	rotten := a.deal("Rotten", rotting.ID, 10, 1)
	a.deal("Fresh", rotting.ID, 3, 1)
	a.deal("Long but not rotting", plain.ID, 10, 1)

	b.syncAll(ctx, t)
	require.EqualValues(t, 7, countRows(ctx, t, tx, `SELECT rot_days FROM stages WHERE external_id = $1`, strconv.Itoa(rotting.ID)))
	require.EqualValues(t, 1, countRows(ctx, t, tx, `SELECT count(*) FROM stages WHERE external_id = $1 AND rot_days IS NULL`, strconv.Itoa(plain.ID)))

	detectPipedrive(ctx, t, tx, b)

	rows, err := tx.Query(ctx, `SELECT d.external_id, a.details->>'threshold_source', (a.details->>'threshold_days')::float8
		FROM alerts a JOIN deals d ON d.id = a.deal_id WHERE a.rule = $1`, string(alerting.RuleStuckInStage))
	require.NoError(t, err)
	type stuck struct {
		Deal   string
		Source string
		Days   float64
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[stuck])
	require.NoError(t, err)
	require.Equal(t, []stuck{{Deal: strconv.Itoa(rotten), Source: alerting.SourceRotDays, Days: 7}}, got)
}

// TestPipedriveRottingDaysDriveTheIdleRule: in a stage with rotting enabled, the idle
// rule goes by Pipedrive's rotting clock: the stage's days_to_rotten is the threshold
// (not the default for its standard stage) and the deal's last update counts as a touch;
// a stage without rotting keeps the rule's own threshold and touches.
func TestPipedriveRottingDaysDriveTheIdleRule(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := dbtest.TestTx(ctx, t)
	// Proposal's own idle threshold is 5 business days; this stage rots in 20.
	a := newRottingAccount(ctx, t, tx, 20)
	b := a.b
	rotten := a.deal("Not updated for 25 days", a.rotting.ID, 30, 25)
	a.deal("Updated 10 days ago", a.rotting.ID, 30, 10)
	quiet := a.deal("Updated yesterday, no touch for 30 days", a.plain.ID, 30, 1)

	b.syncAll(ctx, t)
	detectPipedrive(ctx, t, tx, b)

	rows, err := tx.Query(ctx, `SELECT d.external_id, a.details->>'threshold', coalesce(a.details->>'threshold_source', ''),
			a.details->>'last_touch_source', (a.details->>'days_idle')::int
		FROM alerts a JOIN deals d ON d.id = a.deal_id WHERE a.rule = $1 ORDER BY d.external_id`, string(alerting.RuleIdle))
	require.NoError(t, err)
	type idle struct {
		Deal, Threshold, Source, Touch string
		DaysIdle                       int
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[idle])
	require.NoError(t, err)
	want := []idle{
		{Deal: strconv.Itoa(rotten), Threshold: "20d", Source: alerting.SourceRotDays, Touch: "crm_updated", DaysIdle: 25},
		{Deal: strconv.Itoa(quiet), Threshold: "3bd", Touch: "stage_entered", DaysIdle: 30},
	}
	slices.SortFunc(want, func(a, b idle) int { return strings.Compare(a.Deal, b.Deal) })
	require.Equal(t, want, got)
}

// rottingAccount is a Pipedrive account with a pipeline of two stages, "Proposal Made"
// with rotting on and "Negotiations Started" with it off (both set to the same days).
type rottingAccount struct {
	b              *pipedriveBundle
	rotting, plain pipedrivetest.Stage
	owner          int
	now            time.Time
}

func newRottingAccount(ctx context.Context, t *testing.T, tx pgx.Tx, rotDays int) *rottingAccount {
	t.Helper()
	b := newPipedriveBundle(ctx, t, tx, pipedriveSetup{account: pipedrivetest.Account{Users: 2, Deals: 0}})
	a := &rottingAccount{b: b, owner: b.fake.Snapshot().Users[0].ID, now: b.clock.Now()}
	long := pipedrivetest.T(a.daysAgo(90))
	pl := b.fake.AddPipeline(pipedrivetest.Pipeline{Name: "Field sales", OrderNr: 9, AddTime: long, UpdateTime: long})
	a.rotting = b.fake.AddStage(pipedrivetest.Stage{Name: "Proposal Made", OrderNr: 1, PipelineID: pl.ID, DealProbability: 60,
		IsDealRotEnabled: true, DaysToRotten: ptrInt(rotDays), AddTime: long, UpdateTime: long})
	a.plain = b.fake.AddStage(pipedrivetest.Stage{Name: "Negotiations Started", OrderNr: 2, PipelineID: pl.ID, DealProbability: 80,
		IsDealRotEnabled: false, DaysToRotten: ptrInt(rotDays), AddTime: long, UpdateTime: long})
	return a
}

func (a *rottingAccount) daysAgo(n int) time.Time {
	return a.now.Add(-time.Duration(n) * 24 * time.Hour)
}

// deal adds an open deal in stage that entered it and was last updated the given days ago.
func (a *rottingAccount) deal(title string, stage, enteredDaysAgo, updatedDaysAgo int) int {
	return a.b.fake.AddDeal(pipedrivetest.Deal{
		Title: title, OwnerID: a.owner, PipelineID: a.rotting.PipelineID, StageID: stage, Value: "25000", Currency: "USD",
		ExpectedCloseDate: ptrString(a.now.AddDate(0, 2, 0).Format(time.DateOnly)),
		AddTime:           pipedrivetest.T(a.daysAgo(60)), StageChangeTime: pipedrivetest.TimePtr(a.daysAgo(enteredDaysAgo)),
		UpdateTime: pipedrivetest.T(a.daysAgo(updatedDaysAgo)),
	}).ID
}

// detectPipedrive runs detect on the bundle's connection, which must be evaluated.
func detectPipedrive(ctx context.Context, t *testing.T, tx pgx.Tx, b *pipedriveBundle) {
	t.Helper()
	det := &alerting.Detector{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), NowFunc: b.clock.Now,
		Outbox: jobs.NotificationOutbox{Inserter: discardInserter{}},
	}
	report, err := det.Run(ctx, tx, alerting.Options{ConnectionID: b.connID})
	require.NoError(t, err)
	for _, s := range report.Scopes {
		if s.ConnectionID == b.connID {
			require.True(t, s.Evaluated, "the synced connection is evaluated: %s", s.Reason)
		}
	}
}

func ptrInt(v int) *int          { return &v }
func ptrString(v string) *string { return &v }
