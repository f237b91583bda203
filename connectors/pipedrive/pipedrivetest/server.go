// Package pipedrivetest is an in-process fake of the Pipedrive API for tests and the demo.
//
// It follows the contract in docs/vendors.md §3 and the official v2 OpenAPI spec: v2 list
// endpoints (deals, deals/archived, persons, organizations, activities, stages, pipelines)
// with cursor paging (limit ≤ 500, additional_data.next_cursor null at the end),
// updated_since/updated_until, sort_by/sort_direction and the deals status filter including
// deleted deals (purged 30 days after deletion); v1 users (not paged) and leads (offset paging
// with additional_data.pagination); authentication by the x-api-token header (v1 also
// ?api_token=) or an OAuth bearer token from POST /oauth/token with Basic client
// authentication and rotated refresh tokens; 401 bodies; the 2-second burst window headers
// and 429 "Request over limit" bodies; a daily token budget; injectable 429/5xx faults; a
// mutation API to change data between syncs; and generators of realistic accounts.
//
// A Server is safe for concurrent use. Record times come from Options.Now, so tests control
// the vendor clock; the burst window and access-token expiry use the real clock, like the
// clients that wait on them.
package pipedrivetest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mathrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options configure a Server. The zero value serves an empty account that accepts no
// credentials; set APIToken and/or the OAuth fields.
type Options struct {
	// APIToken is the accepted API token: the x-api-token header (v1 and v2) or, for v1
	// only, the api_token query parameter.
	APIToken string
	// ClientID and ClientSecret authenticate POST /oauth/token (HTTP Basic). RefreshToken is
	// the grant's current refresh token; each refresh rotates it.
	ClientID, ClientSecret, RefreshToken string
	// AccessTokenTTL is the lifetime of issued access tokens (default 1h).
	AccessTokenTTL time.Duration
	// Scope is the scope string of issued tokens (default: every read scope the sync needs).
	Scope string

	// Now is the vendor clock for record times, the 30-day purge of deleted deals and the
	// daily budget's reset at UTC midnight (default time.Now).
	Now func() time.Time

	// BurstLimit is the requests allowed per credential per 2-second window, sent as
	// x-ratelimit-limit (default 80: the Professional plan with an api_token).
	BurstLimit int
	// OmitRetryAfter leaves Retry-After off 429 responses (the docs do not promise it).
	OmitRetryAfter bool
	// DailyBudget is the account's daily token budget (0 = unlimited). Requests cost the
	// spec's x-token-cost (v2 lists 10, stages and pipelines 5, archived deals 20; v1 lists 20).
	DailyBudget int

	// Seed makes generated data and injected faults reproducible.
	Seed uint64
}

// Request is one request the server received, for assertions.
type Request struct {
	Method string
	Path   string
	// Query is the query string with any api_token value redacted.
	Query url.Values
	// Auth is "token", "bearer", "query_token" (v1 ?api_token=) or "" (none).
	Auth   string
	Status int
}

// Faults are injected failures, drawn per API request before it is served.
type Faults struct {
	// Rate429 is the share of requests answered 429 "Request over limit".
	Rate429 float64
	// Rate5xx is the share of requests answered 500, 502 or 503.
	Rate5xx float64
}

// Server is a running fake. Close it when done.
type Server struct {
	opts Options
	http *httptest.Server

	mu            sync.RWMutex
	users         map[int]*User
	pipelines     *table[*Pipeline]
	stages        *table[*Stage]
	organizations *table[*Organization]
	persons       *table[*Person]
	deals         *table[*Deal]
	activities    *table[*Activity]
	dealActivity  map[int]map[int]*Activity // deal id → its activities
	leads         map[string]*Lead
	leadsVersion  uint64
	leadViews     leadViews
	nextID        int
	rng           *mathrand.Rand

	// authMu guards the OAuth grant, the burst windows, the budget, faults and the request log.
	authMu       sync.Mutex
	refreshToken string
	accessTokens map[string]time.Time // token → expiry (real clock)
	windows      map[string]*burstWindow
	budgetDay    string
	budgetUsed   int
	faults       Faults
	failNext     []injected
	faultRNG     *mathrand.Rand
	requests     []Request
}

type burstWindow struct {
	start time.Time
	count int
}

const burstWindowLength = 2 * time.Second

