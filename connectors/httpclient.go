package connectors

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-retryablehttp"
	"golang.org/x/oauth2"
)

// Defaults of HTTPConfig.
const (
	DefaultTimeout       = 30 * time.Second
	DefaultRetryMax      = 5
	DefaultRetryWaitMin  = 500 * time.Millisecond
	DefaultRetryWaitMax  = 10 * time.Second
	DefaultMaxRetryAfter = 30 * time.Second
)

// HTTPConfig configures the HTTP client chain every connector uses. Zero fields take the
// defaults above.
type HTTPConfig struct {
	// Connection keys the shared rate limiters in Limiters (e.g. "hubspot/12"), so every
	// client of one connection in this process draws on the same budgets.
	Connection string
	// Limiters is the process-wide limiter registry. Nil gives the client limiters of its own.
	Limiters *Limiters
	// RateLimits are the vendor's budgets and how its responses report them. The zero value
	// sends without proactive limiting (429s are still retried and classified).
	RateLimits RateLimits
	// Auth authenticates each request (oauth2.StaticTokenSource for a private-app token or
	// API key sent as a bearer token; an OAuth source that refreshes and persists rotated
	// tokens). A source that also implements TokenRefresher gets one refresh-and-resend on
	// a 401. Nil sends requests without credentials.
	Auth oauth2.TokenSource
	// Logger receives one line per attempt (method, path, status, duration), never headers,
	// bodies or credential query parameters. Nil discards.
	Logger *slog.Logger
	// Stats, when set, counts every request and retry of this client. Per-run counts can
	// also be collected with WithStats on the request context.
	Stats *Stats
	// Timeout bounds one attempt, reading the response body included.
	Timeout time.Duration
	// RetryMax is how many times a failed attempt is repeated (negative: never).
	RetryMax int
	// RetryWaitMin and RetryWaitMax bound the jittered exponential backoff between attempts.
	RetryWaitMin, RetryWaitMax time.Duration
	// MaxRetryAfter caps the waits the client makes in place (Retry-After, rate limiters).
	// A longer wait returns a *RateLimitError so the job can snooze instead.
	MaxRetryAfter time.Duration
	// Transport sends the requests (default: a pooled transport).
	Transport http.RoundTripper
	// NowFunc is the clock used for Retry-After dates and daily resets (default time.Now).
	NowFunc func() time.Time
}

// TokenRefresher is implemented by token sources that can replace an access token the
// vendor rejected with a 401 before it expired. The chain calls it at most once per request.
type TokenRefresher interface {
	RefreshRejected(rejected *oauth2.Token) (*oauth2.Token, error)
}

// NewHTTPClient returns the HTTP client chain connectors send their requests through:
//
//	retries (go-retryablehttp: connection errors, 429 and 5xx; jittered backoff; Retry-After
//	honoured up to MaxRetryAfter) → per-attempt timeout → proactive rate limiter (budgets fed
//	by the vendor's headers) → authentication (one refresh on a 401) → logging and counting
//	→ transport.
//
// A 2xx body is read whole within its attempt, so a connection that drops in the middle
// of a page is a failed attempt, retried like any connection error. Responses come back
// unclassified; connectors turn them into errors with CheckResponse.
// Waits longer than MaxRetryAfter and exhausted daily budgets fail fast with a
// *RateLimitError; a rejected refresh token fails with ErrUnauthorized; neither is retried.
func NewHTTPClient(cfg HTTPConfig) *http.Client {
	cfg = cfg.withDefaults()
	limiter := cfg.Limiters.forConnection(cfg.Connection, cfg.RateLimits, cfg.NowFunc, cfg.MaxRetryAfter)

	var next http.RoundTripper = &logTransport{next: cfg.Transport, logger: cfg.Logger, stats: cfg.Stats}
	if cfg.Auth != nil {
		next = &authTransport{next: next, source: cfg.Auth, stats: cfg.Stats}
	}
	next = &limitTransport{next: next, limiter: limiter}

	rc := retryablehttp.NewClient()
	rc.HTTPClient = &http.Client{Timeout: cfg.Timeout, Transport: bufferTransport{next: next}}
	rc.Logger = nil // the chain logs through logTransport, with credentials redacted
	rc.RetryMax = cfg.RetryMax
	rc.RetryWaitMin, rc.RetryWaitMax = cfg.RetryWaitMin, cfg.RetryWaitMax
	policy := retryPolicy{maxRetryAfter: cfg.MaxRetryAfter, now: cfg.NowFunc}
	rc.CheckRetry = policy.checkRetry
	rc.Backoff = policy.backoff
	rc.ErrorHandler = passThroughErrorHandler
	stats := cfg.Stats
	rc.RequestLogHook = func(_ retryablehttp.Logger, req *http.Request, attempt int) {
		if attempt > 0 {
			countRetry(req.Context(), stats)
		}
	}
	return rc.StandardClient()
}

