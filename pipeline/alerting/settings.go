package alerting

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pipewatch/pipewatch/internal/config"
)

// Settings are the configuration a run works with: the `rules`, `routing`, `teams` and
// `org` documents that `pipewatch apply` stored, or the defaults before the first apply.
type Settings struct {
	Rules   config.Rules
	Routing config.Routing
	Teams   []config.Team
	Org     config.Org
}

// DefaultSettings work out of the box: the recommended rules and routing, no teams, UTC.
func DefaultSettings() Settings {
	return Settings{Rules: config.DefaultRules(), Routing: config.DefaultRouting(), Org: config.DefaultOrg}
}

// LoadSettings reads the stored settings, with defaults for what was never applied.
func LoadSettings(ctx context.Context, db config.Querier) (Settings, error) {
	var s Settings
	var err error
	if s.Rules, err = config.LoadRules(ctx, db); err != nil {
		return Settings{}, err
	}
	if s.Routing, err = config.LoadRouting(ctx, db); err != nil {
		return Settings{}, err
	}
	if s.Teams, err = config.LoadTeams(ctx, db); err != nil {
		return Settings{}, err
	}
	if s.Org, err = config.LoadOrg(ctx, db); err != nil {
		return Settings{}, err
	}
	return s, nil
}

// calendars are the org calendar ("") and one per configured team, by team name.
type calendars map[string]*Calendar

func (s Settings) calendars() (calendars, error) {
	orgLoc, err := time.LoadLocation(s.Org.Timezone)
	if err != nil {
		return nil, fmt.Errorf("loading the org time zone: %w", err)
	}
	org, err := NewCalendar(orgLoc, nil, nil)
	if err != nil {
		return nil, err
	}
	cals := calendars{"": org}
	for _, t := range s.Teams {
		c, err := teamCalendar(t)
		if err != nil {
			return nil, err
		}
		cals[t.Name] = c
	}
	return cals, nil
}

// of returns the calendar of team (the org's when the team has none).
func (c calendars) of(team string) *Calendar {
	if cal, ok := c[team]; ok {
		return cal
	}
	return c[""]
}

// digestClock parses routing.digest_time ("08:30").
func digestClock(s string) (hour, minute int, err error) {
	h, m, ok := strings.Cut(s, ":")
	if ok {
		hour, err = strconv.Atoi(h)
		if err == nil {
			minute, err = strconv.Atoi(m)
		}
	}
	if !ok || err != nil || hour < 0 || hour > 23 || minute < 0 || minute > 59 {
		return 0, 0, fmt.Errorf("routing.digest_time %q is not a time of day like 08:30", s)
	}
	return hour, minute, nil
}
