// Package hubspottest is an in-process fake of the HubSpot CRM API, written from the
// documented contract (docs/vendors.md §1): object lists and searches with string property
// values, `after` paging, the search limit of 200 per page and the HTTP 400 past 10,000
// results, archived objects (absent from search, listed with archived=true), owners, deal
// pipelines, two-way associations (v4 batch reads, inline on lists), private-app and OAuth
// bearer tokens with the /oauth/v1/token refresh grant, rate-limit headers, 429 bodies, the
// 100-per-10-seconds and search 4-per-second limits (enforced and counted), injectable 429s
// and 5xx, and a Date header.
//
// Tests, the demo and the benchmarks use it. It serves tens of thousands of records quickly
// (binary-searched indexes, no per-request full scans on the sync paths) and is safe for
// concurrent use.
package hubspottest

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options configure a fake portal. Zero fields take HubSpot's documented values.
type Options struct {
	// PortalID is the hub id (default 4242).
	PortalID int64
	// Now is the portal's clock: modification stamps, token expiry and the Date header
	// (default time.Now). Advance adds to it.
	Now func() time.Time
	// BurstLimit requests per BurstInterval (default 100 per 10 s), counted per portal.
	BurstLimit    int
	BurstInterval time.Duration
	// SearchPerSecond is the search endpoints' limit (default 4).
	SearchPerSecond int
	// DailyLimit is the daily budget reported to private-app tokens (default 250,000).
	DailyLimit int
	// AccessTokenTTL is the life of OAuth access tokens (default 30 min).
	AccessTokenTTL time.Duration
	// RotateRefreshTokens makes each refresh return a new refresh token and retire the old
	// one (reusing a retired one is refused with invalid_grant).
	RotateRefreshTokens bool
	// Seed seeds the fake's randomness (faults and generated data); 0 picks 1.
	Seed uint64
}

// Server is a fake HubSpot portal listening on a local port.
type Server struct {
	// URL is the API base URL (pass it as hubspot.Config.BaseURL).
	URL      string
	PortalID int64

	opts Options
	http *httptest.Server

	mu      sync.Mutex
	offset  time.Duration
	rng     *rand.Rand
	nextID  int64
	objects map[string]*objectStore
	owners  []*owner
	pipes   []*pipelineDef

	tokens tokenTable
	limits limitState
	faults Faults
	queued []Failure
	stats  Stats
}

// Stats are the fake's counters.
type Stats struct {
	// Requests counts API requests (the token endpoint excluded), answered or refused.
	Requests int
	// SearchRequests counts POST …/search requests.
	SearchRequests int
	// BurstViolations and SearchViolations count requests refused because the client went
	// over the limits (a well-behaved client keeps both at 0).
	BurstViolations  int
	SearchViolations int
	// InjectedRateLimits and InjectedServerErrors count faults from SetFaults and FailNext.
	InjectedRateLimits   int
	InjectedServerErrors int
	// Unauthorized counts requests refused for their credentials.
	Unauthorized int
	// TokenRequests and TokenRefreshes count calls to /oauth/v1/token and successful refreshes.
	TokenRequests  int
	TokenRefreshes int
	// ServeTime is the time spent in handlers (decoding, querying, encoding): the fake's
	// own cost, to report beside a client's throughput.
	ServeTime time.Duration
	// Statuses counts the answers by HTTP status (400 = a request the API refuses, such as
	// paging past 10,000 search results).
	Statuses map[int]int
}

// Faults make a share of API responses fail. Shares are probabilities in 0..1.
type Faults struct {
	// RateLimited is the share answered 429 with a SECONDLY policy body.
	RateLimited float64
	// RetryAfterShare is the share of those 429s that carry Retry-After.
	RetryAfterShare float64
	// RetryAfter is the Retry-After value sent (whole seconds, default 1 s).
	RetryAfter time.Duration
	// ServerErrors is the share answered 500, 502, 503 or 504.
	ServerErrors float64
}

