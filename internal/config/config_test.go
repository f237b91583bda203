package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/config"
	"github.com/pipewatch/pipewatch/pipeline"
)

// env is a fake environment for Parse.
type env map[string]string

func (e env) lookup(name string) (string, bool) {
	v, ok := e[name]
	return v, ok
}

var testEnv = env{
	"TEST_HUBSPOT_TOKEN":    "pat-na1-hubspot-secret",
	"TEST_SF_CLIENT_ID":     "sf-client-id",
	"TEST_SF_CLIENT_SECRET": "sf-client-secret",
	"TEST_SF_REFRESH_TOKEN": "sf-refresh-1",
}

func date(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestParse(t *testing.T) {
	t.Parallel()

	t.Run("ValidFile", func(t *testing.T) {
		t.Parallel()
		f, err := config.Load("testdata/valid.yaml", testEnv.lookup)
		require.NoError(t, err)

		require.Equal(t, config.Org{Timezone: "America/New_York", Currency: "USD"}, f.Org)

		require.Len(t, f.Teams, 2)
		require.Equal(t, config.Team{
			Name: "east", ManagerEmail: "maria@example.com", Members: []string{"ana@example.com", "bob@example.com"},
			Timezone: "America/New_York", BusinessDays: config.DefaultBusinessDays, Holidays: []string{"2026-12-25"},
			SlackChannel: "#sales-east",
		}, f.Teams[0])
		require.Equal(t, config.Weekdays{time.Monday, time.Tuesday, time.Wednesday, time.Thursday}, f.Teams[1].BusinessDays)
		require.Equal(t, "Europe/Berlin", f.Teams[1].Timezone)

		require.Len(t, f.Connections, 2)
		hs := f.Connections[0]
		require.Equal(t, "hubspot-main", hs.Name)
		require.Equal(t, "hubspot", hs.Kind)
		require.Equal(t, config.ConnectionConfig{
			BaseURL:   "https://api.hubapi.com",
			Schedule:  config.Duration(10 * time.Minute),
			Freshness: config.Duration(30 * time.Minute),
			Options:   map[string]string{"portal_id": "12345"},
			StageMap:  pipeline.StageMap{"appointmentscheduled": pipeline.StageQualification, "Contract sent": pipeline.StageClosing},
			Auth:      config.Auth{TokenEnv: "TEST_HUBSPOT_TOKEN"},
		}, hs.Config)
		require.Equal(t, "pat-na1-hubspot-secret", hs.Credentials.Token)

		sf := f.Connections[1]
		require.Equal(t, config.Duration(config.DefaultSchedule), sf.Config.Schedule)
		require.Equal(t, config.Duration(2*time.Hour), sf.Config.Freshness)
		require.Equal(t, &config.OAuthAuth{
			ClientIDEnv: "TEST_SF_CLIENT_ID", ClientSecretEnv: "TEST_SF_CLIENT_SECRET", RefreshTokenEnv: "TEST_SF_REFRESH_TOKEN",
			TokenURL: "https://login.salesforce.com/services/oauth2/token",
		}, sf.Config.Auth.OAuth)
		require.Equal(t, "sf-refresh-1", sf.Credentials.OAuth.RefreshToken)
		require.Equal(t, "sf-client-secret", sf.Credentials.OAuth.ClientSecret)

		require.Len(t, f.Targets, 3)
		require.Equal(t, "ana@example.com", f.Targets[0].OwnerEmail)
		require.Equal(t, date("2026-10-01"), f.Targets[0].PeriodStart)
		require.Equal(t, date("2026-12-31"), f.Targets[0].PeriodEnd)
		require.Equal(t, "east", f.Targets[1].Team)
		require.Equal(t, date("2026-11-01"), f.Targets[1].PeriodStart)
		require.Equal(t, date("2026-11-30"), f.Targets[1].PeriodEnd)
		require.True(t, decimal.RequireFromString("1000000.50").Equal(f.Targets[1].Amount))
		require.Equal(t, "USD", f.Targets[1].Currency, "currency defaults to the org's")
		require.Empty(t, f.Targets[2].OwnerEmail+f.Targets[2].Team, "neither owner nor team = the whole org")
		require.Equal(t, "EUR", f.Targets[2].Currency)
		require.Equal(t, "2026-Q4", f.Targets[2].Period)
	})

	t.Run("EveryProblemWithItsLine", func(t *testing.T) {
		t.Parallel()
		_, err := config.Load("testdata/broken.yaml", testEnv.lookup)
		var problems config.Problems
		require.ErrorAs(t, err, &problems)

		got := make([]string, len(problems))
		for i, p := range problems {
			got[i] = p.String()
		}
		require.Equal(t, []string{
			`testdata/broken.yaml:2:13: org.timezone: unknown time zone "Mars/Olympus" (want an IANA name like Europe/Berlin or America/New_York)`,
			`testdata/broken.yaml:5:11: connections[0].kind: unknown kind "hubspott" (want hubspot, salesforce, pipedrive or mailchimp)`,
			`testdata/broken.yaml:7:18: connections[0].auth.token_env: environment variable TEST_MISSING_TOKEN is not set (export it before running ` + "`pipewatch apply`)",
			`testdata/broken.yaml:8:15: connections[0].schedule: 30s is too short (minimum 1m)`,
			`testdata/broken.yaml:9:5: connections[0].shedule: unknown key (want one of name, kind, base_url, auth, schedule, options, stage_map, freshness)`,
			`testdata/broken.yaml:10:5: connections[1]: duplicate connection name "hubspot-main" (first at line 4)`,
			`testdata/broken.yaml:13:18: connections[1].auth.token_env: must name an environment variable (like HUBSPOT_TOKEN) that holds the secret; secrets never go in the file`,
			`testdata/broken.yaml:15:12: connections[1].stage_map.won: unknown canonical stage "closed_wonn" (want one of lead_generation, qualification, needs_assessment, proposal, negotiation, closing, closed_won, closed_lost)`,
			`testdata/broken.yaml:18:13: targets[0].period: want a quarter like 2026-Q4 or a month like 2026-11, got "2026-Q5"`,
			`testdata/broken.yaml:19:13: targets[0].amount: must not be negative, got -10`,
			`testdata/broken.yaml:20:15: targets[0].currency: want a 3-letter ISO 4217 currency code like USD or EUR, got "US"`,
		}, got)
		require.NotContains(t, err.Error(), "pat-na1-0123-secret-value", "a secret pasted into the file is never echoed")
		require.True(t, strings.HasPrefix(err.Error(), "11 problems in the config file:\n  testdata/broken.yaml:2:13: "), err.Error())
	})

	t.Run("InvalidYAML", func(t *testing.T) {
		t.Parallel()
		_, err := config.Parse("bad.yaml", []byte("org: {}\n\tteams: []\n"), testEnv.lookup)
		var problems config.Problems
		require.ErrorAs(t, err, &problems)
		require.Len(t, problems, 1)
		require.Equal(t, 2, problems[0].Line)
		require.Equal(t, "bad.yaml:2: invalid YAML: found character that cannot start any token", problems[0].String())
	})

	t.Run("ShapeAndReferenceProblems", func(t *testing.T) {
		t.Parallel()
		doc := `
connections: {name: x}
teams:
  - name: east
    members: [ana@example.com, not-an-email]
    business_days: [mon, funday, mon]
    holidays: [2026-13-01]
  - name: west
    members: [ANA@example.com]
  - name: east
targets:
  - team: north
    owner_email: bob@example.com
    period: 2026-Q1
    amount: lots
  - team: east
    period: 2026-Q1
    amount: 1
  - team: east
    period: 2026-q1
    amount: 2
unknown_section: 1
`
		_, err := config.Parse("f.yaml", []byte(doc), testEnv.lookup)
		var problems config.Problems
		require.ErrorAs(t, err, &problems)
		got := make([]string, len(problems))
		for i, p := range problems {
			got[i] = p.String()
		}
		require.Equal(t, []string{
			`f.yaml:2:14: connections: want a list, got a mapping`,
			`f.yaml:5:32: teams[0].members[1]: want an email address, got "not-an-email"`,
			`f.yaml:6:26: teams[0].business_days[1]: unknown day "funday" (want mon, tue, wed, thu, fri, sat or sun)`,
			`f.yaml:6:34: teams[0].business_days[2]: mon is listed twice`,
			`f.yaml:7:16: teams[0].holidays[0]: want a date like 2026-12-25, got "2026-13-01"`,
			`f.yaml:9:15: teams[1].members[0]: ana@example.com is already a member of team "east" (a rep belongs to one team)`,
			`f.yaml:10:5: teams[2]: duplicate team name "east" (first at line 4)`,
			`f.yaml:12:5: targets[0]: set owner_email or team (or neither, for the whole org), not both`,
			`f.yaml:12:11: targets[0].team: unknown team "north" (the teams section defines east or west)`,
			`f.yaml:15:13: targets[0].amount: want a number like 250000 or 1250.50, got "lots"`,
			`f.yaml:19:5: targets[2]: duplicate target for team east, 2026-Q1, USD (first at line 16)`,
		}, got[:len(got)-1])
		require.True(t, strings.HasPrefix(got[len(got)-1], "f.yaml:22:1: unknown_section: unknown key (want one of org, teams, connections, targets"), got[len(got)-1])
	})

	t.Run("MissingRequiredKeys", func(t *testing.T) {
		t.Parallel()
		_, err := config.Parse("f.yaml", []byte("connections:\n  - schedule: 5m\n    auth: {}\n"), testEnv.lookup)
		require.EqualError(t, err, `3 problems in the config file:
  f.yaml:2:5: connections[0]: missing name
  f.yaml:2:5: connections[0]: missing kind
  f.yaml:3:11: connections[0].auth: set token_env (a private-app token or API key) or oauth {client_id_env, client_secret_env, refresh_token_env}`)
	})

	t.Run("EmptyFileIsDefaults", func(t *testing.T) {
		t.Parallel()
		f, err := config.Parse("empty.yaml", nil, testEnv.lookup)
		require.NoError(t, err)
		require.Equal(t, config.DefaultOrg, f.Org)
		require.Empty(t, f.Connections)
	})

}

// TestLoadReadsTheEnvironment is not parallel: it sets an environment variable.
func TestLoadReadsTheEnvironment(t *testing.T) {
	t.Setenv("PIPEWATCH_TEST_TOKEN_ENV", "from-env")
	path := filepath.Join(t.TempDir(), "p.yaml")
	require.NoError(t, os.WriteFile(path, []byte("connections:\n  - {name: a, kind: pipedrive, auth: {token_env: PIPEWATCH_TEST_TOKEN_ENV}}\n"), 0o600))
	f, err := config.Load(path, nil)
	require.NoError(t, err)
	require.Equal(t, "from-env", f.Connections[0].Credentials.Token)
}

func TestParsePeriod(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in         string
		start, end string
	}{
		{"2026-Q1", "2026-01-01", "2026-03-31"},
		{"2026-Q4", "2026-10-01", "2026-12-31"},
		{"2028-02", "2028-02-01", "2028-02-29"},
		{"2026-12", "2026-12-01", "2026-12-31"},
	} {
		start, end, err := config.ParsePeriod(tt.in)
		require.NoError(t, err, tt.in)
		require.Equal(t, date(tt.start), start, tt.in)
		require.Equal(t, date(tt.end), end, tt.in)
	}
	for _, bad := range []string{"2026", "2026-Q0", "2026-13", "26-Q1", "2026-1", "Q4-2026"} {
		_, _, err := config.ParsePeriod(bad)
		require.Error(t, err, bad)
	}
}
