package alerting

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/config"
	"github.com/pipewatch/pipewatch/pipeline"
)

func TestIdleThresholds(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 10, 12, 0, 0, 0, time.UTC) // Wednesday
	org := mustCalendar(t, "UTC", nil)
	berlin := mustCalendar(t, "Europe/Berlin", []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday})
	r := config.DefaultRules().Idle
	r.Stages[pipeline.StageNeedsAssessment] = config.Days{} // off

	got := map[string]idleThreshold{}
	for _, th := range idleThresholds(r, calendars{"": org, "emea": berlin}, now) {
		got[th.Calendar+"/"+string(th.Stage)] = th
	}
	require.Len(t, got, 2*7, "every calendar × (unmapped + six open standard stages)")

	require.Equal(t, now.AddDate(0, 0, -7), got["/qualification"].Warn)
	require.Equal(t, now.AddDate(0, 0, -14), got["/"].Warn, "unmapped stages use the default")
	require.Equal(t, now.AddDate(0, 0, -14), got["/lead_generation"].Warn, "stages without their own threshold use the default")
	require.True(t, got["/needs_assessment"].Warn.IsZero(), "a stage set to off never warns")
	require.Equal(t, time.Date(2026, 6, 5, 12, 0, 0, 0, time.UTC), got["/negotiation"].Warn, "3 business days before Wednesday noon")
	require.Equal(t, time.Date(2026, 6, 3, 12, 0, 0, 0, time.UTC), got["/proposal"].Warn, "5 business days")
	// Berlin works Monday to Thursday: 3 business days before Wednesday 14:00 CEST is the
	// previous Thursday 14:00 (Tue, Mon, Thu).
	require.Equal(t, time.Date(2026, 6, 4, 12, 0, 0, 0, time.UTC), got["emea/negotiation"].Warn.UTC())
	require.Equal(t, now.AddDate(0, 0, -30), got["/proposal"].Stalled)
	require.Equal(t, now.AddDate(0, 0, -60), got["/proposal"].CloseLost)
}

func TestStuckThresholdFor(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 10, 12, 0, 0, 0, time.UTC)
	cal := mustCalendar(t, "UTC", nil)
	learned := config.DefaultRules().StuckInStage
	fixed := learned
	fixed.Mode = "fixed"
	fixed.Days = config.Days{N: 21}
	withStage := learned
	withStage.Stages = map[pipeline.CanonicalStage]config.Days{pipeline.StageProposal: {N: 10, Business: true}, pipeline.StageClosing: {}}
	noRot := learned
	noRot.HonorRotDays = false

	tests := []struct {
		name       string
		rule       config.StuckInStageRule
		history    stageHistory
		wantOK     bool
		wantSource string
		wantDays   float64
	}{
		{"LearnedFromEnoughWonDeals", learned, stageHistory{WonDeals: 30, PercentileDays: 12.34}, true, SourceLearned, 12.3},
		{"LearnedNeverBelowTheFloor", learned, stageHistory{WonDeals: 300, PercentileDays: 0.5}, true, SourceLearned, 3},
		{"ThinHistoryFallsBack", learned, stageHistory{WonDeals: 29, PercentileDays: 5}, true, SourceFallback, 30},
		{"NoHistoryFallsBack", learned, stageHistory{PercentileDays: math.NaN()}, true, SourceFallback, 30},
		{"PipedriveRotDaysWin", learned, stageHistory{RotDays: 9, WonDeals: 300, PercentileDays: 20}, true, SourceRotDays, 9},
		{"RotDaysIgnoredWhenNotHonoured", noRot, stageHistory{RotDays: 9, WonDeals: 300, PercentileDays: 20}, true, SourceLearned, 20},
		{"FixedMode", fixed, stageHistory{WonDeals: 300, PercentileDays: 20}, true, SourceFixed, 21},
		{"StageSettingWinsOverLearning", withStage, stageHistory{Canonical: pipeline.StageProposal, WonDeals: 300, PercentileDays: 20}, true, SourceStageSetting, 10},
		{"StageSetOff", withStage, stageHistory{Canonical: pipeline.StageClosing, WonDeals: 300, PercentileDays: 20}, false, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := stuckThresholdFor(tt.rule, tt.history, cal, now)
			require.Equal(t, tt.wantOK, ok)
			if !ok {
				return
			}
			require.Equal(t, tt.wantSource, got.Source)
			require.InDelta(t, tt.wantDays, got.Days, 1e-9)
			span := now.Sub(got.Cutoff)
			require.InDelta(t, 1.5, float64(now.Sub(got.Critical))/float64(span), 1e-6, "critical at 1.5 × the threshold")
		})
	}

	t.Run("BusinessDaySettingCountsWorkingDays", func(t *testing.T) {
		t.Parallel()
		got, ok := stuckThresholdFor(withStage, stageHistory{Canonical: pipeline.StageProposal}, cal, now)
		require.True(t, ok)
		require.Equal(t, time.Date(2026, 5, 27, 12, 0, 0, 0, time.UTC), got.Cutoff)
		require.Equal(t, "10 business days", got.Label)
	})
}