// Failure is one scripted answer for FailNext.
type Failure struct {
	// Status is the HTTP status (429, 401, 500 …). 200 serves Body as a successful answer
	// (malformed payloads).
	Status int
	// RetryAfter, when positive, is sent as Retry-After (whole seconds).
	RetryAfter time.Duration
	// Daily makes a 429 report the DAILY policy.
	Daily bool
	// Body replaces the default body for Status.
	Body string
}

// New starts a fake portal. Close it when done.
func New(opts Options) *Server {
	if opts.PortalID == 0 {
		opts.PortalID = 4242
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.BurstLimit == 0 {
		opts.BurstLimit = 100
	}
	if opts.BurstInterval == 0 {
		opts.BurstInterval = 10 * time.Second
	}
	if opts.SearchPerSecond == 0 {
		opts.SearchPerSecond = 4
	}
	if opts.DailyLimit == 0 {
		opts.DailyLimit = 250_000
	}
	if opts.AccessTokenTTL == 0 {
		opts.AccessTokenTTL = 30 * time.Minute
	}
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	s := &Server{
		PortalID: opts.PortalID,
		opts:     opts,
		rng:      rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)),
		nextID:   1000,
		objects:  make(map[string]*objectStore),
		tokens:   newTokenTable(),
	}
	for _, t := range objectTypes {
		s.objects[t.name] = newObjectStore(t)
	}
	s.pipes = defaultPipelines(s.now())
	s.limits.dailyRemaining = opts.DailyLimit
	s.http = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	s.URL = s.http.URL
	return s
}

// Close shuts the server down.
func (s *Server) Close() { s.http.Close() }

// Client returns an *http.Client that reaches the server (any client does; this one is
// tied to its lifetime).
func (s *Server) Client() *http.Client { return s.http.Client() }

// Now is the portal's clock.
func (s *Server) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now()
}

func (s *Server) now() time.Time { return s.opts.Now().Add(s.offset).UTC() }

// Advance moves the portal's clock forward by d (expiring tokens, aging stamps).
func (s *Server) Advance(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offset += d
}

// SetFaults sets the random fault rates of API responses.
func (s *Server) SetFaults(f Faults) {
	if f.RetryAfter <= 0 {
		f.RetryAfter = time.Second
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
}

// FailNext answers the next n API requests (the token endpoint excluded) with f.
func (s *Server) FailNext(n int, f Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.queued = append(s.queued, f)
	}
}

// SetDailyRemaining sets what is left of the daily budget (0 refuses with a DAILY 429).
func (s *Server) SetDailyRemaining(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limits.dailyRemaining = n
}

// Stats returns the counters so far.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Statuses = maps.Clone(s.stats.Statuses)
	return st
}

// ResetStats zeroes the counters.
func (s *Server) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats = Stats{}
}

// statusRecorder remembers the status a handler answered.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}

func (s *Server) serveHTTP(rw http.ResponseWriter, r *http.Request) {
	start := time.Now()
	w := &statusRecorder{ResponseWriter: rw, status: http.StatusOK}
	defer func() {
		s.mu.Lock()
		s.stats.ServeTime += time.Since(start)
		if s.stats.Statuses == nil {
			s.stats.Statuses = make(map[int]int)
		}
		s.stats.Statuses[w.status]++
		s.mu.Unlock()
	}()
	w.Header().Set("Date", s.Now().Format(http.TimeFormat))
	if r.URL.Path == "/oauth/v1/token" {
		s.serveToken(w, r)
		return
	}
	if strings.HasPrefix(r.URL.Path, "/oauth/v1/refresh-tokens/") && r.Method == http.MethodDelete {
		s.RevokeRefreshToken(strings.TrimPrefix(r.URL.Path, "/oauth/v1/refresh-tokens/"))
		w.WriteHeader(http.StatusNoContent)
		return
	}
	search := r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/search")
	if !s.admit(w, r, search) {
		return
	}
	s.route(w, r, search)
}

