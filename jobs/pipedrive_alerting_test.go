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
	b := newPipedriveBundle(ctx, t, tx, pipedriveSetup{account: pipedrivetest.Account{Users: 2, Deals: 0}})

	now := b.clock.Now()
	days := func(n int) time.Time { return now.Add(-time.Duration(n) * 24 * time.Hour) }
	owner := b.fake.Snapshot().Users[0].ID
	pl := b.fake.AddPipeline(pipedrivetest.Pipeline{Name: "Field sales", OrderNr: 9, AddTime: pipedrivetest.T(days(90)), UpdateTime: pipedrivetest.T(days(90))})
	rotting := b.fake.AddStage(pipedrivetest.Stage{Name: "Proposal Made", OrderNr: 1, PipelineID: pl.ID, DealProbability: 60,
		IsDealRotEnabled: true, DaysToRotten: ptrInt(7), AddTime: pipedrivetest.T(days(90)), UpdateTime: pipedrivetest.T(days(90))})
	plain := b.fake.AddStage(pipedrivetest.Stage{Name: "Negotiations Started", OrderNr: 2, PipelineID: pl.ID, DealProbability: 80,
		IsDealRotEnabled: false, DaysToRotten: ptrInt(7), AddTime: pipedrivetest.T(days(90)), UpdateTime: pipedrivetest.T(days(90))})
	deal := func(title string, stage, enteredDaysAgo int) int {
		return b.fake.AddDeal(pipedrivetest.Deal{
			Title: title, OwnerID: owner, PipelineID: pl.ID, StageID: stage, Value: "25000", Currency: "USD",
			ExpectedCloseDate: ptrString(now.AddDate(0, 2, 0).Format(time.DateOnly)),
			AddTime:           pipedrivetest.T(days(40)), StageChangeTime: pipedrivetest.TimePtr(days(enteredDaysAgo)),
			UpdateTime: pipedrivetest.T(days(1)),
		}).ID
	}
	rotten := deal("Rotten", rotting.ID, 10)
	deal("Fresh", rotting.ID, 3)
	deal("Long but not rotting", plain.ID, 10)

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
	b := newPipedriveBundle(ctx, t, tx, pipedriveSetup{account: pipedrivetest.Account{Users: 2, Deals: 0}})

	now := b.clock.Now()
	days := func(n int) time.Time { return now.Add(-time.Duration(n) * 24 * time.Hour) }
	owner := b.fake.Snapshot().Users[0].ID
	pl := b.fake.AddPipeline(pipedrivetest.Pipeline{Name: "Field sales", OrderNr: 9, AddTime: pipedrivetest.T(days(90)), UpdateTime: pipedrivetest.T(days(90))})
	// Proposal's own idle threshold is 5 business days; this stage rots in 20.
	rotting := b.fake.AddStage(pipedrivetest.Stage{Name: "Proposal Made", OrderNr: 1, PipelineID: pl.ID, DealProbability: 60,
		IsDealRotEnabled: true, DaysToRotten: ptrInt(20), AddTime: pipedrivetest.T(days(90)), UpdateTime: pipedrivetest.T(days(90))})
	plain := b.fake.AddStage(pipedrivetest.Stage{Name: "Negotiations Started", OrderNr: 2, PipelineID: pl.ID, DealProbability: 80,
		IsDealRotEnabled: false, DaysToRotten: ptrInt(20), AddTime: pipedrivetest.T(days(90)), UpdateTime: pipedrivetest.T(days(90))})
	deal := func(title string, stage, updatedDaysAgo int) int {
		return b.fake.AddDeal(pipedrivetest.Deal{
			Title: title, OwnerID: owner, PipelineID: pl.ID, StageID: stage, Value: "25000", Currency: "USD",
			ExpectedCloseDate: ptrString(now.AddDate(0, 2, 0).Format(time.DateOnly)),
			AddTime:           pipedrivetest.T(days(60)), StageChangeTime: pipedrivetest.TimePtr(days(30)),
			UpdateTime: pipedrivetest.T(days(updatedDaysAgo)),
		}).ID
	}
	rotten := deal("Not updated for 25 days", rotting.ID, 25)
	deal("Updated 10 days ago", rotting.ID, 10)
	quiet := deal("Updated yesterday, no touch for 30 days", plain.ID, 1)

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
