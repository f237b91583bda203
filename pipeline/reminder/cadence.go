// Package reminder schedules the follow-up reminders reps get after a deal enters a stage
// (by default: five reminders 2, 5, 9, 14 and 21 business days after the proposal, at
// 09:00 in the rep's time zone), skips them when the deal was touched, and ends them when
// the deal stops qualifying.
//
// A cadence is one deal's reminders for one entry into the trigger stage (an episode),
// kept in reminder_cadences; each step is a row of reminders with the scheduled River job
// that fires it. Cadences are planned by Plan (after each sync and periodically), fired
// by Fire when a step falls due, and changed by the rep's buttons (HandleAction). The job
// queue is reached through Queue, so this package knows no River.
//
// Business days are counted on the rep's calendar (notify.Calendar: time zone, business
// days and holidays of the rep's team), so a weekend or holiday never gets a reminder and
// every later step shifts with it. The schedule counts from an anchor: entering the
// stage, or the latest touch, Done or Snooze, which re-anchor the steps after them.
package reminder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pipewatch/pipewatch/internal/config"
	"github.com/pipewatch/pipewatch/internal/notify"
)

// Cadence is the configured cadence on one rep's calendar.
type Cadence struct {
	// Offsets are the steps as business days after entering the trigger stage, increasing.
	Offsets []int
	// SendAt is the local time of day (since midnight) reminders are due at.
	SendAt time.Duration
	// Calendar is the rep's: time zone, business days and holidays.
	Calendar notify.Calendar
}

// Steps is the number of follow-ups.
func (c Cadence) Steps() int { return len(c.Offsets) }

// offset is the business days of step after the trigger (step 0 is the trigger).
func (c Cadence) offset(step int) int {
	if step <= 0 {
		return 0
	}
	return c.Offsets[min(step, len(c.Offsets))-1]
}

// Gap is the number of business days from step from to step to.
func (c Cadence) Gap(from, to int) int { return c.offset(to) - c.offset(from) }

// Due returns when step is due if the schedule counts from anchor, which stands for step
// anchorStep (0 = entering the trigger stage): SendAt on the business day that lies
// Gap(anchorStep, step) business days after anchor's local date. An anchor on a weekend
// or holiday counts from the next business day, so a step never lands on a day off and
// the later steps shift with it.
func (c Cadence) Due(anchor time.Time, anchorStep, step int) time.Time {
	return c.Calendar.At(c.Calendar.AddBusinessDays(anchor, c.Gap(anchorStep, step)), c.SendAt)
}

// Snoozed returns SendAt on the business day after t's local date.
func (c Cadence) Snoozed(t time.Time) time.Time {
	return c.Calendar.At(c.Calendar.AddBusinessDays(t, 1), c.SendAt)
}

// Local formats t in the rep's time zone for messages and listings: "Tue 10 Mar 09:00 JST".
func (c Cadence) Local(t time.Time) string { return localTime(t, c.Calendar.Location) }

func localTime(t time.Time, loc *time.Location) string {
	if loc == nil {
		loc = time.UTC
	}
	return t.In(loc).Format("Mon 2 Jan 15:04 MST")
}

// ZoneSource says where a rep's time zone came from.
type ZoneSource string

// Zone sources, in the order they are tried.
const (
	ZoneCRM     ZoneSource = "crm"     // owners.timezone, from the vendor
	ZoneSlack   ZoneSource = "slack"   // the Slack profile's tz, as delivery cached it
	ZoneTeam    ZoneSource = "team"    // the rep's team in the config
	ZoneOrg     ZoneSource = "org"     // org.timezone in the config
	ZoneDefault ZoneSource = "default" // UTC
)

// Rep is the owner a cadence reminds, as the CRM and Slack know them.
type Rep struct {
	OwnerID int64 // 0 = the deal has no (resolved) owner
	Email   string
	Name    string
	Active  bool
	// CRMZone is owners.timezone; SlackZone the Slack profile's tz cached by delivery.
	CRMZone, SlackZone string
	// Team is owners.team (the config's team membership wins over it).
	Team string
}

// Label names the rep for people.
func (r Rep) Label() string {
	switch {
	case r.Email != "":
		return r.Email
	case r.Name != "":
		return r.Name
	}
	return "(no owner)"
}

