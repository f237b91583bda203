package config

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
	"go.yaml.in/yaml/v3"
)

// Target is a sales target for one owner (by email), one team, or the whole org (both
// empty) over a period.
type Target struct {
	OwnerEmail string
	Team       string
	// Period is as written: 2026-Q4 or 2026-11.
	Period string
	// PeriodStart and PeriodEnd are the first and last day of the period (inclusive).
	PeriodStart, PeriodEnd time.Time
	Amount                 decimal.Decimal
	Currency               string
}

// scope names who the target is for.
func (t Target) scope() string {
	switch {
	case t.OwnerEmail != "":
		return t.OwnerEmail
	case t.Team != "":
		return "team " + t.Team
	}
	return "org"
}

func (t Target) key() string {
	return strings.Join([]string{t.OwnerEmail, t.Team, t.PeriodStart.Format(time.DateOnly), t.PeriodEnd.Format(time.DateOnly), t.Currency}, "\x00")
}

var periodPattern = regexp.MustCompile(`^(\d{4})-(?:[Qq]([1-4])|(0[1-9]|1[0-2]))$`)

// ParsePeriod turns a quarter (2026-Q4) or a month (2026-11) into its first and last day.
func ParsePeriod(s string) (start, end time.Time, err error) {
	m := periodPattern.FindStringSubmatch(s)
	if m == nil {
		return time.Time{}, time.Time{}, fmt.Errorf("want a quarter like 2026-Q4 or a month like 2026-11, got %q", s)
	}
	year, _ := strconv.Atoi(m[1])
	if m[2] != "" {
		q, _ := strconv.Atoi(m[2])
		start = time.Date(year, time.Month(3*q-2), 1, 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 3, -1), nil
	}
	month, _ := strconv.Atoi(m[3])
	start = time.Date(year, time.Month(month), 1, 0, 0, 0, 0, time.UTC)
	return start, start.AddDate(0, 1, -1), nil
}

var targetsSection = Section{
	Key: "targets",
	Decode: func(d *Decoder, n *yaml.Node, path string, f *File) {
		seen := map[string]int{}
		var teams []string
		for _, t := range f.Teams {
			if !slices.Contains(teams, t.Name) {
				teams = append(teams, t.Name)
			}
		}
		for i, item := range d.Sequence(n, path) {
			ipath := Index(path, i)
			m := d.Mapping(item, ipath, "owner_email", "team", "period", "amount", "currency")
			var t Target
			if m.Has("owner_email") && m.Has("team") {
				d.Errorf(item, ipath, "set owner_email or team (or neither, for the whole org), not both")
			}
			if e, ok := d.Email(m.Get("owner_email")); ok {
				t.OwnerEmail = e
			}
			if m.Has("team") {
				tn, tpath := m.Get("team")
				t.Team = d.String(tn, tpath)
				if t.Team != "" && len(teams) > 0 && !slices.Contains(teams, t.Team) {
					d.Errorf(tn, tpath, "unknown team %q (the teams section defines %s)", t.Team, orList(teams))
				}
			}
			pn, ppath := m.Required("period")
			if p, ok := d.scalar(pn, ppath, "a period like 2026-Q4"); ok {
				start, end, err := ParsePeriod(p)
				if err != nil {
					d.Errorf(pn, ppath, "%v", err)
				}
				t.Period, t.PeriodStart, t.PeriodEnd = strings.ToUpper(p), start, end
			}
			an, apath := m.Required("amount")
			if a, ok := d.Decimal(an, apath); ok {
				if a.IsNegative() {
					d.Errorf(an, apath, "must not be negative, got %s", a)
				}
				t.Amount = a
			}
			t.Currency = f.Org.Currency
			if c, ok := d.Currency(m.Get("currency")); ok {
				t.Currency = c
			}
			if !t.PeriodStart.IsZero() {
				if line, dup := seen[t.key()]; dup {
					d.Errorf(item, ipath, "duplicate target for %s, %s, %s (first at line %d)", t.scope(), t.Period, t.Currency, line)
				}
				seen[t.key()] = item.Line
			}
			f.Targets = append(f.Targets, t)
		}
	},
	Apply: applyTargets,
}

// applyTargets makes the targets table match the file: new targets are inserted,
// changed amounts updated and targets no longer in the file deleted.
func applyTargets(ctx context.Context, tx *Tx) error {
	rows, err := tx.Query(ctx, `
		SELECT id, coalesce(lower(owner_email), ''), coalesce(team, ''), period_start, period_end, currency, amount
		FROM targets`)
	if err != nil {
		return fmt.Errorf("reading targets: %w", err)
	}
	type stored struct {
		id     int64
		target Target
	}
	existing := map[string]stored{}
	var s stored
	_, err = pgx.ForEachRow(rows, []any{&s.id, &s.target.OwnerEmail, &s.target.Team, &s.target.PeriodStart, &s.target.PeriodEnd, &s.target.Currency, &s.target.Amount}, func() error {
		existing[s.target.key()] = s
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading targets: %w", err)
	}
	for _, t := range tx.File.Targets {
		name := fmt.Sprintf("%s %s %s", t.scope(), t.Period, t.Currency)
		old, ok := existing[t.key()]
		delete(existing, t.key())
		switch {
		case !ok:
			_, err := tx.Exec(ctx, `
				INSERT INTO targets (owner_email, team, period_start, period_end, amount, currency)
				VALUES (nullif($1, ''), nullif($2, ''), $3, $4, $5, $6)`,
				t.OwnerEmail, t.Team, t.PeriodStart, t.PeriodEnd, t.Amount, t.Currency)
			if err != nil {
				return fmt.Errorf("inserting target %s: %w", name, err)
			}
			tx.Changed("target", name, "created ("+t.Amount.String()+")")
		case !old.target.Amount.Equal(t.Amount):
			if _, err := tx.Exec(ctx, `UPDATE targets SET amount = $2 WHERE id = $1`, old.id, t.Amount); err != nil {
				return fmt.Errorf("updating target %s: %w", name, err)
			}
			tx.Changed("target", name, fmt.Sprintf("updated (%s → %s)", old.target.Amount, t.Amount))
		}
	}
	gone := make([]stored, 0, len(existing))
	for _, s := range existing {
		gone = append(gone, s)
	}
	slices.SortFunc(gone, func(a, b stored) int { return int(a.id - b.id) })
	for _, s := range gone {
		if _, err := tx.Exec(ctx, `DELETE FROM targets WHERE id = $1`, s.id); err != nil {
			return fmt.Errorf("deleting target: %w", err)
		}
		t := s.target
		tx.Changed("target", fmt.Sprintf("%s %s..%s %s", t.scope(), t.PeriodStart.Format(time.DateOnly), t.PeriodEnd.Format(time.DateOnly), t.Currency),
			"deleted (not in the file)")
	}
	return nil
}
