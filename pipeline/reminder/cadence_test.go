package reminder_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/config"
	"github.com/pipewatch/pipewatch/internal/notify"
	"github.com/pipewatch/pipewatch/pipeline"
	"github.com/pipewatch/pipewatch/pipeline/reminder"
)

func mustZone(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	require.NoError(t, err)
	return loc
}

// at parses "2006-01-02 15:04" in loc.
func at(t testing.TB, loc *time.Location, s string) time.Time {
	t.Helper()
	v, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
	require.NoError(t, err)
	return v
}

// dues is the due time of every step of c counted from entering the stage at entered.
func dues(c reminder.Cadence, entered time.Time) []string {
	out := make([]string, c.Steps())
	for i := range out {
		out[i] = c.Due(entered, 0, i+1).In(c.Calendar.Location).Format("Mon 2006-01-02 15:04 MST")
	}
	return out
}

func TestCadenceDue(t *testing.T) {
	t.Parallel()

	tokyo := mustZone(t, "Asia/Tokyo")
	newYork := mustZone(t, "America/New_York")
	dubai := mustZone(t, "Asia/Dubai")
	defaults := []int{2, 5, 9, 14, 21}

	tests := []struct {
		name    string
		cadence reminder.Cadence
		entered time.Time
		want    []string
	}{
		{
			name:    "FridayAfternoonInTokyo",
			cadence: reminder.Cadence{Offsets: defaults, SendAt: 9 * time.Hour, Calendar: notify.Calendar{Location: tokyo}},
			entered: at(t, tokyo, "2026-03-06 15:30"),
			want: []string{
				"Tue 2026-03-10 09:00 JST", "Fri 2026-03-13 09:00 JST", "Thu 2026-03-19 09:00 JST",
				"Thu 2026-03-26 09:00 JST", "Mon 2026-04-06 09:00 JST",
			},
		},
		{
			// Vernal Equinox Day (Friday 20 March) lies before steps 4 and 5: both move
			// one business day, the first three stay.
			name: "HolidayShiftsTheLaterSteps",
			cadence: reminder.Cadence{Offsets: defaults, SendAt: 9 * time.Hour,
				Calendar: notify.Calendar{Location: tokyo, Holidays: []string{"2026-03-20"}}},
			entered: at(t, tokyo, "2026-03-06 15:30"),
			want: []string{
				"Tue 2026-03-10 09:00 JST", "Fri 2026-03-13 09:00 JST", "Thu 2026-03-19 09:00 JST",
				"Fri 2026-03-27 09:00 JST", "Tue 2026-04-07 09:00 JST",
			},
		},
		{
			// A holiday on step 3's own date moves it to the next business day and every
			// later step shifts with it.
			name: "HolidayOnAStepDate",
			cadence: reminder.Cadence{Offsets: defaults, SendAt: 9 * time.Hour,
				Calendar: notify.Calendar{Location: tokyo, Holidays: []string{"2026-03-19"}}},
			entered: at(t, tokyo, "2026-03-06 15:30"),
			want: []string{
				"Tue 2026-03-10 09:00 JST", "Fri 2026-03-13 09:00 JST", "Fri 2026-03-20 09:00 JST",
				"Fri 2026-03-27 09:00 JST", "Tue 2026-04-07 09:00 JST",
			},
		},
		{
			// Friday 23:30 in New York is already Saturday in Tokyo: the rep's Monday
			// counts as the entry day.
			name:    "EntryReadInTheRepsZone",
			cadence: reminder.Cadence{Offsets: []int{1, 2}, SendAt: 9 * time.Hour, Calendar: notify.Calendar{Location: tokyo}},
			entered: at(t, newYork, "2026-03-06 23:30"),
			want:    []string{"Tue 2026-03-10 09:00 JST", "Wed 2026-03-11 09:00 JST"},
		},
		{
			// 09:00 stays 09:00 across the spring-forward night (8 March 2026 in New York).
			name:    "DaylightSavingKeepsTheWallClock",
			cadence: reminder.Cadence{Offsets: []int{1, 2}, SendAt: 9 * time.Hour, Calendar: notify.Calendar{Location: newYork}},
			entered: at(t, newYork, "2026-03-05 16:00"),
			want:    []string{"Fri 2026-03-06 09:00 EST", "Mon 2026-03-09 09:00 EDT"},
		},
		{
			name: "TeamBusinessDays",
			cadence: reminder.Cadence{Offsets: []int{1, 2}, SendAt: 8*time.Hour + 30*time.Minute,
				Calendar: notify.Calendar{Location: dubai, BusinessDays: []time.Weekday{
					time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday, time.Saturday}}},
			entered: at(t, dubai, "2026-03-06 11:00"),
			want:    []string{"Sat 2026-03-07 08:30 +04", "Mon 2026-03-09 08:30 +04"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, dues(tt.cadence, tt.entered))
		})
	}

	t.Run("ReanchoredStepsKeepTheirGaps", func(t *testing.T) {
		t.Parallel()
		c := reminder.Cadence{Offsets: defaults, SendAt: 9 * time.Hour, Calendar: notify.Calendar{Location: tokyo}}
		touch := at(t, tokyo, "2026-03-11 18:45") // an email on Wednesday, standing for step 2
		require.Equal(t, at(t, tokyo, "2026-03-17 09:00"), c.Due(touch, 2, 3), "+4 business days after the touch")
		require.Equal(t, at(t, tokyo, "2026-03-24 09:00"), c.Due(touch, 2, 4), "+9 business days after the touch")
		require.Equal(t, at(t, tokyo, "2026-03-12 09:00"), c.Snoozed(at(t, tokyo, "2026-03-11 09:05")))
		require.Equal(t, at(t, tokyo, "2026-03-16 09:00"), c.Snoozed(at(t, tokyo, "2026-03-13 09:05")), "Friday snoozes to Monday")
	})
}

