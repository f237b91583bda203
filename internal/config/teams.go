package config

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Org holds organisation-wide defaults (settings key "org").
type Org struct {
	// Timezone is the IANA zone used when neither the vendor, Slack nor a team gives one.
	Timezone string `json:"timezone"`
	// Currency is the ISO 4217 code targets default to.
	Currency string `json:"currency"`
}

// DefaultOrg is used for what the file leaves out.
var DefaultOrg = Org{Timezone: "UTC", Currency: "USD"}

// Team is a sales team (settings key "teams", a list): its manager, its reps and its
// calendar. Alerts and reminders use it for routing, quiet hours and business days.
type Team struct {
	Name         string   `json:"name"`
	ManagerEmail string   `json:"manager_email,omitempty"`
	Members      []string `json:"members,omitempty"` // owner emails, lower case
	Timezone     string   `json:"timezone"`
	BusinessDays Weekdays `json:"business_days"`
	Holidays     []string `json:"holidays,omitempty"` // YYYY-MM-DD
	SlackChannel string   `json:"slack_channel,omitempty"`
}

// Location is the team's time zone.
func (t Team) Location() (*time.Location, error) {
	loc, err := time.LoadLocation(t.Timezone)
	if err != nil {
		return nil, fmt.Errorf("loading time zone of team %s: %w", t.Name, err)
	}
	return loc, nil
}

// IsBusinessDay reports whether day (read on the calendar of its own location, so pass
// a time in the team's zone) is one of the team's business days and not a holiday.
func (t Team) IsBusinessDay(day time.Time) bool {
	return slices.Contains(t.BusinessDays, day.Weekday()) && !slices.Contains(t.Holidays, day.Format(time.DateOnly))
}

// Weekdays is a set of days of the week, written as mon, tue, … sun.
type Weekdays []time.Weekday

// DefaultBusinessDays are Monday to Friday.
var DefaultBusinessDays = Weekdays{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday}

