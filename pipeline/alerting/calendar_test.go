package alerting

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/config"
)

func mustCalendar(t *testing.T, tz string, workdays []time.Weekday, holidays ...string) *Calendar {
	t.Helper()
	loc, err := time.LoadLocation(tz)
	require.NoError(t, err)
	c, err := NewCalendar(loc, workdays, holidays)
	require.NoError(t, err)
	return c
}

func at(t *testing.T, tz, s string) time.Time {
	t.Helper()
	loc, err := time.LoadLocation(tz)
	require.NoError(t, err)
	v, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
	require.NoError(t, err)
	return v
}

func TestCalendar(t *testing.T) {
	t.Parallel()

	t.Run("BeforeSkipsWeekends", func(t *testing.T) {
		t.Parallel()
		c := mustCalendar(t, "UTC", nil)
		tests := []struct {
			now  string
			days config.Days
			want string
		}{
			{"2026-06-09 10:00", config.Days{N: 3, Business: true}, "2026-06-04 10:00"}, // Tue → Thu
			{"2026-06-10 12:00", config.Days{N: 3, Business: true}, "2026-06-05 12:00"}, // Wed → Fri
			{"2026-06-13 15:00", config.Days{N: 1, Business: true}, "2026-06-12 00:00"}, // Sat: all of Friday
			{"2026-06-15 06:00", config.Days{N: 1, Business: true}, "2026-06-12 06:00"}, // Mon 06:00 → Fri 06:00
			{"2026-06-10 12:00", config.Days{N: 7}, "2026-06-03 12:00"},                 // calendar days
			{"2026-06-10 12:00", config.Days{N: 10, Business: true}, "2026-05-27 12:00"},
		}
		for _, tt := range tests {
			got := c.Before(at(t, "UTC", tt.now), tt.days)
			require.Equal(t, at(t, "UTC", tt.want), got, "%s before %s", tt.days, tt.now)
			if now := at(t, "UTC", tt.now); tt.days.Business && c.IsBusinessDay(now) {
				require.Equal(t, now, c.After(got, tt.days), "After mirrors Before from %s", tt.want)
			}
		}
	})

	t.Run("HolidaysAndTeamWeek", func(t *testing.T) {
		t.Parallel()
		// A Berlin team working Monday to Thursday, with Monday 2026-06-08 off.
		c := mustCalendar(t, "Europe/Berlin", []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday}, "2026-06-08")
		now := at(t, "Europe/Berlin", "2026-06-10 12:00")
		require.Equal(t, at(t, "Europe/Berlin", "2026-06-04 12:00"), c.Before(now, config.Days{N: 2, Business: true}),
			"Tue and Wed count; Mon (holiday), Sun, Sat and Fri do not")
		require.False(t, c.IsBusinessDay(at(t, "Europe/Berlin", "2026-06-12 10:00")), "Friday")
		require.InDelta(t, 2.0, c.Elapsed(at(t, "Europe/Berlin", "2026-06-04 12:00"), now, true), 1e-9)
	})

	t.Run("ElapsedCountsOnlyWorkingTime", func(t *testing.T) {
		t.Parallel()
		c := mustCalendar(t, "UTC", nil)
		// Friday 17:00 to Wednesday 09:00: 7 h Fri + Mon + Tue + 9 h Wed = 2.667 business days.
		got := c.Elapsed(at(t, "UTC", "2026-06-05 17:00"), at(t, "UTC", "2026-06-10 09:00"), true)
		require.InDelta(t, 2+16.0/24, got, 1e-9)
		require.InDelta(t, 4+16.0/24, c.Elapsed(at(t, "UTC", "2026-06-05 17:00"), at(t, "UTC", "2026-06-10 09:00"), false), 1e-9)
		require.Zero(t, c.Elapsed(at(t, "UTC", "2026-06-10 09:00"), at(t, "UTC", "2026-06-05 17:00"), true))
	})

	t.Run("BeforeAgreesWithBruteForce", func(t *testing.T) {
		t.Parallel()
		c := mustCalendar(t, "America/New_York", nil, "2026-07-03")
		for h := 0; h < 24*14; h += 5 {
			now := at(t, "America/New_York", "2026-06-29 00:00").Add(time.Duration(h) * time.Hour)
			for _, n := range []int{1, 3, 5} {
				cut := c.Before(now, config.Days{N: n, Business: true})
				// Count working time between cut and now in quarter hours.
				var hours float64
				for x := cut; x.Before(now); x = x.Add(15 * time.Minute) {
					if c.IsBusinessDay(x) {
						hours += 0.25
					}
				}
				require.InDelta(t, float64(24*n), hours, 0.25, "n=%d now=%s cut=%s", n, now, cut)
			}
		}
	})

	t.Run("RejectsBadHolidays", func(t *testing.T) {
		t.Parallel()
		_, err := NewCalendar(time.UTC, nil, []string{"25.12.2026"})
		require.EqualError(t, err, `holiday "25.12.2026" is not a date (want YYYY-MM-DD)`)
	})

	t.Run("PeriodBounds", func(t *testing.T) {
		t.Parallel()
		ps, pe := periodBounds(time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC), "quarter")
		require.Equal(t, "2026-10-01..2026-12-31", ps.Format(time.DateOnly)+".."+pe.Format(time.DateOnly))
		ps, pe = periodBounds(time.Date(2026, 2, 3, 0, 0, 0, 0, time.UTC), "month")
		require.Equal(t, "2026-02-01..2026-02-28", ps.Format(time.DateOnly)+".."+pe.Format(time.DateOnly))
	})
}
