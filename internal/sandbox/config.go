package sandbox

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Names of the environment variables the sandbox's config file reads its credentials
// from. LookupEnv serves them without touching the process environment.
const (
	HubSpotTokenEnv   = "PIPEWATCH_SANDBOX_HUBSPOT_TOKEN"
	PipedriveTokenEnv = "PIPEWATCH_SANDBOX_PIPEDRIVE_TOKEN"
)

// Lag is how far behind the vendors' clock the sandbox connections read: a change is
// synced by the first sync that starts at least Lag after it.
const Lag = 2 * time.Second

// Connection names of the sandbox's CRMs.
const (
	HubSpotConnection   = "sandbox-hubspot"
	PipedriveConnection = "sandbox-pipedrive"
)

// LookupEnv is os.LookupEnv with the sandbox's credentials added, for config.Parse.
func (s *Sandbox) LookupEnv(name string) (string, bool) {
	switch name {
	case HubSpotTokenEnv:
		return s.HubSpotToken, true
	case PipedriveTokenEnv:
		return s.PipedriveToken, true
	}
	return os.LookupEnv(name)
}

// ConfigYAML is the pipewatch config file of the sandbox company: its org and teams, a
// connection to each fake CRM (synced every minute) and this quarter's targets. Rules,
// routing and reminders keep their defaults, except that the teams work every day of
// the week — so the demo shows messages on any day; a real team keeps mon–fri — and
// revenue ops hear about coverage in #revenue-ops.
func (s *Sandbox) ConfigYAML() []byte {
	c := s.Company
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# pipewatch config of the sandbox company %s (seed %d), written by `pipewatch demo`.\n", c.Name, c.Seed)
	w("org:\n  timezone: %s\n  currency: %s\n\n", c.Timezone, c.Currency)
	w("teams:\n")
	for _, t := range c.Teams {
		w("  - name: %s\n    manager_email: %s\n    members:\n", t.Name, t.Manager.Email)
		for _, r := range t.Reps {
			w("      - %s\n", r.Email)
		}
		w("    timezone: %s\n", t.Timezone)
		w("    business_days: [mon, tue, wed, thu, fri, sat, sun]   # the sandbox works every day; real teams: mon..fri\n")
		w("    slack_channel: %q\n", s.channel(t.SlackChannel))
	}
	w("\nconnections:\n")
	w("  - name: %s\n    kind: hubspot\n    base_url: %s\n    auth:\n      token_env: %s\n", HubSpotConnection, s.HubSpot.URL, HubSpotTokenEnv)
	w("    schedule: 1m\n    freshness: 10m\n")
	w("    options:\n      portal_id: %q\n      lag: %s   # the sandbox indexes changes at once; real HubSpot search needs ~2m\n",
		strconv.FormatInt(s.HubSpot.PortalID, 10), Lag)
	w("  - name: %s\n    kind: pipedrive\n    base_url: %s\n    auth:\n      token_env: %s\n", PipedriveConnection, s.Pipedrive.URL(), PipedriveTokenEnv)
	w("    schedule: 1m\n    freshness: 10m\n")
	w("    options:\n      company_domain: northwind\n      lag: %s\n", Lag)
	w("    stage_map:\n")
	for _, st := range pipedriveStages {
		w("      %q: %s\n", st.name, st.canonical)
	}
	w("\ntargets:\n")
	for _, t := range c.Targets {
		if t.OwnerEmail != "" {
			w("  - owner_email: %s\n", t.OwnerEmail)
		} else {
			w("  - team: %s\n", t.Team)
		}
		w("    period: %s\n    amount: %s\n    currency: %s\n", t.Period, t.Amount.String(), t.Currency)
	}
	w("\nrouting:\n  channel: %q\n", s.channel("#revenue-ops"))
	return []byte(b.String())
}

// channel is the Slack channel the config names for name: SlackChannel when set.
func (s *Sandbox) channel(name string) string {
	if s.SlackChannel != "" {
		return s.SlackChannel
	}
	return name
}