// NewServer starts a fake Pipedrive. Its URL serves as both the API base (the connector
// appends /api/v2/… and /v1/…) and the OAuth server (POST URL/oauth/token), and it is the
// api_domain of the tokens it issues.
func NewServer(opts Options) *Server {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.BurstLimit <= 0 {
		opts.BurstLimit = 80
	}
	if opts.AccessTokenTTL <= 0 {
		opts.AccessTokenTTL = time.Hour
	}
	if opts.Scope == "" {
		opts.Scope = "base deals:read contacts:read leads:read activities:read users:read"
	}
	s := &Server{
		opts: opts,
		pipelines: newTable[*Pipeline](map[string]sortKey[*Pipeline]{
			"order_nr": func(p *Pipeline) int64 { return int64(p.OrderNr) },
		}),
		stages: newTable[*Stage](map[string]sortKey[*Stage]{
			"order_nr": func(s *Stage) int64 { return int64(s.OrderNr) },
		}),
		organizations: newTable[*Organization](nil),
		persons:       newTable[*Person](nil),
		deals:         newTable[*Deal](nil),
		activities: newTable[*Activity](map[string]sortKey[*Activity]{
			"due_date": func(a *Activity) int64 { return a.due().Unix() },
		}),
		users:        make(map[int]*User),
		dealActivity: make(map[int]map[int]*Activity),
		leads:        make(map[string]*Lead),
		rng:          mathrand.New(mathrand.NewPCG(opts.Seed, 0x5eed)),
		faultRNG:     mathrand.New(mathrand.NewPCG(opts.Seed, 0xfa17)),
		refreshToken: opts.RefreshToken,
		accessTokens: make(map[string]time.Time),
		windows:      make(map[string]*burstWindow),
	}
	s.http = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	return s
}

// URL is the server's base URL (no trailing slash).
func (s *Server) URL() string { return s.http.URL }

// Client returns an HTTP client for the server (plain; the connector's chain wraps its own).
func (s *Server) Client() *http.Client { return s.http.Client() }

// Close stops the server.
func (s *Server) Close() { s.http.Close() }

// SetFaults sets the injected failure rates (zero Faults turns injection off).
func (s *Server) SetFaults(f Faults) {
	s.authMu.Lock()
	defer s.authMu.Unlock()
	s.faults = f
}

// injected is a failure queued for the next request.
type injected struct {
	status     int
	retryAfter time.Duration // 0: no Retry-After header
}

// FailNext answers the next len(statuses) API requests with these statuses, before any
// other check: 429 gets the "Request over limit" body (with Retry-After: 1 unless
// Options.OmitRetryAfter), 401 the "unauthorized access" body, others a server error body.
func (s *Server) FailNext(statuses ...int) {
	s.authMu.Lock()
	defer s.authMu.Unlock()
	for _, st := range statuses {
		f := injected{status: st}
		if !s.opts.OmitRetryAfter {
			f.retryAfter = time.Second
		}
		s.failNext = append(s.failNext, f)
	}
}

// FailNextWithRetryAfter answers the next n API requests with status and, when retryAfter
// is positive, a Retry-After header of that many seconds.
func (s *Server) FailNextWithRetryAfter(n, status int, retryAfter time.Duration) {
	s.authMu.Lock()
	defer s.authMu.Unlock()
	for range n {
		s.failNext = append(s.failNext, injected{status: status, retryAfter: retryAfter})
	}
}

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.authMu.Lock()
	defer s.authMu.Unlock()
	return append([]Request(nil), s.requests...)
}

// RequestCount counts the requests received for path (e.g. "/api/v2/deals"), any status.
func (s *Server) RequestCount(path string) int {
	s.authMu.Lock()
	defer s.authMu.Unlock()
	n := 0
	for _, r := range s.requests {
		if r.Path == path {
			n++
		}
	}
	return n
}

// ResetRequests forgets the request log.
func (s *Server) ResetRequests() {
	s.authMu.Lock()
	defer s.authMu.Unlock()
	s.requests = nil
}

// RefreshToken is the grant's current refresh token (it rotates on every refresh).
func (s *Server) RefreshToken() string {
	s.authMu.Lock()
	defer s.authMu.Unlock()
	return s.refreshToken
}

// RevokeAccessTokens invalidates every issued access token, as a revoked grant or a
// password change does; the refresh token stays valid.
func (s *Server) RevokeAccessTokens() {
	s.authMu.Lock()
	defer s.authMu.Unlock()
	clear(s.accessTokens)
}