// admit authenticates the request, applies the rate limits, scripted failures and random
// faults, and sets the rate-limit headers. It reports whether the request may be served.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, search bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Requests++
	if search {
		s.stats.SearchRequests++
	}
	kind, authErr := s.tokens.authenticate(r.Header.Get("Authorization"), s.now())
	if authErr != nil {
		s.stats.Unauthorized++
		writeError(w, http.StatusUnauthorized, authErr.category, authErr.message)
		return false
	}

	if kind == privateAppToken && s.limits.dailyRemaining <= 0 {
		s.stats.InjectedRateLimits++
		writeRateLimited(w, "DAILY", "You have reached your daily limit.", 0)
		return false
	}
	now := time.Now()
	burstOK, searchOK := s.limits.check(now, search, s.opts)
	switch {
	case !burstOK:
		s.stats.BurstViolations++
		writeRateLimited(w, "SECONDLY", "You have reached your ten_secondly_rolling limit.", 0)
		return false
	case !searchOK:
		s.stats.SearchViolations++
		writeRateLimited(w, "SECONDLY", "You have reached your secondly limit.", 0)
		return false
	}
	s.limits.record(now, search)
	if kind == privateAppToken {
		s.limits.dailyRemaining--
	}
	if !search {
		h := w.Header()
		h.Set("X-HubSpot-RateLimit-Max", strconv.Itoa(s.opts.BurstLimit))
		h.Set("X-HubSpot-RateLimit-Remaining", strconv.Itoa(max(0, s.opts.BurstLimit-s.limits.burstCount(now, s.opts))))
		h.Set("X-HubSpot-RateLimit-Interval-Milliseconds", strconv.FormatInt(s.opts.BurstInterval.Milliseconds(), 10))
		if kind == privateAppToken {
			h.Set("X-HubSpot-RateLimit-Daily", strconv.Itoa(s.opts.DailyLimit))
			h.Set("X-HubSpot-RateLimit-Daily-Remaining", strconv.Itoa(max(0, s.limits.dailyRemaining)))
		}
	}

	if len(s.queued) > 0 {
		f := s.queued[0]
		s.queued = s.queued[1:]
		s.writeFailure(w, f)
		return false
	}
	switch p := s.rng.Float64(); {
	case p < s.faults.RateLimited:
		s.stats.InjectedRateLimits++
		var retryAfter time.Duration
		if s.rng.Float64() < s.faults.RetryAfterShare {
			retryAfter = s.faults.RetryAfter
		}
		writeRateLimited(w, "SECONDLY", "You have reached your secondly limit.", retryAfter)
		return false
	case p < s.faults.RateLimited+s.faults.ServerErrors:
		s.stats.InjectedServerErrors++
		status := []int{500, 502, 503, 504}[s.rng.IntN(4)]
		writeError(w, status, "INTERNAL_ERROR", "internal error (injected by hubspottest)")
		return false
	}
	return true
}

func (s *Server) writeFailure(w http.ResponseWriter, f Failure) {
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(f.RetryAfter.Round(time.Second)/time.Second)))
	}
	switch {
	case f.Status == http.StatusTooManyRequests:
		s.stats.InjectedRateLimits++
	case f.Status >= 500:
		s.stats.InjectedServerErrors++
	}
	if f.Body != "" {
		w.Header().Set("Content-Type", "application/json;charset=utf-8")
		w.WriteHeader(f.Status)
		_, _ = w.Write([]byte(f.Body))
		return
	}
	switch {
	case f.Status == http.StatusTooManyRequests && f.Daily:
		writeRateLimited(w, "DAILY", "You have reached your daily limit.", 0)
	case f.Status == http.StatusTooManyRequests:
		writeRateLimited(w, "SECONDLY", "You have reached your secondly limit.", 0)
	case f.Status == http.StatusUnauthorized:
		writeError(w, f.Status, "INVALID_AUTHENTICATION", "Authentication credentials not found.")
	default:
		writeError(w, f.Status, "ERROR", fmt.Sprintf("scripted failure %d (hubspottest)", f.Status))
	}
}