func ExampleCadence_Due() {
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	c := reminder.Cadence{
		Offsets:  []int{2, 5, 9, 14, 21},
		SendAt:   9 * time.Hour,
		Calendar: notify.Calendar{Location: tokyo, Holidays: []string{"2026-03-20"}},
	}
	entered := time.Date(2026, 3, 6, 15, 30, 0, 0, tokyo) // a Friday afternoon
	for step := 1; step <= c.Steps(); step++ {
		fmt.Println(step, c.Local(c.Due(entered, 0, step)))
	}
	// Output:
	// 1 Tue 10 Mar 09:00 JST
	// 2 Fri 13 Mar 09:00 JST
	// 3 Thu 19 Mar 09:00 JST
	// 4 Fri 27 Mar 09:00 JST
	// 5 Tue 7 Apr 09:00 JST
}

func TestSettingsCadenceFor(t *testing.T) {
	t.Parallel()

	teams := []config.Team{
		{Name: "apac", Members: []string{"ana@example.com"}, Timezone: "Asia/Tokyo",
			BusinessDays: config.DefaultBusinessDays, Holidays: []string{"2026-03-20"}},
		{Name: "east", ManagerEmail: "maria@example.com", Timezone: "America/New_York",
			BusinessDays: config.Weekdays{time.Monday, time.Tuesday, time.Wednesday, time.Thursday}},
	}
	settings, err := reminder.NewSettings(config.DefaultReminders(), teams, config.Org{Timezone: "Europe/Berlin"})
	require.NoError(t, err)

	tests := []struct {
		name       string
		rep        reminder.Rep
		wantZone   string
		wantSource reminder.ZoneSource
		wantTeam   string // "" = no team calendar
	}{
		{"CRMZoneFirst", reminder.Rep{Email: "ana@example.com", CRMZone: "Asia/Kolkata", SlackZone: "Europe/Paris"},
			"Asia/Kolkata", reminder.ZoneCRM, "apac"},
		{"SlackZoneWhenTheCRMHasNone", reminder.Rep{Email: "ana@example.com", SlackZone: "Europe/Paris"},
			"Europe/Paris", reminder.ZoneSlack, "apac"},
		{"UnknownZonesArePassedOver", reminder.Rep{Email: "ana@example.com", CRMZone: "Mars/Olympus", SlackZone: "nowhere"},
			"Asia/Tokyo", reminder.ZoneTeam, "apac"},
		{"TeamByCRMTeamName", reminder.Rep{Email: "bo@example.com", Team: "east"},
			"America/New_York", reminder.ZoneTeam, "east"},
		{"TeamOfTheManager", reminder.Rep{Email: "Maria@Example.com"}, "America/New_York", reminder.ZoneTeam, "east"},
		{"OrgWithoutTeam", reminder.Rep{Email: "solo@example.com"}, "Europe/Berlin", reminder.ZoneOrg, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, zone := settings.CadenceFor(tt.rep)
			require.Equal(t, tt.wantZone, zone.Name())
			require.Equal(t, tt.wantSource, zone.Source)
			require.Equal(t, tt.wantZone, c.Calendar.Location.String())
			require.Equal(t, []int{2, 5, 9, 14, 21}, c.Offsets)
			require.Equal(t, 9*time.Hour, c.SendAt)
			switch tt.wantTeam {
			case "apac":
				require.Equal(t, []string{"2026-03-20"}, c.Calendar.Holidays)
			case "east":
				require.Equal(t, []time.Weekday(teams[1].BusinessDays), c.Calendar.BusinessDays)
			default:
				require.Nil(t, c.Calendar.BusinessDays)
				require.Nil(t, c.Calendar.Holidays)
			}
		})
	}

	t.Run("UTCWhenNothingIsKnown", func(t *testing.T) {
		t.Parallel()
		s, err := reminder.NewSettings(config.DefaultReminders(), nil, config.Org{})
		require.NoError(t, err)
		_, zone := s.CadenceFor(reminder.Rep{})
		require.Equal(t, "UTC", zone.Name())
		require.Equal(t, reminder.ZoneDefault, zone.Source)
	})
}