// BudgetUsed is the number of daily budget tokens spent today (vendor clock, UTC).
func (s *Server) BudgetUsed() int {
	s.authMu.Lock()
	defer s.authMu.Unlock()
	if s.budgetDay != s.opts.Now().UTC().Format(time.DateOnly) {
		return 0
	}
	return s.budgetUsed
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Date", s.opts.Now().UTC().Format(http.TimeFormat))
	if r.URL.Path == "/oauth/token" {
		s.serveToken(w, r)
		return
	}
	// The response is buffered so the request is logged before the client can see any of it.
	rec := httptest.NewRecorder()
	auth := s.serveAPI(rec, r)
	query := r.URL.Query()
	if query.Has("api_token") {
		query.Set("api_token", "REDACTED")
	}
	s.authMu.Lock()
	s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Query: query, Auth: auth, Status: rec.Code})
	s.authMu.Unlock()
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// endpoint is a served API path.
type endpoint struct {
	cost  int
	v1    bool
	serve func(s *Server, w http.ResponseWriter, q url.Values)
}

var endpoints = map[string]endpoint{
	"/api/v2/deals":          {cost: 10, serve: dealsLister(false)},
	"/api/v2/deals/archived": {cost: 20, serve: dealsLister(true)},
	"/api/v2/persons":        {cost: 10, serve: (*Server).listPersons},
	"/api/v2/organizations":  {cost: 10, serve: (*Server).listOrganizations},
	"/api/v2/activities":     {cost: 10, serve: (*Server).listActivities},
	"/api/v2/stages":         {cost: 5, serve: (*Server).listStages},
	"/api/v2/pipelines":      {cost: 5, serve: (*Server).listPipelines},
	"/v1/users":              {cost: 20, v1: true, serve: (*Server).listUsers},
	"/api/v1/users":          {cost: 20, v1: true, serve: (*Server).listUsers},
	"/v1/leads":              {cost: 20, v1: true, serve: (*Server).listLeads},
	"/api/v1/leads":          {cost: 20, v1: true, serve: (*Server).listLeads},
}

// serveAPI authenticates, rate-limits and serves one API request; it returns how the
// request authenticated.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) string {
	ep, ok := endpoints[r.URL.Path]
	if !ok {
		writeError(w, http.StatusNotFound, "Unknown method .", "")
		return ""
	}
	if r.Method != http.MethodGet {
		writeError(w, http.StatusMethodNotAllowed, "Method not allowed", "")
		return ""
	}
	if f, ok := s.injectedFault(); ok {
		s.writeFault(w, f)
		return ""
	}
	credential, auth := s.authenticate(r, ep.v1)
	if credential == "" {
		writeError(w, http.StatusUnauthorized, "unauthorized access", "Please check developers.pipedrive.com")
		return auth
	}
	if !s.admit(w, credential, ep.cost) {
		return auth
	}
	ep.serve(s, w, r.URL.Query())
	return auth
}

func (s *Server) injectedFault() (injected, bool) {
	s.authMu.Lock()
	defer s.authMu.Unlock()
	if len(s.failNext) > 0 {
		f := s.failNext[0]
		s.failNext = s.failNext[1:]
		return f, true
	}
	x := s.faultRNG.Float64()
	switch {
	case x < s.faults.Rate429:
		f := injected{status: http.StatusTooManyRequests}
		if !s.opts.OmitRetryAfter {
			f.retryAfter = time.Second
		}
		return f, true
	case x < s.faults.Rate429+s.faults.Rate5xx:
		codes := []int{http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable}
		return injected{status: codes[s.faultRNG.IntN(len(codes))]}, true
	}
	return injected{}, false
}

func (s *Server) writeFault(w http.ResponseWriter, f injected) {
	switch f.status {
	case http.StatusTooManyRequests:
		h := w.Header()
		h.Set("x-ratelimit-limit", strconv.Itoa(s.opts.BurstLimit))
		h.Set("x-ratelimit-remaining", "0")
		h.Set("x-ratelimit-reset", "1")
		if f.retryAfter > 0 {
			h.Set("Retry-After", strconv.Itoa(int(f.retryAfter.Round(time.Second)/time.Second)))
		}
		writeError(w, f.status, "Request over limit", "Please check developers.pipedrive.com")
	case http.StatusUnauthorized:
		writeError(w, f.status, "unauthorized access", "Please check developers.pipedrive.com")
	default:
		writeError(w, f.status, http.StatusText(f.status), "Please try again later")
	}
}