// bufferTransport reads each 2xx body into memory before the attempt ends (pages are
// decoded whole anyway), turning a body cut short into the attempt's error.
type bufferTransport struct{ next http.RoundTripper }

func (t bufferTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil || resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("reading the response body: %w", err)
	}
	resp.Body, resp.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	return resp, nil
}

func (cfg HTTPConfig) withDefaults() HTTPConfig {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	switch {
	case cfg.RetryMax == 0:
		cfg.RetryMax = DefaultRetryMax
	case cfg.RetryMax < 0:
		cfg.RetryMax = 0
	}
	if cfg.RetryWaitMin <= 0 {
		cfg.RetryWaitMin = DefaultRetryWaitMin
	}
	if cfg.RetryWaitMax <= 0 {
		cfg.RetryWaitMax = DefaultRetryWaitMax
	}
	cfg.RetryWaitMax = max(cfg.RetryWaitMax, cfg.RetryWaitMin)
	if cfg.MaxRetryAfter <= 0 {
		cfg.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if cfg.Transport == nil {
		cfg.Transport = cleanhttp.DefaultPooledTransport()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.NowFunc == nil {
		cfg.NowFunc = time.Now
	}
	return cfg
}

type statsKey struct{}

// WithStats returns a context whose requests through the chain are counted in s, so one
// long-lived client can report per-run request and retry counts.
func WithStats(ctx context.Context, s *Stats) context.Context {
	return context.WithValue(ctx, statsKey{}, s)
}

func countRequest(ctx context.Context, client *Stats) {
	if client != nil {
		client.Requests.Add(1)
	}
	if s, ok := ctx.Value(statsKey{}).(*Stats); ok && s != client {
		s.Requests.Add(1)
	}
}

func countRetry(ctx context.Context, client *Stats) {
	if client != nil {
		client.Retries.Add(1)
	}
	if s, ok := ctx.Value(statsKey{}).(*Stats); ok && s != client {
		s.Retries.Add(1)
	}
}

// retryPolicy decides which attempts are repeated and how long to wait in between.
type retryPolicy struct {
	maxRetryAfter time.Duration
	now           func() time.Time
}

func (p retryPolicy) checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil {
		var rl *RateLimitError
		var perm *PermanentError
		if errors.As(err, &rl) || errors.Is(err, ErrUnauthorized) || errors.As(err, &perm) {
			return false, err
		}
		return retryablehttp.ErrorPropagatedRetryPolicy(ctx, resp, err)
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
		// A wait longer than the cap is the job's to take (a snooze), not this worker's.
		if wait, ok := RetryAfter(resp.Header, p.now()); ok && wait > p.maxRetryAfter {
			return false, nil
		}
		return true, nil
	case resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented:
		return true, nil
	}
	return false, nil
}

// backoff honours Retry-After (checkRetry already refused waits over the cap) and otherwise
// waits a jittered exponential time: a random duration in [d/2, d], d = lo·2^attempt ≤ hi.
func (p retryPolicy) backoff(lo, hi time.Duration, attempt int, resp *http.Response) time.Duration {
	if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
		if wait, ok := RetryAfter(resp.Header, p.now()); ok {
			return min(wait, p.maxRetryAfter)
		}
	}
	d := hi
	if attempt < 30 {
		d = min(lo<<attempt, hi)
	}
	return d/2 + rand.N(d/2+1)
}

// passThroughErrorHandler returns the last response when retries are exhausted, so the
// connector can read its status, Retry-After and body; without a response it returns the error.
func passThroughErrorHandler(resp *http.Response, err error, _ int) (*http.Response, error) {
	if resp != nil && err == nil {
		return resp, nil
	}
	if resp != nil {
		drainAndClose(resp.Body)
	}
	return nil, err
}

