package connectors_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/pipewatch/pipewatch/connectors"
)

// scripted is a test server answering from a script, one entry per request (the last
// entry repeats), and recording what it received.
type scripted struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	script []func(w http.ResponseWriter, r *http.Request)
	got    []*http.Request
	bodies []string
	times  []time.Time
}

func newScripted(t *testing.T, script ...func(w http.ResponseWriter, r *http.Request)) *scripted {
	t.Helper()
	s := &scripted{t: t, script: script}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		n := len(s.got)
		s.got = append(s.got, r)
		s.bodies = append(s.bodies, string(body))
		s.times = append(s.times, time.Now())
		step := s.script[min(n, len(s.script)-1)]
		s.mu.Unlock()
		step(w, r)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *scripted) requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

func status(code int, headers ...string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"status":"error","message":"answer %d"}`, code)
	}
}

func ok(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, `{"ok":true}`) }

// fastConfig retries quickly.
func fastConfig() connectors.HTTPConfig {
	return connectors.HTTPConfig{RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond}
}

func get(t *testing.T, hc *http.Client, ctx context.Context, url string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	require.NoError(t, err)
	resp, err := connectors.Do(hc, req)
	if resp != nil {
		t.Cleanup(func() { _ = resp.Body.Close() })
	}
	return resp, err
}

func TestHTTPClient(t *testing.T) {
	t.Parallel()

	t.Run("RetriesServerErrorsAndCountsAttempts", func(t *testing.T) {
		t.Parallel()
		srv := newScripted(t, status(500), status(502), ok)
		cfg := fastConfig()
		cfg.Stats = &connectors.Stats{}
		run := &connectors.Stats{}
		resp, err := get(t, connectors.NewHTTPClient(cfg), connectors.WithStats(t.Context(), run), srv.srv.URL)
		require.NoError(t, err)
		require.Equal(t, 200, resp.StatusCode)
		require.Equal(t, 3, srv.requests())
		for _, s := range []*connectors.Stats{cfg.Stats, run} {
			require.EqualValues(t, 3, s.Requests.Load())
			require.EqualValues(t, 2, s.Retries.Load())
		}
	})

	t.Run("RetryAfterWithinTheCapIsWaitedOut", func(t *testing.T) {
		t.Parallel()
		srv := newScripted(t, status(429, "Retry-After", "1"), ok)
		began := time.Now()
		_, err := get(t, connectors.NewHTTPClient(fastConfig()), t.Context(), srv.srv.URL)
		require.NoError(t, err)
		require.GreaterOrEqual(t, time.Since(began), 900*time.Millisecond)
		require.Equal(t, 2, srv.requests())
	})

	t.Run("RetryAfterBeyondTheCapIsARateLimitError", func(t *testing.T) {
		t.Parallel()
		srv := newScripted(t, status(429, "Retry-After", "120"), ok)
		_, err := get(t, connectors.NewHTTPClient(fastConfig()), t.Context(), srv.srv.URL)
		var rl *connectors.RateLimitError
		require.ErrorAs(t, err, &rl)
		require.Equal(t, 120*time.Second, rl.RetryAfter)
		require.Equal(t, "answer 429", rl.Message)
		require.Equal(t, 1, srv.requests(), "a wait beyond the cap is the job's (a snooze), not the worker's")
	})

	t.Run("PersistentRateLimitingIsARateLimitError", func(t *testing.T) {
		t.Parallel()
		srv := newScripted(t, status(429))
		cfg := fastConfig()
		cfg.RetryMax = 3
		_, err := get(t, connectors.NewHTTPClient(cfg), t.Context(), srv.srv.URL)
		var rl *connectors.RateLimitError
		require.ErrorAs(t, err, &rl)
		require.Equal(t, connectors.DefaultRateLimitWait, rl.RetryAfter)
		require.Equal(t, 4, srv.requests())
	})

	t.Run("ExhaustedServerErrorsKeepStatusAndBodyStart", func(t *testing.T) {
		t.Parallel()
		long := strings.Repeat("x", 4000)
		srv := newScripted(t, func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(503)
			_, _ = io.WriteString(w, long)
		})
		cfg := fastConfig()
		cfg.RetryMax = 2
		_, err := get(t, connectors.NewHTTPClient(cfg), t.Context(), srv.srv.URL+"/crm/v3/owners")
		var he *connectors.HTTPError
		require.ErrorAs(t, err, &he)
		require.Equal(t, 503, he.StatusCode)
		require.Equal(t, "/crm/v3/owners", he.Path)
		require.True(t, he.Temporary())
		require.Less(t, len(he.Body), 600)
		require.Equal(t, 3, srv.requests())
	})

	t.Run("ClassifiesAtTheEdge", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			status int
			want   error
		}{{401, connectors.ErrUnauthorized}, {404, connectors.ErrNotFound}} {
			srv := newScripted(t, status(tc.status))
			_, err := get(t, connectors.NewHTTPClient(fastConfig()), t.Context(), srv.srv.URL+"/x")
			require.ErrorIs(t, err, tc.want)
			require.Contains(t, err.Error(), fmt.Sprintf("answer %d", tc.status), "the vendor's message is kept")
			require.Equal(t, 1, srv.requests(), "HTTP %d is not retried", tc.status)
		}
		srv := newScripted(t, status(400))
		_, err := get(t, connectors.NewHTTPClient(fastConfig()), t.Context(), srv.srv.URL+"/x")
		var he *connectors.HTTPError
		require.ErrorAs(t, err, &he)
		require.Equal(t, 400, he.StatusCode)
		require.False(t, he.Temporary())
	})

	t.Run("EachAttemptHasItsOwnTimeout", func(t *testing.T) {
		t.Parallel()
		srv := newScripted(t, func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(2 * time.Second):
			}
		}, ok)
		cfg := fastConfig()
		cfg.Timeout = 100 * time.Millisecond
		_, err := get(t, connectors.NewHTTPClient(cfg), t.Context(), srv.srv.URL)
		require.NoError(t, err)
		require.Equal(t, 2, srv.requests())
	})

	t.Run("RequestBodiesSurviveRetries", func(t *testing.T) {
		t.Parallel()
		srv := newScripted(t, status(503), ok)
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.srv.URL, strings.NewReader(`{"limit":200}`))
		require.NoError(t, err)
		resp, err := connectors.Do(connectors.NewHTTPClient(fastConfig()), req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		require.Equal(t, []string{`{"limit":200}`, `{"limit":200}`}, srv.bodies)
	})

	t.Run("ABodyCutShortIsRetried", func(t *testing.T) {
		t.Parallel()
		cut := func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Length", "4096")
			_, _ = io.WriteString(w, `{"results":[{"id":"1"},`)
			w.(http.Flusher).Flush()
			conn, _, err := w.(http.Hijacker).Hijack()
			require.NoError(t, err)
			_ = conn.Close()
		}
		srv := newScripted(t, cut, ok)
		cfg := fastConfig()
		cfg.Stats = &connectors.Stats{}
		resp, err := get(t, connectors.NewHTTPClient(cfg), t.Context(), srv.srv.URL)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.JSONEq(t, `{"ok":true}`, string(body), "the whole second answer, not the cut first one")
		require.EqualValues(t, 1, cfg.Stats.Retries.Load())
	})

	t.Run("CancellationStopsTheRetryWait", func(t *testing.T) {
		t.Parallel()
		srv := newScripted(t, status(429, "Retry-After", "20"), ok)
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		began := time.Now()
		_, err := get(t, connectors.NewHTTPClient(fastConfig()), ctx, srv.srv.URL)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Equal(t, ctx.Err(), err, "Do returns ctx.Err() itself")
		require.Less(t, time.Since(began), time.Second)
	})

	t.Run("LogsNoCredentials", func(t *testing.T) {
		t.Parallel()
		srv := newScripted(t, status(500), ok)
		var logs bytes.Buffer
		cfg := fastConfig()
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		cfg.Auth = oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "pat-na1-SECRET-TOKEN"})
		_, err := get(t, connectors.NewHTTPClient(cfg), t.Context(), srv.srv.URL+"/v1/deals?api_token=SECRET-QUERY&limit=5")
		require.NoError(t, err)
		require.Equal(t, "Bearer pat-na1-SECRET-TOKEN", srv.got[0].Header.Get("Authorization"))
		out := logs.String()
		require.Contains(t, out, "/v1/deals")
		require.Contains(t, out, "api_token=REDACTED")
		require.Contains(t, out, "status=500")
		require.NotContains(t, out, "SECRET")

		// A transport failure names the request without its credentials either.
		srv.srv.Close()
		cfg.RetryMax = -1
		_, err = get(t, connectors.NewHTTPClient(cfg), t.Context(), srv.srv.URL+"/v1/deals?api_token=SECRET-QUERY")
		require.Error(t, err)
		require.Contains(t, err.Error(), "GET /v1/deals")
		require.NotContains(t, err.Error(), "SECRET")
		require.NotContains(t, logs.String(), "SECRET")
	})
}

// rejectingSource is a TokenRefresher whose refreshes are counted.
type rejectingSource struct {
	mu        sync.Mutex
	current   string
	next      string
	refreshes int
	err       error
}

func (s *rejectingSource) Token() (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	return &oauth2.Token{AccessToken: s.current}, nil
}

func (s *rejectingSource) RefreshRejected(rejected *oauth2.Token) (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refreshes++
	if s.next == "" {
		return nil, &oauth2.RetrieveError{Response: &http.Response{StatusCode: 400}, ErrorCode: "invalid_grant"}
	}
	s.current = s.next
	return &oauth2.Token{AccessToken: s.current}, nil
}

func TestHTTPClientAuth(t *testing.T) {
	t.Parallel()

	acceptOnly := func(token string) func(w http.ResponseWriter, r *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer "+token {
				status(401)(w, r)
				return
			}
			ok(w, r)
		}
	}

	t.Run("A401GetsOneRefreshAndResend", func(t *testing.T) {
		t.Parallel()
		srv := newScripted(t, acceptOnly("fresh"))
		src := &rejectingSource{current: "stale", next: "fresh"}
		cfg := fastConfig()
		cfg.Auth, cfg.Stats = src, &connectors.Stats{}
		_, err := get(t, connectors.NewHTTPClient(cfg), t.Context(), srv.srv.URL)
		require.NoError(t, err)
		require.Equal(t, 1, src.refreshes)
		require.Equal(t, 2, srv.requests())
		require.EqualValues(t, 1, cfg.Stats.Retries.Load())
	})

	t.Run("A401AfterTheRefreshIsUnauthorized", func(t *testing.T) {
		t.Parallel()
		srv := newScripted(t, acceptOnly("never"))
		src := &rejectingSource{current: "stale", next: "also-rejected"}
		cfg := fastConfig()
		cfg.Auth = src
		_, err := get(t, connectors.NewHTTPClient(cfg), t.Context(), srv.srv.URL)
		require.ErrorIs(t, err, connectors.ErrUnauthorized)
		require.Equal(t, 1, src.refreshes, "no refresh loop")
		require.Equal(t, 2, srv.requests())
	})

	t.Run("ARefusedRefreshIsUnauthorizedWithoutRetries", func(t *testing.T) {
		t.Parallel()
		srv := newScripted(t, acceptOnly("never"))
		src := &rejectingSource{current: "stale"}
		cfg := fastConfig()
		cfg.Auth = src
		_, err := get(t, connectors.NewHTTPClient(cfg), t.Context(), srv.srv.URL)
		require.ErrorIs(t, err, connectors.ErrUnauthorized)
		require.Contains(t, err.Error(), "invalid_grant")
		require.Equal(t, 1, src.refreshes)
		require.Equal(t, 1, srv.requests())
	})

	t.Run("ATokenEndpointRefusalBeforeSendingIsUnauthorized", func(t *testing.T) {
		t.Parallel()
		srv := newScripted(t, ok)
		src := &rejectingSource{err: &oauth2.RetrieveError{Response: &http.Response{StatusCode: 400}, Body: []byte(`{"refresh_token":"rt-SECRET"}`)}}
		cfg := fastConfig()
		cfg.Auth = src
		_, err := get(t, connectors.NewHTTPClient(cfg), t.Context(), srv.srv.URL)
		require.ErrorIs(t, err, connectors.ErrUnauthorized)
		require.NotContains(t, err.Error(), "SECRET", "token endpoint bodies stay out of errors")
		require.Zero(t, srv.requests())
	})

	t.Run("ATokenEndpointOutageIsRetried", func(t *testing.T) {
		t.Parallel()
		srv := newScripted(t, ok)
		var calls atomic.Int32
		src := oauth2.TokenSource(tokenFunc(func() (*oauth2.Token, error) {
			if calls.Add(1) == 1 {
				return nil, &oauth2.RetrieveError{Response: &http.Response{StatusCode: 503}}
			}
			return &oauth2.Token{AccessToken: "t"}, nil
		}))
		cfg := fastConfig()
		cfg.Auth = src
		_, err := get(t, connectors.NewHTTPClient(cfg), t.Context(), srv.srv.URL)
		require.NoError(t, err)
		require.EqualValues(t, 2, calls.Load())
	})
}

type tokenFunc func() (*oauth2.Token, error)

func (f tokenFunc) Token() (*oauth2.Token, error) { return f() }

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		header string
		want   time.Duration
		ok     bool
	}{
		{"", 0, false},
		{"7", 7 * time.Second, true},
		{"1.5", 1500 * time.Millisecond, true},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
		{"soon", 0, false},
	} {
		got, ok := connectors.RetryAfter(http.Header{"Retry-After": {tc.header}}, now)
		require.Equal(t, tc.ok, ok, tc.header)
		require.Equal(t, tc.want, got, tc.header)
	}
}

func TestRedactedURL(t *testing.T) {
	t.Parallel()
	req := httptest.NewRequest(http.MethodGet, "https://user:pw@api.example.com/v1/deals?api_token=abc&limit=5&hapikey=k", nil)
	got := connectors.RedactedURL(req.URL)
	require.NotContains(t, got, "abc")
	require.NotContains(t, got, "pw")
	require.Contains(t, got, "limit=5")
	require.Contains(t, got, "hapikey=REDACTED")
}