func (s *Server) route(w http.ResponseWriter, r *http.Request, search bool) {
	path := strings.TrimSuffix(r.URL.Path, "/")
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	switch {
	case path == "/crm/v3/owners" && r.Method == http.MethodGet:
		s.serveOwners(w, r)
	case path == "/crm/v3/pipelines/deals" && r.Method == http.MethodGet:
		s.servePipelines(w)
	case len(parts) == 5 && parts[0] == "crm" && parts[1] == "v3" && parts[2] == "objects" && search:
		s.serveSearch(w, r, parts[3])
	case len(parts) == 6 && parts[0] == "crm" && parts[1] == "v3" && parts[2] == "objects" && parts[4] == "batch" &&
		parts[5] == "read" && r.Method == http.MethodPost:
		s.serveBatchRead(w, r, parts[3])
	case len(parts) == 4 && parts[0] == "crm" && parts[1] == "v3" && parts[2] == "objects" && r.Method == http.MethodGet:
		s.serveList(w, r, parts[3])
	case len(parts) == 7 && parts[0] == "crm" && parts[1] == "v4" && parts[2] == "associations" &&
		parts[5] == "batch" && parts[6] == "read" && r.Method == http.MethodPost:
		s.serveAssociations(w, r, parts[3], parts[4])
	default:
		writeError(w, http.StatusNotFound, "OBJECT_NOT_FOUND", fmt.Sprintf("Unable to route %s %s", r.Method, r.URL.Path))
	}
}

// limitState holds the request times of the rolling windows.
type limitState struct {
	burst          []time.Time
	search         []time.Time
	dailyRemaining int
}

func prune(times []time.Time, since time.Time) []time.Time {
	i := 0
	for i < len(times) && !times[i].After(since) {
		i++
	}
	return times[i:]
}

// check reports whether one more request fits the burst window and, for searches, the
// search window.
func (l *limitState) check(now time.Time, search bool, o Options) (burstOK, searchOK bool) {
	l.burst = prune(l.burst, now.Add(-o.BurstInterval))
	l.search = prune(l.search, now.Add(-time.Second))
	burstOK = len(l.burst) < o.BurstLimit
	searchOK = !search || len(l.search) < o.SearchPerSecond
	return burstOK, searchOK
}

// record counts an admitted request. Searches count against both windows.
func (l *limitState) record(now time.Time, search bool) {
	l.burst = append(l.burst, now)
	if search {
		l.search = append(l.search, now)
	}
}

func (l *limitState) burstCount(now time.Time, o Options) int {
	l.burst = prune(l.burst, now.Add(-o.BurstInterval))
	return len(l.burst)
}

// errorBody is HubSpot's error shape.
type errorBody struct {
	Status        string `json:"status"`
	Message       string `json:"message"`
	CorrelationID string `json:"correlationId"`
	Category      string `json:"category,omitempty"`
	ErrorType     string `json:"errorType,omitempty"`
	PolicyName    string `json:"policyName,omitempty"`
}

func writeError(w http.ResponseWriter, status int, category, message string) {
	writeJSON(w, status, errorBody{Status: "error", Message: message, CorrelationID: correlationID(), Category: category})
}

func writeRateLimited(w http.ResponseWriter, policy, message string, retryAfter time.Duration) {
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(retryAfter.Round(time.Second)/time.Second)))
	}
	writeJSON(w, http.StatusTooManyRequests, errorBody{
		Status: "error", Message: message, CorrelationID: correlationID(), ErrorType: "RATE_LIMIT", PolicyName: policy,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeRaw(w, status, body)
}

func writeRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func correlationID() string {
	return fmt.Sprintf("%08x-%04x-4%03x-a%03x-%012x", rand.Uint32(), rand.Uint32N(1<<16), rand.Uint32N(1<<12),
		rand.Uint32N(1<<12), rand.Uint64N(1<<48))
}
