package notify_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/notify"
)

func mustLoad(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	require.NoError(t, err)
	return loc
}

func TestCalendarNextWindow(t *testing.T) {
	t.Parallel()

	newYork := mustLoad(t, "America/New_York")
	tokyo := mustLoad(t, "Asia/Tokyo")
	ny := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, newYork)
		require.NoError(t, err)
		return v
	}
	nyCal := notify.Calendar{Location: newYork}

	tests := []struct {
		name string
		cal  notify.Calendar
		at   time.Time
		want time.Time
	}{
		{"InsideWindow", nyCal, ny("2026-11-10 10:30"), ny("2026-11-10 10:30")},
		{"WindowOpensInclusive", nyCal, ny("2026-11-10 08:00"), ny("2026-11-10 08:00")},
		{"BeforeWindowSameDay", nyCal, ny("2026-11-10 06:15"), ny("2026-11-10 08:00")},
		{"WindowEndIsExclusive", nyCal, ny("2026-11-10 18:00"), ny("2026-11-11 08:00")},
		{"LateTuesdayNight", nyCal, ny("2026-11-10 23:00"), ny("2026-11-11 08:00")},
		{"FridayNightWaitsForMonday", nyCal, ny("2026-11-13 23:00"), ny("2026-11-16 08:00")},
		{"Saturday", nyCal, ny("2026-11-14 11:00"), ny("2026-11-16 08:00")},
		{"HolidaySkipped", notify.Calendar{Location: newYork, Holidays: []string{"2026-11-26", "2026-11-27"}},
			ny("2026-11-25 19:00"), ny("2026-11-30 08:00")},
		{"OwnBusinessDays", notify.Calendar{Location: newYork, BusinessDays: []time.Weekday{time.Sunday, time.Monday}},
			ny("2026-11-10 09:00"), ny("2026-11-15 08:00")},
		{"OwnWindow", notify.Calendar{Location: newYork, WindowStart: 9*time.Hour + 30*time.Minute, WindowEnd: 17 * time.Hour},
			ny("2026-11-10 17:00"), ny("2026-11-11 09:30")},
		{"ReadInRecipientZone", notify.Calendar{Location: tokyo},
			// Friday 20:00 in New York is Saturday 10:00 in Tokyo: Monday 08:00 Tokyo.
			ny("2026-11-13 20:00"), time.Date(2026, 11, 16, 8, 0, 0, 0, tokyo)},
		{"SpringForwardKeepsWallClock", nyCal, ny("2026-03-08 01:00"), ny("2026-03-09 08:00")},
		{"UTCWhenNoZone", notify.Calendar{}, time.Date(2026, 11, 10, 19, 0, 0, 0, time.UTC),
			time.Date(2026, 11, 11, 8, 0, 0, 0, time.UTC)},
		{"NoBusinessDayDeliversNow", notify.Calendar{Location: newYork, BusinessDays: []time.Weekday{}},
			ny("2026-11-10 23:00"), ny("2026-11-10 23:00")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := tt.cal.NextWindow(tt.at)
			require.True(t, tt.want.Equal(got), "want %s, got %s", tt.want, got.In(tt.want.Location()))
		})
	}
}

func TestCalendarAddBusinessDays(t *testing.T) {
	t.Parallel()

	berlin := mustLoad(t, "Europe/Berlin")
	cal := notify.Calendar{Location: berlin, Holidays: []string{"2026-12-24", "2026-12-25"}}
	at := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, berlin)
		require.NoError(t, err)
		return v
	}
	tests := []struct {
		name string
		from time.Time
		n    int
		want time.Time
	}{
		{"ZeroOnBusinessDay", at("2026-12-21 15:00"), 0, at("2026-12-21 15:00")},
		{"ZeroOnWeekendMovesForward", at("2026-12-19 15:00"), 0, at("2026-12-21 15:00")},
		{"OverTheWeekend", at("2026-12-18 15:00"), 1, at("2026-12-21 15:00")},
		{"OverHolidays", at("2026-12-23 10:00"), 1, at("2026-12-28 10:00")},
		{"AcrossDaylightSavingKeepsClock", at("2026-03-27 09:00"), 1, at("2026-03-30 09:00")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := cal.AddBusinessDays(tt.from, tt.n)
			require.True(t, tt.want.Equal(got), "want %s, got %s", tt.want, got.In(berlin))
		})
	}

	t.Run("IsBusinessDayReadsTheCalendarZone", func(t *testing.T) {
		t.Parallel()
		// Monday 00:30 in Berlin is still Sunday in UTC.
		require.True(t, cal.IsBusinessDay(at("2026-12-21 00:30").UTC()))
		require.False(t, notify.Calendar{}.IsBusinessDay(at("2026-12-21 00:30")))
	})
}

// A follow-up cadence of +2, +5, +9, +14 and +21 business days at 09:00 in the rep's zone,
// for a deal that entered the proposal stage on a Friday afternoon in Tokyo, with a
// holiday on the way.
func ExampleCalendar_AddBusinessDays() {
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	cal := notify.Calendar{Location: tokyo, Holidays: []string{"2026-11-23"}} // Labour Thanksgiving Day
	entered := time.Date(2026, 11, 13, 16, 30, 0, 0, tokyo)                   // a Friday
	for _, offset := range []int{2, 5, 9, 14, 21} {
		due := cal.At(cal.AddBusinessDays(entered, offset), 9*time.Hour)
		fmt.Println(due.Format("Mon 2006-01-02 15:04 MST"))
	}
	// Output:
	// Tue 2026-11-17 09:00 JST
	// Fri 2026-11-20 09:00 JST
	// Fri 2026-11-27 09:00 JST
	// Fri 2026-12-04 09:00 JST
	// Tue 2026-12-15 09:00 JST
}
