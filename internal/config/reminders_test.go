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

func TestRemindersSection(t *testing.T) {
	t.Parallel()

	t.Run("AbsentMeansDefaults", func(t *testing.T) {
		t.Parallel()
		f, err := config.Parse("f.yaml", []byte("org: {timezone: UTC}\n"), testEnv.lookup)
		require.NoError(t, err)
		require.Equal(t, config.Reminders{Enabled: true, Trigger: pipeline.StageProposal, Steps: []int{2, 5, 9, 14, 21},
			SendAt: "09:00", StopWhen: config.StopLeftStage}, f.Reminders)
	})

	t.Run("EveryKey", func(t *testing.T) {
		t.Parallel()
		f, err := config.Parse("f.yaml", []byte(`
reminders:
  enabled: true
  trigger: negotiation
  steps: [+1, 3, 7]
  send_at: "08:30"
  stop_when: closed
`), testEnv.lookup)
		require.NoError(t, err)
		require.Equal(t, config.Reminders{Enabled: true, Trigger: pipeline.StageNegotiation, Steps: []int{1, 3, 7},
			SendAt: "08:30", StopWhen: config.StopClosed}, f.Reminders)
	})

	t.Run("EveryProblemWithItsLine", func(t *testing.T) {
		t.Parallel()
		_, err := config.Parse("f.yaml", []byte(`reminders:
  trigger: closed_won
  steps: [2, 2, 0]
  send_at: 9am
  stop_when: never
  cadence: weekly
`), testEnv.lookup)
		var problems config.Problems
		require.ErrorAs(t, err, &problems)
		msg := err.Error()
		for _, want := range []string{
			`f.yaml:2:12: reminders.trigger: closed_won is a closed stage: reminders follow up open deals`,
			`f.yaml:3:17: reminders.steps[2]: 0 is out of range (want 1 to 260)`,
			`f.yaml:4:12: reminders.send_at: want a time of day like 09:00 (24-hour HH:MM, the rep's time zone), got "9am"`,
			`f.yaml:5:14: reminders.stop_when: unknown stop condition "never" (want left_stage or closed)`,
			`f.yaml:6:3: reminders.cadence: unknown key`,
		} {
			require.Contains(t, msg, want)
		}
		require.Len(t, problems, 5, msg)

		_, err = config.Parse("f.yaml", []byte("reminders:\n  steps: [5, 2]\n"), testEnv.lookup)
		require.ErrorContains(t, err, "f.yaml:2:10: reminders.steps: steps must increase: step 2 (2) is not after step 1 (5)")
		_, err = config.Parse("f.yaml", []byte("reminders:\n  steps: []\n"), testEnv.lookup)
		require.ErrorContains(t, err, "reminders.steps: list at least one step (or set enabled: false)")
	})

	t.Run("AppliedAndLoaded", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		tx := dbtest.TestTx(ctx, t)
		r, err := config.LoadReminders(ctx, tx)
		require.NoError(t, err)
		require.Equal(t, config.DefaultReminders(), r, "defaults before the first apply")

		f, err := config.Parse("f.yaml", []byte("reminders: {steps: [1, 2], send_at: '10:00'}\n"), testEnv.lookup)
		require.NoError(t, err)
		sum, err := config.Apply(ctx, tx, f, nil)
		require.NoError(t, err)
		var b strings.Builder
		_, _ = sum.WriteTo(&b)
		require.Contains(t, b.String(), "settings reminders: updated")
		r, err = config.LoadReminders(ctx, tx)
		require.NoError(t, err)
		require.Equal(t, f.Reminders, r)
		clock, err := r.SendClock()
		require.NoError(t, err)
		require.Equal(t, "10h0m0s", clock.String())
	})
}
