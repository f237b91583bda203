package connectors_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/connectors"
)

// oneBudget limits every request to b.
func oneBudget(b connectors.Budget) connectors.RateLimits {
	return connectors.RateLimits{Budgets: map[string]connectors.Budget{"general": b}, HeaderBudget: "general"}
}

// maxInWindow is the largest number of times within any window of length d.
func maxInWindow(times []time.Time, d time.Duration) int {
	best := 0
	for i := range times {
		n := 0
		for j := i; j < len(times) && times[j].Sub(times[i]) < d; j++ {
			n++
		}
		best = max(best, n)
	}
	return best
}

func TestRateLimiter(t *testing.T) {
	t.Parallel()

	t.Run("PacesRequestsWithinTheBudget", func(t *testing.T) {
		t.Parallel()
		srv := newScripted(t, ok)
		cfg := fastConfig()
		cfg.RateLimits = oneBudget(connectors.Budget{Limit: 4, Interval: time.Second})
		hc := connectors.NewHTTPClient(cfg)
		began := time.Now()
		for range 9 {
			_, err := get(t, hc, t.Context(), srv.srv.URL)
			require.NoError(t, err)
		}
		require.LessOrEqual(t, maxInWindow(srv.times, time.Second), 4)
		require.GreaterOrEqual(t, time.Since(began), 2*time.Second, "9 requests at 4/s take over 2 s")
	})

	t.Run("SearchesDrawOnTheirOwnBudgetToo", func(t *testing.T) {
		t.Parallel()
		srv := newScripted(t, ok)
		cfg := fastConfig()
		cfg.RateLimits = connectors.RateLimits{
			Budgets: map[string]connectors.Budget{
				"general": {Limit: 1000, Interval: time.Second},
				"search":  {Limit: 2, Interval: time.Second},
			},
			BudgetsFor: func(r *http.Request) []string {
				if strings.HasSuffix(r.URL.Path, "/search") {
					return []string{"search", "general"}
				}
				return []string{"general"}
			},
		}
		hc := connectors.NewHTTPClient(cfg)
		began := time.Now()
		for range 20 {
			_, err := get(t, hc, t.Context(), srv.srv.URL+"/list")
			require.NoError(t, err)
		}
		require.Less(t, time.Since(began), time.Second, "list calls are not held by the search budget")
		var searches []time.Time
		for range 5 {
			_, err := get(t, hc, t.Context(), srv.srv.URL+"/objects/search")
			require.NoError(t, err)
			searches = append(searches, time.Now())
		}
		require.LessOrEqual(t, maxInWindow(searches, time.Second), 2)
	})

	t.Run("AWaitBeyondTheCapIsARateLimitErrorWithoutSending", func(t *testing.T) {
		t.Parallel()
		srv := newScripted(t, ok)
		cfg := fastConfig()
		cfg.RateLimits = oneBudget(connectors.Budget{Limit: 1, Interval: time.Minute})
		cfg.MaxRetryAfter = 100 * time.Millisecond
		hc := connectors.NewHTTPClient(cfg)
		_, err := get(t, hc, t.Context(), srv.srv.URL)
		require.NoError(t, err)
		_, err = get(t, hc, t.Context(), srv.srv.URL)
		var rl *connectors.RateLimitError
		require.ErrorAs(t, err, &rl)
		require.Greater(t, rl.RetryAfter, 50*time.Second)
		require.Equal(t, 1, srv.requests())
	})

	t.Run("CancellationStopsTheWait", func(t *testing.T) {
		t.Parallel()
		srv := newScripted(t, ok)
		cfg := fastConfig()
		cfg.RateLimits = oneBudget(connectors.Budget{Limit: 1, Interval: 10 * time.Second})
		hc := connectors.NewHTTPClient(cfg)
		_, err := get(t, hc, t.Context(), srv.srv.URL)
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		_, err = get(t, hc, ctx, srv.srv.URL)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Equal(t, 1, srv.requests())
	})

	t.Run("ConnectionsShareBudgetsThroughTheRegistry", func(t *testing.T) {
		t.Parallel()
		srv := newScripted(t, ok)
		limiters := connectors.NewLimiters()
		client := func(connection string) *http.Client {
			cfg := fastConfig()
			cfg.RateLimits = oneBudget(connectors.Budget{Limit: 1, Interval: time.Minute})
			cfg.MaxRetryAfter = 100 * time.Millisecond
			cfg.Limiters, cfg.Connection = limiters, connection
			return connectors.NewHTTPClient(cfg)
		}
		_, err := get(t, client("hubspot/1"), t.Context(), srv.srv.URL)
		require.NoError(t, err)
		_, err = get(t, client("hubspot/1"), t.Context(), srv.srv.URL)
		var rl *connectors.RateLimitError
		require.ErrorAs(t, err, &rl, "a second run of the same connection draws on the same budget")
		_, err = get(t, client("hubspot/2"), t.Context(), srv.srv.URL)
		require.NoError(t, err, "another connection has its own budget")
	})

	t.Run("HeadersReportingNoneLeftPauseTheBudget", func(t *testing.T) {
		t.Parallel()
		srv := newScripted(t,
			status(200, "X-HubSpot-RateLimit-Max", "100", "X-HubSpot-RateLimit-Remaining", "0", "X-HubSpot-RateLimit-Interval-Milliseconds", "3000"),
			ok)
		cfg := fastConfig()
		cfg.RateLimits = oneBudget(connectors.Budget{Limit: 100, Interval: 10 * time.Second})
		cfg.RateLimits.ParseHeaders = connectors.HubSpotRateLimitHeaders
		hc := connectors.NewHTTPClient(cfg)
		_, err := get(t, hc, t.Context(), srv.srv.URL)
		require.NoError(t, err)
		began := time.Now()
		_, err = get(t, hc, t.Context(), srv.srv.URL)
		require.NoError(t, err)
		require.GreaterOrEqual(t, time.Since(began), 250*time.Millisecond, "paused for a tenth of the 3 s window")
	})

	t.Run("AReportedLimitReplacesTheDocumentedOne", func(t *testing.T) {
		t.Parallel()
		srv := newScripted(t, status(200, "X-Ratelimit-Limit", "2", "X-Ratelimit-Remaining", "2", "X-Ratelimit-Reset", "1"))
		cfg := fastConfig()
		cfg.RateLimits = oneBudget(connectors.Budget{Limit: 1000, Interval: time.Second})
		cfg.RateLimits.ParseHeaders = connectors.PipedriveRateLimitHeaders
		hc := connectors.NewHTTPClient(cfg)
		for range 6 {
			_, err := get(t, hc, t.Context(), srv.srv.URL)
			require.NoError(t, err)
		}
		require.LessOrEqual(t, maxInWindow(srv.times[1:], time.Second), 2)
	})

	t.Run("ASpentDailyBudgetFailsFastUntilTheReset", func(t *testing.T) {
		t.Parallel()
		srv := newScripted(t, status(200, "X-HubSpot-RateLimit-Daily", "250000", "X-HubSpot-RateLimit-Daily-Remaining", "0"))
		now := time.Date(2026, 11, 25, 22, 0, 0, 0, time.UTC)
		cfg := fastConfig()
		cfg.NowFunc = func() time.Time { return now }
		cfg.RateLimits = oneBudget(connectors.Budget{Limit: 100, Interval: 10 * time.Second})
		cfg.RateLimits.ParseHeaders = connectors.HubSpotRateLimitHeaders
		hc := connectors.NewHTTPClient(cfg)
		_, err := get(t, hc, t.Context(), srv.srv.URL)
		require.NoError(t, err)
		_, err = get(t, hc, t.Context(), srv.srv.URL)
		var rl *connectors.RateLimitError
		require.ErrorAs(t, err, &rl)
		require.True(t, rl.Daily)
		require.Equal(t, 2*time.Hour, rl.RetryAfter, "until midnight UTC")
		require.Equal(t, 1, srv.requests())
	})

	t.Run("ADaily429IsNotRetried", func(t *testing.T) {
		t.Parallel()
		srv := newScripted(t, func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(429)
			_, _ = w.Write([]byte(`{"status":"error","message":"You have reached your daily limit.","errorType":"RATE_LIMIT","policyName":"DAILY"}`))
		})
		cfg := fastConfig()
		cfg.RateLimits = oneBudget(connectors.Budget{Limit: 100, Interval: 10 * time.Second})
		cfg.RateLimits.ParseRateLimited = func(body []byte) (bool, string) {
			return strings.Contains(string(body), `"DAILY"`), "You have reached your daily limit."
		}
		cfg.RateLimits.DailyReset = func(now time.Time) time.Time { return now.Add(5 * time.Hour) }
		hc := connectors.NewHTTPClient(cfg)
		_, err := get(t, hc, t.Context(), srv.srv.URL)
		var rl *connectors.RateLimitError
		require.ErrorAs(t, err, &rl)
		require.True(t, rl.Daily)
		require.InDelta(t, (5 * time.Hour).Seconds(), rl.RetryAfter.Seconds(), 1)
		require.Contains(t, rl.Error(), "daily API limit reached")
		require.Equal(t, 1, srv.requests())
	})
}