var weekdayNames = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// MarshalJSON writes the days as ["mon","tue",…].
func (w Weekdays) MarshalJSON() ([]byte, error) {
	names := make([]string, len(w))
	for i, d := range w {
		names[i] = weekdayNames[d]
	}
	return json.Marshal(names)
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (w *Weekdays) UnmarshalJSON(b []byte) error {
	var names []string
	if err := json.Unmarshal(b, &names); err != nil {
		return fmt.Errorf("decoding weekdays: %w", err)
	}
	out := make(Weekdays, 0, len(names))
	for _, n := range names {
		i := slices.Index(weekdayNames, n)
		if i < 0 {
			return fmt.Errorf("decoding weekdays: unknown day %q", n)
		}
		out = append(out, time.Weekday(i))
	}
	*w = out
	return nil
}

// LoadTeams returns the teams stored by the last apply (none before the first).
func LoadTeams(ctx context.Context, db Querier) ([]Team, error) {
	var teams []Team
	if err := LoadSetting(ctx, db, "teams", &teams); err != nil && !errors.Is(err, ErrSettingNotFound) {
		return nil, err
	}
	return teams, nil
}

// LoadOrg returns the org defaults stored by the last apply (DefaultOrg before the first).
func LoadOrg(ctx context.Context, db Querier) (Org, error) {
	org := DefaultOrg
	if err := LoadSetting(ctx, db, "org", &org); err != nil && !errors.Is(err, ErrSettingNotFound) {
		return Org{}, err
	}
	return org, nil
}

var currencyPattern = regexp.MustCompile(`^[A-Za-z]{3}$`)

// Currency parses an ISO 4217 code (three letters), returned upper case.
func (d *Decoder) Currency(n *yaml.Node, path string) (string, bool) {
	s, ok := d.scalar(n, path, "a currency code like USD")
	if !ok {
		return "", false
	}
	if !currencyPattern.MatchString(s) {
		d.Errorf(n, path, "want a 3-letter ISO 4217 currency code like USD or EUR, got %q", s)
		return "", false
	}
	return strings.ToUpper(s), true
}

var orgSection = Section{
	Key: "org",
	Decode: func(d *Decoder, n *yaml.Node, path string, f *File) {
		m := d.Mapping(n, path, "timezone", "currency")
		f.Org = DefaultOrg
		if tz, ok := d.Location(m.Get("timezone")); ok {
			f.Org.Timezone = tz
		}
		if c, ok := d.Currency(m.Get("currency")); ok {
			f.Org.Currency = c
		}
	},
	Apply: func(ctx context.Context, tx *Tx) error {
		return tx.PutSetting(ctx, "org", tx.File.Org)
	},
}

var teamsSection = Section{
	Key: "teams",
	Decode: func(d *Decoder, n *yaml.Node, path string, f *File) {
		names := map[string]int{}       // team name → line
		memberOf := map[string]string{} // member email → team
		for i, item := range d.Sequence(n, path) {
			ipath := Index(path, i)
			m := d.Mapping(item, ipath, "name", "manager_email", "members", "timezone", "business_days", "holidays", "slack_channel")
			t := Team{Timezone: f.Org.Timezone, BusinessDays: DefaultBusinessDays}
			t.Name = d.String(m.Required("name"))
			if line, dup := names[t.Name]; dup && t.Name != "" {
				d.Errorf(item, ipath, "duplicate team name %q (first at line %d)", t.Name, line)
			}
			names[t.Name] = item.Line
			if e, ok := d.Email(m.Get("manager_email")); ok {
				t.ManagerEmail = e
			}
			mn, mpath := m.Get("members")
			for j, member := range d.Sequence(mn, mpath) {
				e, ok := d.Email(member, Index(mpath, j))
				if !ok {
					continue
				}
				if other, dup := memberOf[e]; dup {
					d.Errorf(member, Index(mpath, j), "%s is already a member of team %q (a rep belongs to one team)", e, other)
					continue
				}
				memberOf[e] = t.Name
				t.Members = append(t.Members, e)
			}
			if tz, ok := d.Location(m.Get("timezone")); ok {
				t.Timezone = tz
			}
			if bn, bpath := m.Get("business_days"); bn != nil {
				t.BusinessDays = decodeWeekdays(d, bn, bpath)
			}
			hn, hpath := m.Get("holidays")
			for j, h := range d.Sequence(hn, hpath) {
				if day, ok := d.Date(h, Index(hpath, j)); ok {
					t.Holidays = append(t.Holidays, day.Format(time.DateOnly))
				}
			}
			if m.Has("slack_channel") {
				t.SlackChannel = d.String(m.Get("slack_channel"))
			}
			f.Teams = append(f.Teams, t)
		}
	},
	Apply: func(ctx context.Context, tx *Tx) error {
		teams := tx.File.Teams
		if teams == nil {
			teams = []Team{}
		}
		return tx.PutSetting(ctx, "teams", teams)
	},
}

func decodeWeekdays(d *Decoder, n *yaml.Node, path string) Weekdays {
	var days Weekdays
	items := d.Sequence(n, path)
	for j, item := range items {
		s, ok := d.scalar(item, Index(path, j), "a day like mon")
		if !ok {
			continue
		}
		i := slices.Index(weekdayNames, strings.ToLower(s))
		if i < 0 {
			d.Errorf(item, Index(path, j), "unknown day %q (want mon, tue, wed, thu, fri, sat or sun)", s)
			continue
		}
		if slices.Contains(days, time.Weekday(i)) {
			d.Errorf(item, Index(path, j), "%s is listed twice", s)
			continue
		}
		days = append(days, time.Weekday(i))
	}
	if len(items) == 0 {
		d.Errorf(n, path, "list at least one business day (or leave the key out for mon-fri)")
	}
	slices.SortFunc(days, func(a, b time.Weekday) int { return (int(a)+6)%7 - (int(b)+6)%7 }) // Monday first
	return days
}
