package alerting

import (
	"fmt"
	"slices"
	"time"

	"github.com/pipewatch/pipewatch/internal/config"
)

const day = 24 * time.Hour

// Calendar counts business time: the working weekdays of a team (or the org) in its time
// zone, minus holidays.
type Calendar struct {
	loc      *time.Location
	workdays [7]bool
	holidays map[string]bool // YYYY-MM-DD
}

// NewCalendar returns a calendar in loc working on workdays (nil = Monday to Friday),
// without the given holidays (YYYY-MM-DD).
func NewCalendar(loc *time.Location, workdays []time.Weekday, holidays []string) (*Calendar, error) {
	if len(workdays) == 0 {
		workdays = config.DefaultBusinessDays
	}
	c := &Calendar{loc: loc, holidays: make(map[string]bool, len(holidays))}
	for _, d := range workdays {
		c.workdays[d] = true
	}
	for _, h := range holidays {
		if _, err := time.Parse(time.DateOnly, h); err != nil {
			return nil, fmt.Errorf("holiday %q is not a date (want YYYY-MM-DD)", h)
		}
		c.holidays[h] = true
	}
	return c, nil
}

// teamCalendar is the calendar of a configured team.
func teamCalendar(t config.Team) (*Calendar, error) {
	loc, err := t.Location()
	if err != nil {
		return nil, err
	}
	return NewCalendar(loc, t.BusinessDays, t.Holidays)
}

// Location is the calendar's time zone.
func (c *Calendar) Location() *time.Location { return c.loc }

// IsBusinessDay reports whether the calendar day containing t is a working day.
func (c *Calendar) IsBusinessDay(t time.Time) bool {
	t = t.In(c.loc)
	return c.workdays[t.Weekday()] && !c.holidays[t.Format(time.DateOnly)]
}

// Today is midnight of now's date in the calendar's zone.
func (c *Calendar) Today(now time.Time) time.Time { return startOfDay(now.In(c.loc)) }

func startOfDay(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, t.Location())
}

// Before returns the instant that lies d before now. Calendar days are 24 hours; business
// days count only time on working days, so 3 business days before Tuesday 10:00 is the
// previous Thursday 10:00.
func (c *Calendar) Before(now time.Time, d config.Days) time.Time {
	if !d.Business {
		return now.Add(-time.Duration(d.N) * day)
	}
	if !slices.Contains(c.workdays[:], true) {
		return time.Time{} // no working days: business time never passes
	}
	remaining := time.Duration(d.N) * day
	t := now.In(c.loc)
	for remaining > 0 {
		dayStart := startOfDay(t.Add(-time.Nanosecond))
		if c.IsBusinessDay(dayStart) {
			avail := t.Sub(dayStart)
			if avail >= remaining {
				return t.Add(-remaining)
			}
			remaining -= avail
		}
		t = dayStart
	}
	return t
}

// After returns the instant that lies d after t (the mirror of Before).
func (c *Calendar) After(t time.Time, d config.Days) time.Time {
	if !d.Business {
		return t.Add(time.Duration(d.N) * day)
	}
	if !slices.Contains(c.workdays[:], true) {
		return t.AddDate(100, 0, 0) // no working days: business time never passes
	}
	remaining := time.Duration(d.N) * day
	t = t.In(c.loc)
	for remaining > 0 {
		next := startOfDay(t).AddDate(0, 0, 1)
		if c.IsBusinessDay(t) {
			avail := next.Sub(t)
			if avail >= remaining {
				return t.Add(remaining)
			}
			remaining -= avail
		}
		t = next
	}
	return t
}

// Elapsed is the time from since to now in days: calendar days, or (business) only the
// time that falls on working days. It is 0 when since is not before now.
func (c *Calendar) Elapsed(since, now time.Time, business bool) float64 {
	if !since.Before(now) {
		return 0
	}
	if !business {
		return now.Sub(since).Hours() / 24
	}
	var total time.Duration
	for t := since.In(c.loc); t.Before(now); {
		next := startOfDay(t).AddDate(0, 0, 1)
		end := next
		if now.Before(end) {
			end = now
		}
		if c.IsBusinessDay(t) {
			total += end.Sub(t)
		}
		t = next
	}
	return total.Hours() / 24
}

// periodBounds returns the first and last day of the quarter or month containing today.
func periodBounds(today time.Time, period string) (time.Time, time.Time) {
	y, m, _ := today.Date()
	if period == "month" {
		start := time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 1, -1)
	}
	start := time.Date(y, (m-1)/3*3+1, 1, 0, 0, 0, 0, time.UTC)
	return start, start.AddDate(0, 3, -1)
}
