package config_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/config"
	"github.com/pipewatch/pipewatch/internal/dbtest"
	"github.com/pipewatch/pipewatch/pipeline"
)

func TestRulesAndRoutingSections(t *testing.T) {
	t.Parallel()

	t.Run("AbsentMeansDefaults", func(t *testing.T) {
		t.Parallel()
		f, err := config.Parse("empty.yaml", []byte("org: {timezone: UTC}\n"), testEnv.lookup)
		require.NoError(t, err)
		require.Equal(t, config.DefaultRules(), f.Rules)
		require.Equal(t, config.DefaultRouting(), f.Routing)
		require.Equal(t, config.Days{N: 5, Business: true}, f.Rules.Idle.Stages[pipeline.StageProposal])
	})

	t.Run("SingleKeysOverrideDefaults", func(t *testing.T) {
		t.Parallel()
		f, err := config.Parse("f.yaml", []byte(`
rules:
  idle:
    stages: {proposal: 7bd, qualification: "off"}
    stalled: 45d
  stuck_in_stage: {mode: fixed, days: 21, stages: {negotiation: 10d}}
  close_date_slipped: {escalate_at: 2, period: month}
  no_next_step: {stages: [proposal, closing]}
  coverage_shortfall: {floor: 1.5, cap: 4}
  lead_velocity_drop: {enabled: false}
routing:
  channel: "#revenue"
  default_manager_email: VP@Example.com
  digest_threshold: 3
  digest_time: "09:15"
  cooldown: 3d
  escalate_after: 1bd
`), testEnv.lookup)
		require.NoError(t, err)
		r := f.Rules
		require.Equal(t, config.Days{N: 7, Business: true}, r.Idle.Stages[pipeline.StageProposal])
		require.Equal(t, config.Days{}, r.Idle.Stages[pipeline.StageQualification], "off disables a stage threshold")
		require.Equal(t, config.Days{N: 10}, r.Idle.Stages[pipeline.StageNeedsAssessment], "unlisted stages keep their default")
		require.Equal(t, config.Days{N: 45}, r.Idle.Stalled)
		require.Equal(t, "fixed", r.StuckInStage.Mode)
		require.Equal(t, config.Days{N: 21}, r.StuckInStage.Days)
		require.Equal(t, config.Days{N: 10}, r.StuckInStage.Stages[pipeline.StageNegotiation])
		require.Equal(t, 2, r.CloseDateSlipped.EscalateAt)
		require.Equal(t, "month", r.CloseDateSlipped.Period)
		require.Equal(t, []pipeline.CanonicalStage{pipeline.StageProposal, pipeline.StageClosing}, r.NoNextStep.Stages)
		require.InDelta(t, 1.5, r.CoverageShortfall.Floor, 1e-9)
		require.InDelta(t, 4, r.CoverageShortfall.Cap, 1e-9)
		require.False(t, r.LeadVelocityDrop.Enabled)
		require.True(t, r.PastCloseDate.Enabled)
		require.Equal(t, config.Routing{
			Channel: "#revenue", DefaultManagerEmail: "vp@example.com", DigestThreshold: 3, DigestTime: "09:15",
			Cooldown: config.Days{N: 3}, EscalateAfter: config.Days{N: 1, Business: true},
		}, f.Routing)
		require.Equal(t, config.Days{N: 7}, config.DefaultRules().Idle.Stages[pipeline.StageQualification],
			"overrides never leak into the defaults")
	})

	t.Run("EveryProblemWithItsLine", func(t *testing.T) {
		t.Parallel()
		_, err := config.Parse("f.yaml", []byte(`rules:
  idle:
    stages: {closed_won: 3d, proposal: 5x}
    stalled: 0d
  stuck_in_stage: {mode: median, percentile: 1.5}
  coverage_shortfall: {floor: 3, cap: 2}
  idel: {}
routing:
  digest_time: "8:30"
  digest_threshold: 1
`), testEnv.lookup)
		var problems config.Problems
		require.ErrorAs(t, err, &problems)
		got := make([]string, len(problems))
		for i, p := range problems {
			got[i] = p.String()
		}
		require.Equal(t, []string{
			`f.yaml:3:14: rules.idle.stages.closed_won: closed_won is a closed stage: alert rules watch open deals only`,
			`f.yaml:3:40: rules.idle.stages.proposal: want days like 7d (calendar days) or 5bd (business days), got "5x"`,
			`f.yaml:4:14: rules.idle.stalled: 0d is too short (minimum 1d)`,
			`f.yaml:5:26: rules.stuck_in_stage.mode: unknown mode "median" (want learned or fixed)`,
			`f.yaml:5:46: rules.stuck_in_stage.percentile: 1.5 is out of range (want 0.01 to 0.99)`,
			`f.yaml:6:23: rules.coverage_shortfall: cap (2) is below floor (3)`,
			`f.yaml:7:3: rules.idel: unknown key (want one of idle, stuck_in_stage, past_close_date, close_date_slipped, no_next_step, coverage_shortfall, lead_velocity_drop)`,
			`f.yaml:9:16: routing.digest_time: want a time of day like 08:30 (24-hour HH:MM), got "8:30"`,
			`f.yaml:10:21: routing.digest_threshold: 1 is out of range (want 2 to 1000)`,
		}, got)
	})

	t.Run("ApplyStoresAndLoadRoundTrips", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		tx := dbtest.TestTx(ctx, t)

		rules, err := config.LoadRules(ctx, tx)
		require.NoError(t, err)
		require.Equal(t, config.DefaultRules(), rules, "before the first apply the defaults hold")

		f, err := config.Parse("f.yaml", []byte("rules:\n  idle: {default: 21d}\nrouting: {channel: \"#rev\"}\n"), testEnv.lookup)
		require.NoError(t, err)
		sum, err := config.Apply(ctx, tx, f, nil)
		require.NoError(t, err)
		var out strings.Builder
		_, _ = sum.WriteTo(&out)
		require.Contains(t, out.String(), "settings rules: updated")

		rules, err = config.LoadRules(ctx, tx)
		require.NoError(t, err)
		require.Equal(t, f.Rules, rules)
		require.Equal(t, config.Days{N: 21}, rules.Idle.Default)
		routing, err := config.LoadRouting(ctx, tx)
		require.NoError(t, err)
		require.Equal(t, "#rev", routing.Channel)
	})
}

func TestParseDays(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]config.Days{
		"7d": {N: 7}, "5bd": {N: 5, Business: true}, "10": {N: 10}, " 3BD ": {N: 3, Business: true}, "off": {},
	} {
		got, err := config.ParseDays(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "d", "-1d", "2w", "1.5d"} {
		_, err := config.ParseDays(in)
		require.Error(t, err, in)
	}
	require.Equal(t, "5 business days", config.Days{N: 5, Business: true}.Label())
	require.Equal(t, "1 day", config.Days{N: 1}.Label())
}
