package analytics_test

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
	"github.com/pipewatch/pipewatch/pipeline/analytics"
)

func TestHandler(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	type testBundle struct {
		ds     *dataSet
		server *httptest.Server
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		tx := dbtest.TestTx(ctx, t)
		ds := generate(7)
		ds.insert(ctx, t, tx)
		h := analytics.NewHandler(tx, slog.New(slog.NewTextHandler(io.Discard, nil)), func() time.Time { return testNow })
		server := httptest.NewServer(h)
		t.Cleanup(server.Close)
		return &testBundle{ds: ds, server: server}
	}
	get := func(t *testing.T, b *testBundle, method, query string) (int, http.Header, map[string]any) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, b.server.URL+"/api/report"+query, nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var body map[string]any
		if method != http.MethodHead {
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		}
		return resp.StatusCode, resp.Header, body
	}

	// One subtest at a time: they share the test transaction of the bundle.
	b := setup(t)

	t.Run("ServesTheReport", func(t *testing.T) {
		status, header, body := get(t, b, http.MethodGet, "?period=2026-10&scope=team:east")
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, "application/json; charset=utf-8", header.Get("Content-Type"))
		want := (&expecter{ds: b.ds, period: mustPeriod(t, "2026-10"), scope: analytics.Scope{Kind: analytics.ScopeTeam, Value: "east"},
			today: utcDay(testNow)}).report()
		wantJSON, err := json.Marshal(want)
		require.NoError(t, err)
		gotJSON, err := json.Marshal(body)
		require.NoError(t, err)
		require.JSONEq(t, string(wantJSON), string(gotJSON))
	})
	t.Run("DefaultsToCurrentQuarterAndWholeOrg", func(t *testing.T) {
		status, _, body := get(t, b, http.MethodGet, "")
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, map[string]any{"label": "2026-Q4", "start": "2026-10-01", "end": "2026-12-31"}, body["period"])
		require.Equal(t, map[string]any{"kind": "all", "value": ""}, body["scope"])
	})
	t.Run("BadPeriod", func(t *testing.T) {
		status, _, body := get(t, b, http.MethodGet, "?period=2026-Q7")
		require.Equal(t, http.StatusBadRequest, status)
		require.Contains(t, body["error"], `period "2026-Q7": want a month (2026-11), a quarter (2026-Q4)`)
	})
	t.Run("BadScope", func(t *testing.T) {
		status, _, body := get(t, b, http.MethodGet, "?scope=region:emea")
		require.Equal(t, http.StatusBadRequest, status)
		require.Contains(t, body["error"], `unknown kind "region"`)
	})
	t.Run("UnknownTeam", func(t *testing.T) {
		status, _, body := get(t, b, http.MethodGet, "?scope=team:north")
		require.Equal(t, http.StatusNotFound, status)
		require.Equal(t, "scope team:north: no such team, owner, pipeline or connection", body["error"])
	})
	t.Run("UnknownConnection", func(t *testing.T) {
		status, _, _ := get(t, b, http.MethodGet, "?scope=connection:salesforce-x")
		require.Equal(t, http.StatusNotFound, status)
	})
	t.Run("OnlyGet", func(t *testing.T) {
		status, header, body := get(t, b, http.MethodPost, "")
		require.Equal(t, http.StatusMethodNotAllowed, status)
		require.Equal(t, "GET, HEAD", header.Get("Allow"))
		require.Equal(t, "method not allowed: use GET", body["error"])
	})
}
