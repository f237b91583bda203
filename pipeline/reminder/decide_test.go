package reminder

import (
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/config"
	"github.com/pipewatch/pipewatch/pipeline"
)

func TestDecide(t *testing.T) {
	t.Parallel()

	day := func(d int) time.Time { return time.Date(2026, 3, d, 10, 0, 0, 0, time.UTC) }
	now := day(20)
	inProposal := DealState{Stage: pipeline.StageProposal}
	enteredOn6 := Entry{StageEnteredAt: day(6)}
	active := &cadenceRef{ID: 7, State: cadenceActive, Trigger: pipeline.StageProposal, EnteredAt: day(6)}
	ended := func(state, by string) *cadenceRef {
		return &cadenceRef{ID: 7, State: state, EndedBy: by, Trigger: pipeline.StageProposal, EnteredAt: day(6)}
	}
	on := config.DefaultReminders()
	off := config.DefaultReminders()
	off.Enabled = false
	negotiation := config.DefaultReminders()
	negotiation.Trigger = pipeline.StageNegotiation

	tests := []struct {
		name      string
		candidate candidate
		settings  config.Reminders
		want      decision
	}{
		{"NewEntryStarts", candidate{deal: deal{DealState: inProposal}, Entry: enteredOn6}, on,
			decision{Start: true, EnteredAt: day(6)}},
		{"NoEntryTimeCountsFromNow", candidate{deal: deal{DealState: inProposal}}, on,
			decision{Start: true, EnteredAt: now}},
		{"OtherStageStartsNothing", candidate{deal: deal{DealState: DealState{Stage: pipeline.StageNegotiation}}, Entry: enteredOn6}, on,
			decision{}},
		{"ActiveIsMaintained", candidate{deal: deal{DealState: inProposal}, Entry: enteredOn6, Active: active, Latest: active}, on,
			decision{Maintain: true}},
		{"ActiveEndsWhenWon", candidate{deal: deal{DealState: DealState{Closed: true, Won: true, Stage: pipeline.StageProposal}},
			Active: active, Latest: active}, on,
			decision{End: "the deal was won", EndedBy: endedByDeal}},
		{"ReenteredAfterLeaving",
			candidate{deal: deal{DealState: inProposal}, Entry: Entry{StageEnteredAt: day(15), LeftAt: day(10), LeftUntil: day(15)},
				Active: active, Latest: active}, on,
			decision{End: "the deal left proposal and entered it again", EndedBy: endedByDeal, Start: true, EnteredAt: day(15)}},
		{"StoppedByTheRepStaysStopped", candidate{deal: deal{DealState: inProposal}, Entry: enteredOn6, Latest: ended(cadenceStopped, endedByRep)}, on,
			decision{}},
		{"VendorCorrectionOfTheEntryIsTheSameEpisode",
			candidate{deal: deal{DealState: inProposal}, Entry: Entry{StageEnteredAt: day(5)}, Latest: ended(cadenceFinished, endedByLastStep)}, on,
			decision{}},
		{"QualifiesAgainAfterTheDealEndedIt",
			candidate{deal: deal{DealState: inProposal}, Entry: enteredOn6, Latest: ended(cadenceCancelled, endedByDeal)}, on,
			decision{Start: true, EnteredAt: now}},
		{"TurnedOffEndsActive", candidate{deal: deal{DealState: inProposal}, Entry: enteredOn6, Active: active, Latest: active}, off,
			decision{End: "reminders are turned off in the config", EndedBy: endedByConfig}},
		{"TurnedOffStartsNothing", candidate{deal: deal{DealState: inProposal}, Entry: enteredOn6}, off, decision{}},
		{"TurnedOnAgainKeepsTheEpisodeQuiet",
			candidate{deal: deal{DealState: inProposal}, Entry: enteredOn6, Latest: ended(cadenceCancelled, endedByConfig)}, on,
			decision{}},
		{"TriggerChanged",
			candidate{deal: deal{DealState: DealState{Stage: pipeline.StageNegotiation}}, Entry: Entry{StageEnteredAt: day(12)}, Active: active}, negotiation,
			decision{End: "the reminder trigger changed to negotiation", EndedBy: endedByConfig, Start: true, EnteredAt: day(12)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, decide(tt.candidate, tt.settings, now))
		})
	}
}

func TestFormatAmount(t *testing.T) {
	t.Parallel()

	for in, want := range map[string]string{
		"12500": "12,500 USD", "1250000.5": "1,250,000.50 USD", "999": "999 USD", "-4200.25": "-4,200.25 USD", "0": "0 USD",
	} {
		require.Equal(t, want, formatAmount(decimal.NewNullDecimal(decimal.RequireFromString(in)), "USD"), in)
	}
	require.Equal(t, "not set", formatAmount(decimal.NullDecimal{}, "USD"))
}

func TestSkipReason(t *testing.T) {
	t.Parallel()

	tokyo, err := time.LoadLocation("Asia/Tokyo")
	require.NoError(t, err)
	touches := []Touch{
		{Kind: pipeline.ActivityMeeting, At: time.Date(2026, 3, 19, 5, 0, 0, 0, time.UTC), Booked: true, Subject: "Pricing review"},
		{Kind: pipeline.ActivityEmail, Direction: pipeline.Outbound, At: time.Date(2026, 3, 11, 1, 15, 0, 0, time.UTC)},
	}
	require.Equal(t, `touched since follow-up 2: meeting "Pricing review" booked for Thu 19 Mar 14:00 JST (and 1 more touch)`,
		skipReason(3, touches, tokyo))
	require.Equal(t, "touched since entering the stage: outbound email on Wed 11 Mar 10:15 JST",
		skipReason(1, touches[1:], tokyo))
}