// RetryAfter parses a Retry-After header (delay seconds or an HTTP date).
func RetryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if secs < 0 {
			return 0, true
		}
		return time.Duration(secs * float64(time.Second)), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// authTransport sets the bearer token and, on a 401, asks a TokenRefresher once for a new
// token and resends. Token endpoint refusals become ErrUnauthorized.
type authTransport struct {
	next   http.RoundTripper
	source oauth2.TokenSource
	stats  *Stats
}

func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tok, err := t.source.Token()
	if err != nil {
		closeRequestBody(req)
		return nil, tokenError(err)
	}
	resp, err := t.send(req, tok)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	refresher, ok := t.source.(TokenRefresher)
	if !ok || (req.Body != nil && req.Body != http.NoBody && req.GetBody == nil) {
		return resp, nil
	}
	fresh, err := refresher.RefreshRejected(tok)
	if err != nil {
		drainAndClose(resp.Body)
		return nil, tokenError(err)
	}
	if fresh.AccessToken == tok.AccessToken {
		return resp, nil
	}
	drainAndClose(resp.Body)
	resend := req.Clone(req.Context())
	if req.GetBody != nil {
		if resend.Body, err = req.GetBody(); err != nil {
			return nil, fmt.Errorf("rewinding the request body: %w", err)
		}
	}
	countRetry(req.Context(), t.stats)
	return t.send(resend, fresh)
}

func (t *authTransport) send(req *http.Request, tok *oauth2.Token) (*http.Response, error) {
	authed := req.Clone(req.Context())
	tok.SetAuthHeader(authed)
	return t.next.RoundTrip(authed)
}

// tokenError classifies a failure to get an access token. A 4xx from the token endpoint
// (invalid_grant: revoked or rotated-away refresh token, unknown client) means the grant is
// gone. The response body is left out: token endpoints may echo what they were sent.
func tokenError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		code := re.ErrorCode
		if code == "" {
			code = http.StatusText(re.Response.StatusCode)
		}
		if re.Response.StatusCode >= 400 && re.Response.StatusCode < 500 {
			return fmt.Errorf("%w: refreshing the OAuth token: the token endpoint answered %d (%s)",
				ErrUnauthorized, re.Response.StatusCode, code)
		}
		return fmt.Errorf("refreshing the OAuth token: the token endpoint answered %d (%s)", re.Response.StatusCode, code)
	}
	return fmt.Errorf("getting an access token: %w", err)
}

// logTransport counts and logs each attempt that is actually sent.
type logTransport struct {
	next   http.RoundTripper
	logger *slog.Logger
	stats  *Stats
}

func (t *logTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	countRequest(ctx, t.stats)
	start := time.Now()
	resp, err := t.next.RoundTrip(req)
	attrs := []slog.Attr{
		slog.String("method", req.Method),
		slog.String("url", RedactedURL(req.URL)),
		slog.Duration("duration", time.Since(start)),
	}
	switch {
	case err != nil:
		attrs = append(attrs, slog.String("error", err.Error()))
		t.logger.LogAttrs(ctx, slog.LevelWarn, "http: request failed", attrs...)
	case resp.StatusCode >= 400:
		attrs = append(attrs, slog.Int("status", resp.StatusCode))
		t.logger.LogAttrs(ctx, slog.LevelWarn, "http: error response", attrs...)
	default:
		attrs = append(attrs, slog.Int("status", resp.StatusCode))
		t.logger.LogAttrs(ctx, slog.LevelDebug, "http: response", attrs...)
	}
	return resp, err
}

// sensitiveParams are query parameters that carry credentials.
var sensitiveParams = []string{
	"access_token", "api_key", "api_token", "apikey", "client_secret", "code", "hapikey", "key",
	"password", "refresh_token", "secret", "token",
}

// RedactedURL renders u for logs and errors: no user info, credential parameters redacted.
func RedactedURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	c := *u
	c.User = nil
	if c.RawQuery != "" {
		q := c.Query()
		for k := range q {
			for _, s := range sensitiveParams {
				if strings.EqualFold(k, s) {
					q[k] = []string{"REDACTED"}
				}
			}
		}
		c.RawQuery = q.Encode()
	}
	return c.String()
}

func drainAndClose(body io.ReadCloser) {
	if body == nil {
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 64<<10))
	_ = body.Close()
}

func closeRequestBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}