func TestRateLimitHeaders(t *testing.T) {
	t.Parallel()
	hs := connectors.HubSpotRateLimitHeaders(http.Header{
		"X-Hubspot-Ratelimit-Max":                   {"190"},
		"X-Hubspot-Ratelimit-Remaining":             {"187"},
		"X-Hubspot-Ratelimit-Interval-Milliseconds": {"10000"},
		"X-Hubspot-Ratelimit-Daily":                 {"625000"},
		"X-Hubspot-Ratelimit-Daily-Remaining":       {"624000"},
	})
	require.Equal(t, connectors.RateLimitHeaders{
		WindowReported: true, Limit: 190, Remaining: 187, Interval: 10 * time.Second,
		DailyReported: true, DailyLimit: 625000, DailyRemaining: 624000,
	}, hs)
	require.Equal(t, connectors.RateLimitHeaders{}, connectors.HubSpotRateLimitHeaders(http.Header{}), "search answers carry none")

	pd := connectors.PipedriveRateLimitHeaders(http.Header{
		"X-Ratelimit-Limit":     {"80"},
		"X-Ratelimit-Remaining": {"79"},
		"X-Ratelimit-Reset":     {"2"},
		"X-Daily-Requests-Left": {"9000"},
	})
	require.Equal(t, connectors.RateLimitHeaders{
		WindowReported: true, Limit: 80, Remaining: 79, Reset: 2 * time.Second,
	}, pd, "x-daily-requests-left counts writes only")
}
