package notify

import (
	"slices"
	"time"
)

// Default delivery window: messages reach people between 08:00 and 18:00 of their own
// day, Monday to Friday.
const (
	DefaultWindowStart = 8 * time.Hour
	DefaultWindowEnd   = 18 * time.Hour
)

// DefaultBusinessDays are Monday to Friday.
var DefaultBusinessDays = []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday}

// searchDays bounds the search for a business day, so a calendar without any (every day a
// holiday) cannot loop forever.
const searchDays = 3 * 366

// Calendar says when a person may be messaged: a daily window on business days, in their
// time zone. The zero value is 08:00–18:00 UTC, Monday to Friday, without holidays.
// All methods are pure.
type Calendar struct {
	// Location is the recipient's time zone (nil = UTC).
	Location *time.Location
	// BusinessDays are the working weekdays (nil = Monday to Friday).
	BusinessDays []time.Weekday
	// Holidays are dates (YYYY-MM-DD) in Location that are not business days.
	Holidays []string
	// WindowStart and WindowEnd are the window's bounds as time since local midnight
	// (both zero = DefaultWindowStart to DefaultWindowEnd). End is exclusive; 24h is midnight.
	WindowStart, WindowEnd time.Duration
}

func (c Calendar) location() *time.Location {
	if c.Location == nil {
		return time.UTC
	}
	return c.Location
}

func (c Calendar) window() (start, end time.Duration) {
	if c.WindowStart == 0 && c.WindowEnd == 0 {
		return DefaultWindowStart, DefaultWindowEnd
	}
	return c.WindowStart, c.WindowEnd
}

// IsBusinessDay reports whether the local date of t (in the calendar's zone) is a business
// day and not a holiday.
func (c Calendar) IsBusinessDay(t time.Time) bool {
	t = t.In(c.location())
	days := c.BusinessDays
	if days == nil {
		days = DefaultBusinessDays
	}
	return slices.Contains(days, t.Weekday()) && !slices.Contains(c.Holidays, t.Format(time.DateOnly))
}

// NextWindow returns t when t falls inside a delivery window, else the start of the next
// window (a business day's WindowStart, in the calendar's zone). When no business day
// exists in the next three years it returns t: a broken calendar must not hold messages
// forever.
func (c Calendar) NextWindow(t time.Time) time.Time {
	start, end := c.window()
	local := t.In(c.location())
	for i := range searchDays {
		day := local.AddDate(0, 0, i)
		if !c.IsBusinessDay(day) {
			continue
		}
		opens, closes := c.At(day, start), c.At(day, end)
		switch {
		case t.Before(opens):
			return opens
		case t.Before(closes):
			return t
		}
	}
	return t
}

// AddBusinessDays returns the moment n business days after t's date, at t's local clock
// time. With n = 0 it returns t when t's date is a business day, else the same clock time
// on the next business day (a weekend or holiday moves forward).
func (c Calendar) AddBusinessDays(t time.Time, n int) time.Time {
	local := t.In(c.location())
	day := local
	for i := 0; i < searchDays; i++ {
		if c.IsBusinessDay(day) {
			if n == 0 {
				return c.At(day, sinceMidnight(local))
			}
			n--
		}
		day = day.AddDate(0, 0, 1)
	}
	return t
}

// At returns the local date of day (in the calendar's zone) at clock, the time since
// midnight ("09:00" is 9*time.Hour). Across a daylight-saving change the wall clock is
// kept: 09:00 stays 09:00.
func (c Calendar) At(day time.Time, clock time.Duration) time.Time {
	day = day.In(c.location())
	h, m, s := int(clock/time.Hour), int(clock%time.Hour/time.Minute), int(clock%time.Minute/time.Second)
	return time.Date(day.Year(), day.Month(), day.Day(), h, m, s, int(clock%time.Second), c.location())
}

func sinceMidnight(t time.Time) time.Duration {
	h, m, s := t.Clock()
	return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(s)*time.Second + time.Duration(t.Nanosecond())
}
