package analytics

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Period is a span of whole UTC days, both ends included.
type Period struct {
	// Label is how the period was written: "2026-11", "2026-Q4", "2026" or "2026-10-01..2026-12-15".
	Label string
	// Start and End are UTC midnights; End is the period's last day.
	Start, End time.Time
}

var (
	monthRe   = regexp.MustCompile(`^(\d{4})-(\d{2})$`)
	quarterRe = regexp.MustCompile(`^(\d{4})-[Qq]([1-4])$`)
	yearRe    = regexp.MustCompile(`^(\d{4})$`)
)

// ParsePeriod reads a month ("2026-11"), a quarter ("2026-Q4"), a year ("2026") or a
// custom range of days ("2026-10-01..2026-12-15", both ends included).
func ParsePeriod(s string) (Period, error) {
	s = strings.TrimSpace(s)
	if m := monthRe.FindStringSubmatch(s); m != nil {
		year, _ := strconv.Atoi(m[1])
		month, _ := strconv.Atoi(m[2])
		if month < 1 || month > 12 {
			return Period{}, fmt.Errorf("period %q: month must be 01 to 12", s)
		}
		start := time.Date(year, time.Month(month), 1, 0, 0, 0, 0, time.UTC)
		return Period{Label: s, Start: start, End: start.AddDate(0, 1, -1)}, nil
	}
	if m := quarterRe.FindStringSubmatch(s); m != nil {
		year, _ := strconv.Atoi(m[1])
		q, _ := strconv.Atoi(m[2])
		start := time.Date(year, time.Month(3*q-2), 1, 0, 0, 0, 0, time.UTC)
		return Period{Label: m[1] + "-Q" + m[2], Start: start, End: start.AddDate(0, 3, -1)}, nil
	}
	if m := yearRe.FindStringSubmatch(s); m != nil {
		year, _ := strconv.Atoi(m[1])
		start := time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC)
		return Period{Label: s, Start: start, End: start.AddDate(1, 0, -1)}, nil
	}
	if from, to, ok := strings.Cut(s, ".."); ok {
		start, err := time.Parse(time.DateOnly, strings.TrimSpace(from))
		if err != nil {
			return Period{}, fmt.Errorf("period %q: start must be a date like 2026-10-01", s)
		}
		end, err := time.Parse(time.DateOnly, strings.TrimSpace(to))
		if err != nil {
			return Period{}, fmt.Errorf("period %q: end must be a date like 2026-12-15", s)
		}
		if end.Before(start) {
			return Period{}, fmt.Errorf("period %q: ends before it starts", s)
		}
		return Period{Label: start.Format(time.DateOnly) + ".." + end.Format(time.DateOnly), Start: start, End: end}, nil
	}
	return Period{}, fmt.Errorf("period %q: want a month (2026-11), a quarter (2026-Q4), a year (2026) or a range of days (2026-10-01..2026-12-15)", s)
}

// QuarterOf returns the calendar quarter containing t (in UTC).
func QuarterOf(t time.Time) Period {
	t = t.UTC()
	q := (int(t.Month())-1)/3 + 1
	p, _ := ParsePeriod(fmt.Sprintf("%d-Q%d", t.Year(), q))
	return p
}

// until is the first instant after the period (the day after End, at midnight UTC).
func (p Period) until() time.Time { return p.End.AddDate(0, 0, 1) }

// Contains reports whether the UTC day of t is in the period.
func (p Period) Contains(t time.Time) bool {
	return !t.Before(p.Start) && t.Before(p.until())
}

// trailingYear is the four calendar quarters before the quarter the period starts in:
// the window of the trailing win rate behind the required coverage ratio.
func (p Period) trailingYear() (from, until time.Time) {
	until = QuarterOf(p.Start).Start
	return until.AddDate(-1, 0, 0), until
}