// authenticate returns the credential the request presented ("" if none was valid) and how
// it was presented.
func (s *Server) authenticate(r *http.Request, v1 bool) (credential, how string) {
	if tok := r.Header.Get("x-api-token"); tok != "" {
		if s.opts.APIToken != "" && tok == s.opts.APIToken {
			return "token:" + tok, "token"
		}
		return "", "token"
	}
	if bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		s.authMu.Lock()
		expiry, known := s.accessTokens[bearer]
		s.authMu.Unlock()
		if known && time.Now().Before(expiry) {
			return "bearer:" + bearer, "bearer"
		}
		return "", "bearer"
	}
	if tok := r.URL.Query().Get("api_token"); tok != "" && v1 {
		if s.opts.APIToken != "" && tok == s.opts.APIToken {
			return "token:" + tok, "query_token"
		}
		return "", "query_token"
	}
	return "", ""
}

// admit applies the burst window and the daily budget and sets the rate-limit headers. It
// writes the 429 and returns false when the request is over a limit.
func (s *Server) admit(w http.ResponseWriter, credential string, cost int) bool {
	s.authMu.Lock()
	defer s.authMu.Unlock()
	now := time.Now()
	win := s.windows[credential]
	if win == nil || now.Sub(win.start) >= burstWindowLength {
		win = &burstWindow{start: now}
		s.windows[credential] = win
	}
	win.count++
	reset := max(1, int((burstWindowLength-now.Sub(win.start)+time.Second-1)/time.Second))
	h := w.Header()
	h.Set("x-ratelimit-limit", strconv.Itoa(s.opts.BurstLimit))
	h.Set("x-ratelimit-remaining", strconv.Itoa(max(0, s.opts.BurstLimit-win.count)))
	h.Set("x-ratelimit-reset", strconv.Itoa(reset))
	if win.count > s.opts.BurstLimit {
		if !s.opts.OmitRetryAfter {
			h.Set("Retry-After", strconv.Itoa(reset))
		}
		writeError(w, http.StatusTooManyRequests, "Request over limit", "Please check developers.pipedrive.com")
		return false
	}

	if s.opts.DailyBudget > 0 {
		vendorNow := s.opts.Now().UTC()
		if day := vendorNow.Format(time.DateOnly); day != s.budgetDay {
			s.budgetDay, s.budgetUsed = day, 0
		}
		if s.budgetUsed+cost > s.opts.DailyBudget {
			midnight := vendorNow.Truncate(24 * time.Hour).Add(24 * time.Hour)
			if !s.opts.OmitRetryAfter {
				h.Set("Retry-After", strconv.Itoa(int(midnight.Sub(vendorNow).Seconds())))
			}
			writeError(w, http.StatusTooManyRequests, "Daily API token budget exceeded",
				"The company's daily token budget is used up; it resets at midnight UTC")
			return false
		}
		s.budgetUsed += cost
	}
	return true
}

// errorBody is Pipedrive's error envelope.
type errorBody struct {
	Success   bool   `json:"success"`
	Error     string `json:"error"`
	ErrorCode int    `json:"errorCode"`
	ErrorInfo string `json:"error_info,omitempty"`
}

func writeError(w http.ResponseWriter, status int, msg, info string) {
	writeJSON(w, status, errorBody{Success: false, Error: msg, ErrorCode: status, ErrorInfo: info})
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// serveToken is POST /oauth/token: refresh_token grants with HTTP Basic client auth.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	oauthError := func(status int, code, desc string) {
		writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
	}
	if r.Method != http.MethodPost {
		oauthError(http.StatusMethodNotAllowed, "invalid_request", "POST required")
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok || s.opts.ClientID == "" || id != s.opts.ClientID || secret != s.opts.ClientSecret {
		oauthError(http.StatusUnauthorized, "invalid_client", "Invalid client credentials")
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthError(http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != "refresh_token" {
		oauthError(http.StatusBadRequest, "unsupported_grant_type", fmt.Sprintf("grant_type %q is not supported", gt))
		return
	}
	s.authMu.Lock()
	defer s.authMu.Unlock()
	if rt := r.PostForm.Get("refresh_token"); rt == "" || rt != s.refreshToken {
		oauthError(http.StatusBadRequest, "invalid_grant", "Invalid refresh token")
		return
	}
	access, refresh := randomToken(), randomToken()
	s.accessTokens[access] = time.Now().Add(s.opts.AccessTokenTTL)
	s.refreshToken = refresh
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token":  access,
		"token_type":    "Bearer",
		"refresh_token": refresh,
		"scope":         s.opts.Scope,
		"expires_in":    int(s.opts.AccessTokenTTL.Seconds()),
		"api_domain":    s.http.URL,
	})
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