// Settings are what reminders are planned with: the cadence, the teams and the org
// defaults that `pipewatch apply` stored.
type Settings struct {
	Reminders config.Reminders
	Teams     []config.Team
	Org       config.Org
	sendAt    time.Duration
}

// LoadSettings reads the stored settings, with the defaults for what was never applied.
func LoadSettings(ctx context.Context, db config.Querier) (Settings, error) {
	var s Settings
	var err error
	if s.Reminders, err = config.LoadReminders(ctx, db); err != nil {
		return Settings{}, err
	}
	if s.Teams, err = config.LoadTeams(ctx, db); err != nil {
		return Settings{}, err
	}
	if s.Org, err = config.LoadOrg(ctx, db); err != nil {
		return Settings{}, err
	}
	return s.withClock()
}

// NewSettings checks r and returns the settings of a cadence (for tests and tools that
// do not read the database).
func NewSettings(r config.Reminders, teams []config.Team, org config.Org) (Settings, error) {
	if err := r.Validate(); err != nil {
		return Settings{}, err
	}
	return Settings{Reminders: r, Teams: teams, Org: org}.withClock()
}

func (s Settings) withClock() (Settings, error) {
	var err error
	s.sendAt, err = s.Reminders.SendClock()
	return s, err
}

// team returns the rep's team: the one listing their email, else the CRM's team name,
// else the one they manage (nil = none).
func (s Settings) team(rep Rep) *config.Team {
	email := strings.ToLower(rep.Email)
	for _, match := range []func(config.Team) bool{
		func(t config.Team) bool { return email != "" && slices.Contains(t.Members, email) },
		func(t config.Team) bool { return rep.Team != "" && t.Name == rep.Team },
		func(t config.Team) bool { return email != "" && strings.EqualFold(t.ManagerEmail, email) },
	} {
		for i := range s.Teams {
			if match(s.Teams[i]) {
				return &s.Teams[i]
			}
		}
	}
	return nil
}

// Zone is a rep's resolved time zone.
type Zone struct {
	Location *time.Location
	Source   ZoneSource
}

// Name is the IANA name.
func (z Zone) Name() string { return z.Location.String() }

// CadenceFor returns the rep's cadence and time zone: the CRM's zone, else the Slack
// profile's, else the team's, else the org's, else UTC (unknown zone names are passed
// over); the business days and holidays of the rep's team (Monday to Friday without
// holidays when they have none).
func (s Settings) CadenceFor(rep Rep) (Cadence, Zone) {
	type candidate struct {
		name   string
		source ZoneSource
	}
	candidates := []candidate{{rep.CRMZone, ZoneCRM}, {rep.SlackZone, ZoneSlack}}
	cal := notify.Calendar{}
	if team := s.team(rep); team != nil {
		cal.BusinessDays, cal.Holidays = team.BusinessDays, team.Holidays
		candidates = append(candidates, candidate{team.Timezone, ZoneTeam})
	}
	candidates = append(candidates, candidate{s.Org.Timezone, ZoneOrg})
	zone := Zone{Location: time.UTC, Source: ZoneDefault}
	for _, c := range candidates {
		if c.name == "" {
			continue
		}
		if loc, err := time.LoadLocation(c.name); err == nil {
			zone = Zone{Location: loc, Source: c.source}
			break
		}
	}
	cal.Location = zone.Location
	return Cadence{Offsets: s.Reminders.Steps, SendAt: s.sendAt, Calendar: cal}, zone
}

// planKey fingerprints what a cadence's schedule is computed from, so a change of the
// settings, the rep's calendar or the owner reschedules it.
func planKey(s Settings, c Cadence, ownerID int64) string {
	doc, _ := json.Marshal(struct {
		Trigger  string
		Offsets  []int
		SendAt   time.Duration
		Zone     string
		Days     []time.Weekday
		Holidays []string
		Owner    int64
	}{string(s.Reminders.Trigger), c.Offsets, c.SendAt, c.Calendar.Location.String(), c.Calendar.BusinessDays,
		c.Calendar.Holidays, ownerID})
	sum := sha256.Sum256(doc)
	return hex.EncodeToString(sum[:12])
}

// businessDays is "1 business day" or "n business days".
func businessDays(n int) string {
	if n == 1 {
		return "1 business day"
	}
	return fmt.Sprintf("%d business days", n)
}
