package web_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/dbtest"
	"github.com/pipewatch/pipewatch/internal/web"
	"github.com/pipewatch/pipewatch/pipeline/analytics"
)

func TestReportHandler(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

	// One subtest at a time: they share the test transaction.
	tx := dbtest.TestTx(ctx, t)
	_, err := tx.Exec(ctx, `
		WITH c AS (INSERT INTO connections (name, kind) VALUES ('hs', 'hubspot') RETURNING id),
		o AS (INSERT INTO owners (connection_id, external_id, email, team) SELECT id, 'o1', 'ana@example.com', 'east' FROM c RETURNING id, connection_id),
		s AS (INSERT INTO stages (connection_id, external_id, name, probability, canonical_stage)
		      SELECT id, 's1', 'Proposal', 0.6, 'proposal' FROM c RETURNING id, connection_id)
		INSERT INTO deals (connection_id, external_id, name, amount, currency, stage_id, owner_id, close_date, remote_created_at)
		SELECT s.connection_id, 'd' || n, 'Deal ' || n, 1000 * n, 'USD', s.id, o.id, DATE '2026-12-15', TIMESTAMPTZ '2026-10-01'
		FROM s, o, generate_series(1, 3) n`)
	require.NoError(t, err)
	server := httptest.NewServer(web.NewReportHandler(tx, slog.New(slog.NewTextHandler(io.Discard, nil)), func() time.Time { return now }))
	t.Cleanup(server.Close)

	get := func(t *testing.T, method, query string) (int, http.Header, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, server.URL+"/api/report"+query, nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, resp.Header, body
	}
	errorOf := func(t *testing.T, body []byte) string {
		t.Helper()
		var e struct{ Error string }
		require.NoError(t, json.Unmarshal(body, &e))
		return e.Error
	}

	t.Run("ServesTheReportDocument", func(t *testing.T) {
		status, header, body := get(t, http.MethodGet, "?period=2026-Q4&scope=team:east")
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, "application/json; charset=utf-8", header.Get("Content-Type"))
		period, err := analytics.ParsePeriod("2026-Q4")
		require.NoError(t, err)
		want, err := analytics.BuildReport(ctx, tx, analytics.Request{Period: period,
			Scope: analytics.Scope{Kind: analytics.ScopeTeam, Value: "east"}, Now: now})
		require.NoError(t, err)
		wantJSON, err := json.Marshal(want)
		require.NoError(t, err)
		require.JSONEq(t, string(wantJSON), string(body))
		require.Contains(t, string(body), `"6000"`, "the three open deals of the team are in it")
	})
	t.Run("DefaultsToCurrentQuarterAndWholeOrg", func(t *testing.T) {
		status, _, body := get(t, http.MethodGet, "")
		require.Equal(t, http.StatusOK, status)
		var doc map[string]any
		require.NoError(t, json.Unmarshal(body, &doc))
		require.Equal(t, map[string]any{"label": "2026-Q4", "start": "2026-10-01", "end": "2026-12-31"}, doc["period"])
		require.Equal(t, map[string]any{"kind": "all", "value": ""}, doc["scope"])
	})
	t.Run("BadPeriod", func(t *testing.T) {
		status, _, body := get(t, http.MethodGet, "?period=2026-Q7")
		require.Equal(t, http.StatusBadRequest, status)
		require.Contains(t, errorOf(t, body), `period "2026-Q7"`)
	})
	t.Run("BadScope", func(t *testing.T) {
		status, _, body := get(t, http.MethodGet, "?scope=region:emea")
		require.Equal(t, http.StatusBadRequest, status)
		require.Contains(t, errorOf(t, body), `unknown kind "region"`)
	})
	t.Run("UnknownTeam", func(t *testing.T) {
		status, _, body := get(t, http.MethodGet, "?scope=team:north")
		require.Equal(t, http.StatusNotFound, status)
		require.Equal(t, "scope team:north: no such team, owner, pipeline or connection", errorOf(t, body))
	})
	t.Run("OnlyGet", func(t *testing.T) {
		status, header, _ := get(t, http.MethodPost, "")
		require.Equal(t, http.StatusMethodNotAllowed, status)
		require.Equal(t, "GET, HEAD", header.Get("Allow"))
	})
}
