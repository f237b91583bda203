package connectors

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Budget is a vendor's request allowance: Limit requests per Interval (a rolling window).
type Budget struct {
	Limit    int
	Interval time.Duration
}

// RateLimits describes a vendor's request budgets and how its responses report them. The
// chain keeps one token bucket per budget and connection, sized so that no rolling window
// of Interval ever holds more than Limit requests, and updates it from the headers.
type RateLimits struct {
	// Budgets are the vendor's documented budgets by name, used until a response reports others.
	Budgets map[string]Budget
	// BudgetsFor names the budgets a request draws on. Nil: every budget.
	BudgetsFor func(*http.Request) []string
	// HeaderBudget is the budget the rate-limit headers describe ("" = none).
	HeaderBudget string
	// ParseHeaders reads the vendor's rate-limit headers (HubSpotRateLimitHeaders,
	// PipedriveRateLimitHeaders). Nil: the vendor sends none.
	ParseHeaders func(http.Header) RateLimitHeaders
	// ParseRateLimited reads a 429 body: whether a daily budget ran out, and the vendor's
	// message. Nil: 429s are never daily.
	ParseRateLimited func(body []byte) (daily bool, message string)
	// DailyReset returns when a daily budget exhausted at now is available again.
	// Nil: the next midnight UTC.
	DailyReset func(now time.Time) time.Time
}

// RateLimitHeaders is what a response says about the budgets.
type RateLimitHeaders struct {
	// WindowReported is true when Limit and Remaining were sent.
	WindowReported bool
	Limit          int
	Remaining      int
	// Interval is the window length (0: not sent; the budget's own is kept).
	Interval time.Duration
	// Reset is the time until the window frees up (0: not sent).
	Reset time.Duration
	// DailyReported is true when DailyRemaining was sent.
	DailyReported  bool
	DailyLimit     int
	DailyRemaining int
}

// HubSpotRateLimitHeaders reads X-HubSpot-RateLimit-Max/-Remaining/-Interval-Milliseconds and
// X-HubSpot-RateLimit-Daily/-Daily-Remaining.
func HubSpotRateLimitHeaders(h http.Header) RateLimitHeaders {
	var r RateLimitHeaders
	limit, okLimit := headerInt(h, "X-HubSpot-RateLimit-Max")
	remaining, okRemaining := headerInt(h, "X-HubSpot-RateLimit-Remaining")
	if okLimit && okRemaining {
		r.WindowReported, r.Limit, r.Remaining = true, limit, remaining
		if ms, ok := headerInt(h, "X-HubSpot-RateLimit-Interval-Milliseconds"); ok && ms > 0 {
			r.Interval = time.Duration(ms) * time.Millisecond
		}
	}
	if left, ok := headerInt(h, "X-HubSpot-RateLimit-Daily-Remaining"); ok {
		r.DailyReported, r.DailyRemaining = true, left
		r.DailyLimit, _ = headerInt(h, "X-HubSpot-RateLimit-Daily")
	}
	return r
}

// PipedriveRateLimitHeaders reads x-ratelimit-limit/-remaining/-reset (a 2-second burst
// window; reset is in seconds, not an epoch). x-daily-requests-left is ignored: it counts
// POST/PUT requests only, so at 0 it says nothing about reads.
func PipedriveRateLimitHeaders(h http.Header) RateLimitHeaders {
	var r RateLimitHeaders
	limit, okLimit := headerInt(h, "X-Ratelimit-Limit")
	remaining, okRemaining := headerInt(h, "X-Ratelimit-Remaining")
	if okLimit && okRemaining {
		r.WindowReported, r.Limit, r.Remaining = true, limit, remaining
		if secs, ok := headerInt(h, "X-Ratelimit-Reset"); ok && secs >= 0 {
			r.Reset = time.Duration(secs) * time.Second
		}
	}
	return r
}