func TestEnding(t *testing.T) {
	t.Parallel()

	proposal := pipeline.StageProposal
	tests := []struct {
		name     string
		deal     reminder.DealState
		stopWhen string
		want     string
	}{
		{"InTheStage", reminder.DealState{Stage: proposal}, config.StopLeftStage, ""},
		{"StageNotKnownYet", reminder.DealState{}, config.StopLeftStage, ""},
		{"Won", reminder.DealState{Closed: true, Won: true, Stage: proposal}, config.StopLeftStage, "the deal was won"},
		{"LostPipedriveKeepsItsStage", reminder.DealState{Closed: true, Stage: proposal}, config.StopLeftStage, "the deal was lost"},
		{"WonStage", reminder.DealState{Stage: pipeline.StageClosedWon}, config.StopClosed, "the deal was won"},
		{"Deleted", reminder.DealState{Deleted: true, Stage: proposal}, config.StopClosed, "the deal was deleted in the CRM"},
		{"MovedOn", reminder.DealState{Stage: pipeline.StageNegotiation, StageName: "Contract talks"}, config.StopLeftStage,
			"the deal left proposal: it moved to Contract talks (negotiation)"},
		{"MovedOnWhileStopWhenClosed", reminder.DealState{Stage: pipeline.StageNegotiation}, config.StopClosed, ""},
		{"MovedBackWhileStopWhenClosed", reminder.DealState{Stage: pipeline.StageQualification, StageName: "qualification"},
			config.StopClosed, "the deal left proposal: it moved to qualification"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, reminder.Ending(tt.deal, proposal, tt.stopWhen))
		})
	}
}

func TestEntryEnteredAt(t *testing.T) {
	t.Parallel()

	day := func(d int) time.Time { return time.Date(2026, 3, d, 10, 0, 0, 0, time.UTC) }
	tests := []struct {
		name  string
		entry reminder.Entry
		want  time.Time
	}{
		{"VendorStageEnteredAt", reminder.Entry{StageEnteredAt: day(6), Fallback: day(9)}, day(6)},
		{"MoveBetweenTwoProposalStagesIsNoNewEntry",
			reminder.Entry{StageEnteredAt: day(8), RunStart: day(6), LeftAt: day(2), LeftUntil: day(6)}, day(6)},
		{"StaleStageEnteredAtBeforeLeaving",
			reminder.Entry{StageEnteredAt: day(1), LeftAt: day(3), LeftUntil: day(5)}, day(5)},
		{"OnlyTheDealRow", reminder.Entry{Fallback: day(9)}, day(9)},
		{"Nothing", reminder.Entry{}, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, tt.entry.EnteredAt())
		})
	}
}
