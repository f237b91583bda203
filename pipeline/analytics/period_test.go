package analytics_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/pipeline/analytics"
)

func day(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestParsePeriod(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, label, start, end string
	}{
		{"2026-11", "2026-11", "2026-11-01", "2026-11-30"},
		{"2024-02", "2024-02", "2024-02-01", "2024-02-29"},
		{"2026-Q4", "2026-Q4", "2026-10-01", "2026-12-31"},
		{"2026-q1", "2026-Q1", "2026-01-01", "2026-03-31"},
		{"2026", "2026", "2026-01-01", "2026-12-31"},
		{"2026-10-01..2026-12-15", "2026-10-01..2026-12-15", "2026-10-01", "2026-12-15"},
		{" 2026-10-05 .. 2026-10-05 ", "2026-10-05..2026-10-05", "2026-10-05", "2026-10-05"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			p, err := analytics.ParsePeriod(tt.in)
			require.NoError(t, err)
			require.Equal(t, tt.label, p.Label)
			require.Equal(t, day(tt.start), p.Start)
			require.Equal(t, day(tt.end), p.End)
			require.True(t, p.Contains(day(tt.end).Add(23*time.Hour+59*time.Minute)))
			require.False(t, p.Contains(day(tt.end).AddDate(0, 0, 1)))
			require.False(t, p.Contains(day(tt.start).Add(-time.Second)))
		})
	}

	errs := map[string]string{
		"2026-13":                "month must be 01 to 12",
		"2026-Q5":                "want a month (2026-11), a quarter (2026-Q4)",
		"Q4":                     "want a month",
		"2026-12-01..2026-11-01": "ends before it starts",
		"2026-10-01..soon":       "end must be a date",
		"yesterday..2026-11-01":  "start must be a date",
	}
	for in, want := range errs {
		t.Run("Error"+in, func(t *testing.T) {
			t.Parallel()
			_, err := analytics.ParsePeriod(in)
			require.ErrorContains(t, err, want)
		})
	}
}

func TestQuarterOf(t *testing.T) {
	t.Parallel()
	require.Equal(t, "2026-Q4", analytics.QuarterOf(time.Date(2026, 11, 18, 23, 0, 0, 0, time.UTC)).Label)
	// Quarters are UTC: 1 January 00:30 in Berlin is still Q4 of the year before.
	berlin := time.FixedZone("CET", 3600)
	require.Equal(t, "2025-Q4", analytics.QuarterOf(time.Date(2026, 1, 1, 0, 30, 0, 0, berlin)).Label)
}

func TestParseScope(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want analytics.Scope
	}{
		{"", analytics.Scope{Kind: analytics.ScopeAll}},
		{"all", analytics.Scope{Kind: analytics.ScopeAll}},
		{"team:east", analytics.Scope{Kind: analytics.ScopeTeam, Value: "east"}},
		{"owner:Ana@Example.com", analytics.Scope{Kind: analytics.ScopeOwner, Value: "ana@example.com"}},
		{"pipeline:12", analytics.Scope{Kind: analytics.ScopePipeline, Value: "12"}},
		{"connection:hubspot-main", analytics.Scope{Kind: analytics.ScopeConnection, Value: "hubspot-main"}},
	}
	for _, tt := range tests {
		got, err := analytics.ParseScope(tt.in)
		require.NoError(t, err, tt.in)
		require.Equal(t, tt.want, got)
	}
	errs := map[string]string{
		"team":          "want all, team:NAME, owner:EMAIL, pipeline:ID or connection:NAME",
		"team:":         "want all, team:NAME",
		"pipeline:main": "a pipeline is named by its numeric id",
		"region:emea":   `unknown kind "region"`,
	}
	for in, want := range errs {
		_, err := analytics.ParseScope(in)
		require.ErrorContains(t, err, want, in)
	}
}