func headerInt(h http.Header, name string) (int, bool) {
	v := strings.TrimSpace(h.Get(name))
	if v == "" {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	return n, err == nil
}

// Limiters holds the rate limiters of every connection in this process, so the runs of one
// connection (its streams, successive syncs) share its budgets. It is safe for concurrent use.
type Limiters struct {
	mu   sync.Mutex
	byID map[string]*connectionLimiter
}

// NewLimiters returns an empty registry.
func NewLimiters() *Limiters { return &Limiters{byID: make(map[string]*connectionLimiter)} }

// forConnection returns the limiter of connection, creating it with rules on first use.
// A nil registry or an empty connection key gives a limiter nobody else shares.
func (l *Limiters) forConnection(connection string, rules RateLimits, now func() time.Time, maxWait time.Duration) *connectionLimiter {
	if l == nil || connection == "" {
		return newConnectionLimiter(rules, now, maxWait)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if cl, ok := l.byID[connection]; ok {
		return cl
	}
	cl := newConnectionLimiter(rules, now, maxWait)
	l.byID[connection] = cl
	return cl
}

// connectionLimiter paces one connection's requests across its budgets.
type connectionLimiter struct {
	rules   RateLimits
	now     func() time.Time
	maxWait time.Duration

	mu         sync.Mutex
	budgets    map[string]*budgetState
	dailyUntil time.Time
	dailyMsg   string
}

type budgetState struct {
	budget      Budget
	bucket      *rate.Limiter
	pausedUntil time.Time
}

func newConnectionLimiter(rules RateLimits, now func() time.Time, maxWait time.Duration) *connectionLimiter {
	cl := &connectionLimiter{rules: rules, now: now, maxWait: maxWait, budgets: make(map[string]*budgetState)}
	for name, b := range rules.Budgets {
		if b.Limit > 0 && b.Interval > 0 {
			cl.budgets[name] = &budgetState{budget: b, bucket: newBucket(b)}
		}
	}
	return cl
}

// newBucket sizes a token bucket so that no rolling window of b.Interval holds more than
// b.Limit requests: a burst of about a tenth of the limit, refilled at the rate that leaves
// room for it (plus one request of slack for large limits, against arrival jitter).
func newBucket(b Budget) *rate.Limiter {
	burst := max(1, b.Limit/10)
	allowed := b.Limit - burst
	if b.Limit >= 10 {
		allowed--
	}
	if allowed <= 0 {
		return rate.NewLimiter(rate.Every(b.Interval), 1)
	}
	return rate.NewLimiter(rate.Limit(float64(allowed)/b.Interval.Seconds()), burst)
}

func (cl *connectionLimiter) namesFor(req *http.Request) []string {
	if cl.rules.BudgetsFor != nil {
		return cl.rules.BudgetsFor(req)
	}
	names := make([]string, 0, len(cl.budgets))
	for name := range cl.budgets {
		names = append(names, name)
	}
	return names
}

// wait blocks until every budget of req has room, or returns a *RateLimitError when that
// would take longer than maxWait (or a daily budget is spent), or ctx.Err().
func (cl *connectionLimiter) wait(ctx context.Context, names []string) error {
	cl.mu.Lock()
	now := time.Now()
	clock := cl.now()
	if clock.Before(cl.dailyUntil) {
		err := &RateLimitError{RetryAfter: cl.dailyUntil.Sub(clock), Daily: true, Message: cl.dailyMsg}
		cl.mu.Unlock()
		return err
	}
	var delay time.Duration
	reservations := make([]*rate.Reservation, 0, len(names))
	for _, name := range names {
		b, ok := cl.budgets[name]
		if !ok {
			continue
		}
		r := b.bucket.ReserveN(now, 1)
		reservations = append(reservations, r)
		delay = max(delay, r.DelayFrom(now), b.pausedUntil.Sub(now))
	}
	cl.mu.Unlock()

	cancel := func() {
		for _, r := range reservations {
			r.CancelAt(time.Now())
		}
	}
	if delay > cl.maxWait {
		cancel()
		return &RateLimitError{RetryAfter: delay, Message: "the connection's request budget is spent for now"}
	}
	if delay <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(delay)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		cancel()
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// observe updates the budgets from a response's headers.
func (cl *connectionLimiter) observe(h http.Header) {
	if cl.rules.ParseHeaders == nil {
		return
	}
	rh := cl.rules.ParseHeaders(h)
	cl.mu.Lock()
	defer cl.mu.Unlock()
	now := time.Now()
	if b, ok := cl.budgets[cl.rules.HeaderBudget]; ok && rh.WindowReported && rh.Limit > 0 {
		reported := Budget{Limit: rh.Limit, Interval: b.budget.Interval}
		if rh.Interval > 0 {
			reported.Interval = rh.Interval
		}
		if reported != b.budget {
			b.budget = reported
			fresh := newBucket(reported)
			b.bucket.SetLimitAt(now, fresh.Limit())
			b.bucket.SetBurstAt(now, fresh.Burst())
		}
		switch tokens := b.bucket.TokensAt(now); {
		case rh.Remaining <= 0:
			pause := rh.Reset
			if pause <= 0 {
				pause = b.budget.Interval / 10
			}
			b.pausedUntil = now.Add(pause)
		case tokens > float64(rh.Remaining):
			// Others (another process, another app on the account) use the same budget.
			b.bucket.ReserveN(now, int(tokens)-rh.Remaining)
		}
	}
	if rh.DailyReported && rh.DailyRemaining <= 0 {
		cl.exhaustDaily("the vendor's daily request limit is used up", 0)
	}
}

// exhaustDaily refuses requests until the daily budget resets (after retryAfter when the
// vendor said, else at rules.DailyReset) and returns how long that is.
func (cl *connectionLimiter) exhaustDaily(msg string, retryAfter time.Duration) time.Duration {
	clock := cl.now()
	switch {
	case retryAfter > 0:
		cl.dailyUntil = clock.Add(retryAfter)
	case cl.rules.DailyReset != nil:
		cl.dailyUntil = cl.rules.DailyReset(clock)
	default:
		cl.dailyUntil = nextMidnightUTC(clock)
	}
	cl.dailyMsg = msg
	return cl.dailyUntil.Sub(clock)
}

func nextMidnightUTC(now time.Time) time.Time {
	y, m, d := now.UTC().Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)
}

// limitTransport paces attempts through the connection's limiter, feeds it the responses'
// headers and turns a 429 for a spent daily budget into a *RateLimitError (no retry helps).
type limitTransport struct {
	next    http.RoundTripper
	limiter *connectionLimiter
}

func (t *limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.limiter.wait(req.Context(), t.limiter.namesFor(req)); err != nil {
		closeRequestBody(req)
		return nil, err
	}
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	t.limiter.observe(resp.Header)
	if resp.StatusCode != http.StatusTooManyRequests || t.limiter.rules.ParseRateLimited == nil {
		return resp, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<10))
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	daily, msg := t.limiter.rules.ParseRateLimited(body)
	if !daily {
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return resp, nil
	}
	ra, _ := RetryAfter(resp.Header, t.limiter.now())
	t.limiter.mu.Lock()
	wait := t.limiter.exhaustDaily(msg, ra)
	t.limiter.mu.Unlock()
	return nil, &RateLimitError{RetryAfter: wait, Daily: true, Message: msg}
}
