package sandbox_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/sandbox"
	"github.com/pipewatch/pipewatch/pipeline"
)

var testNow = time.Date(2026, 11, 18, 15, 30, 0, 0, time.UTC)

func TestGenerate(t *testing.T) {
	t.Parallel()

	c := sandbox.Generate(sandbox.Options{Seed: 7, Now: testNow})

	t.Run("Deterministic", func(t *testing.T) {
		t.Parallel()
		again := sandbox.Generate(sandbox.Options{Seed: 7, Now: testNow})
		require.Equal(t, c, again)
		other := sandbox.Generate(sandbox.Options{Seed: 8, Now: testNow})
		require.NotEqual(t, c.Deals[10].Name, other.Deals[10].Name)
	})

	t.Run("TeamsInThreeZones", func(t *testing.T) {
		t.Parallel()
		require.Len(t, c.Teams, 3)
		zones := map[string]bool{}
		for _, team := range c.Teams {
			zones[team.Timezone] = true
			require.True(t, team.Manager.Manager)
			require.Len(t, team.Reps, 4)
		}
		require.Len(t, zones, 3)
		require.Equal(t, sandbox.Pipedrive, c.Teams[2].CRM)
	})

	t.Run("EighteenMonthsOfDeals", func(t *testing.T) {
		t.Parallel()
		first, won, lost, open := c.Deals[0].Created, 0, 0, 0
		currencies := map[string]bool{}
		for i, d := range c.Deals {
			require.Equal(t, i+1, d.Seq)
			require.False(t, d.Created.After(testNow), d.Name)
			currencies[d.Currency] = true
			require.True(t, d.Amount.IsPositive(), d.Name)
			for j := 1; j < len(d.Stages); j++ {
				require.False(t, d.Stages[j].Entered.Before(d.Stages[j-1].Entered), "deal %d stages out of order", d.Seq)
			}
			switch {
			case d.Won():
				won++
			case d.Open():
				open++
			default:
				lost++
			}
			if !d.Open() {
				require.Equal(t, d.StageEntered(), d.ClosedAt)
			}
		}
		require.WithinDuration(t, testNow.AddDate(0, -18, 0), first, 10*24*time.Hour)
		require.Greater(t, len(c.Deals), 800)
		winRate := float64(won) / float64(won+lost)
		require.InDelta(t, 0.33, winRate, 0.1, "win rate")
		require.Greater(t, open, 60)
		require.GreaterOrEqual(t, len(currencies), 4, "USD, EUR, GBP, JPY, AUD")
		t.Logf("%d deals (%d won, %d lost, %d open), %d leads, %d accounts", len(c.Deals), won, lost, open, len(c.Leads), len(c.Accounts))
	})

	t.Run("StoriesForEveryRule", func(t *testing.T) {
		t.Parallel()
		stories := map[string]int{}
		for _, d := range c.Deals {
			if d.Story != "" {
				stories[d.Story]++
				require.True(t, d.Open())
			}
			if d.Story == sandbox.StoryGoingQuiet {
				idle := testNow.Sub(d.LastTouch())
				require.Less(t, idle, 7*24*time.Hour)
				require.Greater(t, idle, 7*24*time.Hour-15*time.Minute)
				require.True(t, d.NextStep().IsZero())
			}
			if d.Story == sandbox.StoryPastCloseDate {
				require.True(t, d.CloseDate.Before(testNow))
			}
		}
		require.Len(t, stories, 6)
		for s, n := range stories {
			require.Equal(t, 3, n, s)
		}
	})

	t.Run("LeadsQualifyAndDipLastMonth", func(t *testing.T) {
		t.Parallel()
		recent, before := map[string]int{}, map[string]int{}
		for _, l := range c.Leads {
			if !l.SQLAt.IsZero() {
				require.False(t, l.SQLAt.Before(l.MQLAt), l.Email)
				switch age := testNow.Sub(l.SQLAt); {
				case age < 30*24*time.Hour:
					recent[l.Team.Name]++
				case age < 60*24*time.Hour:
					before[l.Team.Name]++
				}
			}
		}
		require.Less(t, float64(recent["EMEA"]), 0.6*float64(before["EMEA"]), "EMEA's SQLs fell by more than 40%%")
		org := func(m map[string]int) float64 { return float64(m["Americas"] + m["EMEA"] + m["APAC"]) }
		require.Less(t, org(recent), 0.75*org(before), "the org's SQLs fell by more than 25%%: %v → %v", before, recent)
		require.GreaterOrEqual(t, org(before), 10.0, "enough SQLs before for a drop to mean something")
	})

	t.Run("TargetsThisQuarter", func(t *testing.T) {
		t.Parallel()
		require.Len(t, c.Targets, 12+2)
		for _, tg := range c.Targets {
			require.Equal(t, "2026-Q4", tg.Period)
			require.True(t, tg.Amount.IsPositive())
		}
	})

	t.Run("ActivitiesInWorkingHours", func(t *testing.T) {
		t.Parallel()
		var n int
		for _, d := range c.Deals {
			for _, a := range d.Activities {
				n++
				if a.Kind == pipeline.ActivityNote || !a.Done || d.Story != "" {
					continue
				}
				local := a.At.In(d.Owner.Team.Location())
				require.NotEqual(t, time.Sunday, local.Weekday(), "deal %d activity at %s", d.Seq, local)
			}
		}
		require.Greater(t, n, 5*len(c.Deals))
	})
}

// TestGenerateQualifiedLeadsFall: whatever the seed, the SQLs HubSpot records in the last
// 30 days fall by at least a third against the 30 days before, so the demo always shows
// the lead velocity rule firing.
func TestGenerateQualifiedLeadsFall(t *testing.T) {
	t.Parallel()
	for seed := uint64(1); seed <= 12; seed++ {
		c := sandbox.Generate(sandbox.Options{Seed: seed, Now: testNow})
		split, from := testNow.AddDate(0, 0, -30), testNow.AddDate(0, 0, -60)
		var current, previous int
		for _, l := range c.Leads {
			switch {
			case l.Team.CRM != sandbox.HubSpot || l.SQLAt.IsZero() || l.SQLAt.Before(from):
			case l.SQLAt.Before(split):
				previous++
				require.False(t, l.SQLAt.Before(l.MQLAt), "qualified for sales after marketing")
			default:
				current++
			}
		}
		require.Greater(t, previous, 40, "seed %d", seed)
		require.LessOrEqual(t, float64(current), 0.6*float64(previous), "seed %d: %d SQLs, %d before", seed, current, previous)
	}
}
