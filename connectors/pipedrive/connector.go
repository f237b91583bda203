// Package pipedrive reads a Pipedrive account into pipewatch's normalized model.
//
// Streams and endpoints (docs/vendors.md §3):
//
//	owners         GET /v1/users (not paged)                          → owners
//	pipelines      GET /api/v2/pipelines                              → pipelines
//	stages         GET /api/v2/stages                                 → stages (rot_days, canonical defaults)
//	accounts       GET /api/v2/organizations                          → accounts
//	contacts       GET /api/v2/persons                                → contacts
//	leads          GET /v1/leads (offset paging)                      → leads
//	deals          GET /api/v2/deals (+ /deals/archived in Full mode) → deals
//	deleted_deals  GET /api/v2/deals?status=deleted                   → deletions of deals
//	activities     GET /api/v2/activities                             → activities
//
// Incremental v2 streams read windows of update_time, lo = high-water − Lookback and
// hi = min(SyncStart, vendor now − Lag) (updated_since/updated_until, sorted by update_time
// ascending), following the vendor's next_cursor within a window, so records sharing a
// timestamp at a page boundary are never lost. The stored high-water mark is the greatest
// update_time actually read. The overlap a window re-reads is remembered in the cursor, so
// unchanged records are not emitted twice. "Vendor now" is our clock corrected by the skew
// seen in the Date header of the vendor's responses.
//
// Leads have no v1 time filter: the incremental read scans them newest first
// (sort=update_time DESC) and stops below the window; the scan detects offsets shifted by
// concurrent changes and backs up, so nothing is skipped.
//
// Deleted deals stay listable with status=deleted for 30 days, then Pipedrive purges them.
// deleted_deals therefore lists that whole set on every run (it is bounded by the deletion
// rate, not the account size), and a Full read of deals (a reconciliation) catches anything
// older; the engine must reconcile deals well inside those 30 days.
//
// A deal's last and next activity: v2 deals carry only their ids
// (include_fields=last_activity_id,next_activity_id), so each deals page resolves them with
// one GET /api/v2/activities?ids=… per 100 ids; the activity's due time (UTC) is the deal's
// last_activity_at / next_activity_at. Incremental reads keep them current as long as a
// change of a deal's last or next activity bumps the deal's update_time, as Pipedrive's
// deal-level activity fields suggest (⚠ unconfirmed); the activities stream carries every
// activity with its deal regardless, and a Full read refreshes them.
//
// Deals: Pipedrive has no won/lost stages, so a closed deal keeps its last stage and
// is_closed/is_won come from its status; stage_change_time (else add_time) is when it
// entered its stage, also emitted as the vendor's stage entry. value is kept exact.
//
// Rate limits: RateLimits describes Pipedrive's 2-second burst window and its daily token
// budget to the shared HTTP chain (connectors.NewHTTPClient).
package pipedrive

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"

	"github.com/pipewatch/pipewatch/connectors"
	"github.com/pipewatch/pipewatch/pipeline"
)

// DefaultBaseURL is Pipedrive's API root for API-token access.
const DefaultBaseURL = "https://api.pipedrive.com"

// Defaults of Config.
const (
	DefaultLookback = 5 * time.Minute
	DefaultLag      = time.Minute
	MaxPageSize     = 500
)

// Config configures a Connector.
type Config struct {
	// BaseURL is the API root: https://api.pipedrive.com (the default) or, with OAuth, the
	// api_domain of the token response (https://<company>.pipedrive.com). The connector
	// appends /api/v2/… and /v1/… (/api/v1/… on an api_domain).
	BaseURL string
	// BaseURLFunc, when set and BaseURL is empty, is called before the first request to
	// learn the API root: with OAuth, the api_domain of the token response (APIDomain).
	// Its answer is kept for the connector's life.
	BaseURLFunc func(ctx context.Context) (string, error)
	// APIToken, when set, is sent as the x-api-token header on every request (v1 and v2;
	// never as a query parameter). Leave it empty when the HTTP client carries OAuth.
	APIToken string
	// CompanyDomain is the account's subdomain ("acme" for acme.pipedrive.com), used for
	// links to deals. Empty: taken from BaseURL when that is an api_domain.
	CompanyDomain string
	// Lookback is how far before the high-water mark each incremental window starts
	// (default 5m), to catch records committed late with an older update_time.
	Lookback time.Duration
	// Lag keeps each window's end this far behind the vendor's now (default 1m).
	Lag time.Duration
	// PageSize is the limit per request (default and maximum 500).
	PageSize int
	// NowFunc is our clock (default time.Now).
	NowFunc func() time.Time
}

var companyLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// Validate reports the first problem with c.
func (c Config) Validate() error {
	if c.BaseURL != "" {
		u, err := url.Parse(c.BaseURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("pipedrive base_url %q is not an http(s) URL", c.BaseURL)
		}
		if u.RawQuery != "" || u.User != nil {
			return fmt.Errorf("pipedrive base_url %q must not carry a query or credentials", u.Redacted())
		}
	}
	if c.CompanyDomain != "" && !companyLabel.MatchString(c.CompanyDomain) {
		return fmt.Errorf("pipedrive company domain %q is not a subdomain name (e.g. \"acme\" for acme.pipedrive.com)", c.CompanyDomain)
	}
	if c.Lookback < 0 || c.Lag < 0 {
		return errors.New("pipedrive lookback and lag must not be negative")
	}
	if c.PageSize < 0 || c.PageSize > MaxPageSize {
		return fmt.Errorf("pipedrive page size %d is outside 1–%d", c.PageSize, MaxPageSize)
	}
	return nil
}

// Connector reads one Pipedrive account. It is safe for concurrent use.
type Connector struct {
	cfg Config
	hc  *http.Client
	// skew is the vendor clock minus ours (nanoseconds), from the last Date header.
	skew atomic.Int64

	mu sync.Mutex
	// v1 and v2 are the API roots of the two versions ("" until resolved); company is the
	// account's subdomain for deal links.
	v1, v2, company string
}

var _ connectors.Connector = (*Connector)(nil)

// New returns a Connector that sends its requests through hc, the shared HTTP client chain
// (connectors.NewHTTPClient with RateLimits()).
func New(cfg Config, hc *http.Client) (*Connector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if hc == nil {
		return nil, errors.New("pipedrive: an HTTP client is required")
	}
	if cfg.Lookback == 0 {
		cfg.Lookback = DefaultLookback
	}
	if cfg.Lag == 0 {
		cfg.Lag = DefaultLag
	}
	if cfg.PageSize == 0 {
		cfg.PageSize = MaxPageSize
	}
	if cfg.NowFunc == nil {
		cfg.NowFunc = time.Now
	}
	c := &Connector{cfg: cfg, hc: hc, company: cfg.CompanyDomain}
	if cfg.BaseURL != "" || cfg.BaseURLFunc == nil {
		c.setBase(cmp.Or(cfg.BaseURL, DefaultBaseURL))
	}
	return c, nil
}

// setBase sets the API roots from baseURL. Callers hold c.mu or own c.
func (c *Connector) setBase(baseURL string) {
	baseURL = strings.TrimRight(baseURL, "/")
	c.v2, c.v1 = baseURL+"/api/v2", baseURL+"/api/v1"
	if baseURL == DefaultBaseURL {
		c.v1 = baseURL + "/v1"
	}
	if c.company == "" {
		if u, err := url.Parse(baseURL); err == nil {
			if sub, ok := strings.CutSuffix(u.Hostname(), ".pipedrive.com"); ok && sub != "api" && companyLabel.MatchString(sub) {
				c.company = sub
			}
		}
	}
}

// roots returns the API roots, asking BaseURLFunc on first use.
func (c *Connector) roots(ctx context.Context) (v1, v2 string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.v2 == "" {
		base, err := c.cfg.BaseURLFunc(ctx)
		if err != nil {
			return "", "", fmt.Errorf("finding the account's API domain: %w", err)
		}
		if err := (Config{BaseURL: base}).Validate(); err != nil {
			return "", "", connectors.Permanent(fmt.Errorf("the account's API domain: %w", err))
		}
		c.setBase(base)
	}
	return c.v1, c.v2, nil
}

// DealURL links to a deal in the Pipedrive app ("" when the company domain is unknown).
func (c *Connector) DealURL(externalID string) string {
	c.mu.Lock()
	company := c.company
	c.mu.Unlock()
	if company == "" {
		return ""
	}
	return "https://" + company + ".pipedrive.com/deal/" + url.PathEscape(externalID)
}

// APIDomain returns the api_domain of a Pipedrive OAuth token response ("" when absent):
// the root its API requests go to.
func APIDomain(tok *oauth2.Token) string {
	if tok == nil {
		return ""
	}
	d, _ := tok.Extra("api_domain").(string)
	return d
}

// Stream names.
const (
	StreamOwners       = "owners"
	StreamPipelines    = "pipelines"
	StreamStages       = "stages"
	StreamAccounts     = "accounts"
	StreamContacts     = "contacts"
	StreamLeads        = "leads"
	StreamDeals        = "deals"
	StreamDeletedDeals = "deleted_deals"
	StreamActivities   = "activities"
)

// Streams lists the streams, referenced entities first.
func (c *Connector) Streams() []connectors.Stream {
	return []connectors.Stream{
		{Name: StreamOwners, Entities: []pipeline.Entity{pipeline.EntityOwners}, Reconcile: true},
		{Name: StreamPipelines, Entities: []pipeline.Entity{pipeline.EntityPipelines}, Reconcile: true},
		{Name: StreamStages, Entities: []pipeline.Entity{pipeline.EntityStages}, Reconcile: true},
		{Name: StreamAccounts, Entities: []pipeline.Entity{pipeline.EntityAccounts}, Incremental: true, Reconcile: true},
		{Name: StreamContacts, Entities: []pipeline.Entity{pipeline.EntityContacts}, Incremental: true, Reconcile: true},
		{Name: StreamLeads, Entities: []pipeline.Entity{pipeline.EntityLeads}, Incremental: true, Reconcile: true},
		{Name: StreamDeals, Entities: []pipeline.Entity{pipeline.EntityDeals}, Incremental: true, Reconcile: true},
		{Name: StreamDeletedDeals, Entities: []pipeline.Entity{pipeline.EntityDeals}},
		{Name: StreamActivities, Entities: []pipeline.Entity{pipeline.EntityActivities}, Incremental: true, Reconcile: true},
	}
}

// Read returns the page of req.Stream after req.Cursor.
func (c *Connector) Read(ctx context.Context, req connectors.ReadRequest) (connectors.Page, error) {
	if err := ctx.Err(); err != nil {
		return connectors.Page{}, err
	}
	mode := req.Mode
	if mode == "" {
		mode = connectors.Incremental
	}
	if mode != connectors.Incremental && mode != connectors.Full {
		return connectors.Page{}, connectors.Permanent(fmt.Errorf("pipedrive: unknown read mode %q", req.Mode))
	}
	st, err := decodeState(req.Cursor, mode)
	if err != nil {
		return connectors.Page{}, err
	}
	r := &read{c: c, req: req, mode: mode, st: st}
	var page connectors.Page
	switch req.Stream {
	case StreamOwners:
		page, err = r.owners(ctx)
	case StreamPipelines:
		page, err = r.pipelines(ctx)
	case StreamStages:
		page, err = r.stages(ctx)
	case StreamAccounts:
		page, err = readV2(ctx, r, organizationsSource)
	case StreamContacts:
		page, err = readV2(ctx, r, personsSource)
	case StreamLeads:
		page, err = r.leads(ctx)
	case StreamDeals:
		page, err = readV2(ctx, r, dealsSource)
	case StreamDeletedDeals:
		page, err = r.deletedDeals(ctx)
	case StreamActivities:
		page, err = readV2(ctx, r, activitiesSource)
	default:
		return connectors.Page{}, connectors.Permanent(fmt.Errorf("pipedrive has no stream %q", req.Stream))
	}
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return connectors.Page{}, ctxErr
		}
		// The cursor is left out: the caller knows it, and it can be long.
		return connectors.Page{}, fmt.Errorf("reading pipedrive %s: %w", req.Stream, err)
	}
	return page, nil
}

// read is one Read call.
type read struct {
	c    *Connector
	req  connectors.ReadRequest
	mode connectors.Mode
	st   state
}

// vendorNow is our clock corrected by the skew of the vendor's Date headers.
func (c *Connector) vendorNow() time.Time {
	return c.cfg.NowFunc().Add(time.Duration(c.skew.Load()))
}

// windowEnd is min(SyncStart, vendor now − lag), to the second (the vendor's precision;
// rounding down only defers records to the next window).
func (r *read) windowEnd() time.Time {
	hi := r.c.vendorNow().Add(-r.c.cfg.Lag)
	if !r.req.SyncStart.IsZero() && r.req.SyncStart.Before(hi) {
		hi = r.req.SyncStart
	}
	return hi.UTC().Truncate(time.Second)
}

// windowStart is high-water − lookback (zero: from the beginning).
func (r *read) windowStart() time.Time {
	if r.st.HW.IsZero() {
		return time.Time{}
	}
	return r.st.HW.Add(-r.c.cfg.Lookback).UTC().Truncate(time.Second)
}

// envelope is the body of every Pipedrive response.
type envelope struct {
	Success        *bool             `json:"success"`
	Error          string            `json:"error"`
	Data           []json.RawMessage `json:"data"`
	AdditionalData struct {
		// v2
		NextCursor *string `json:"next_cursor"`
		// v1: documented under pagination; some endpoints put it directly here.
		Pagination *pagination `json:"pagination"`
		pagination
	} `json:"additional_data"`
}

type pagination struct {
	Start                 int  `json:"start"`
	Limit                 int  `json:"limit"`
	MoreItemsInCollection bool `json:"more_items_in_collection"`
	NextStart             *int `json:"next_start"`
}

// v1Pagination returns the pagination block wherever the endpoint put it.
func (e *envelope) v1Pagination() pagination {
	if e.AdditionalData.Pagination != nil {
		return *e.AdditionalData.Pagination
	}
	return e.AdditionalData.pagination
}

// apiVersion selects the v1 or v2 API root.
type apiVersion int

const (
	apiV1 apiVersion = iota
	apiV2
)

// get sends GET <root of version>+path?q and decodes the envelope.
func (c *Connector) get(ctx context.Context, version apiVersion, path string, q url.Values) (*envelope, error) {
	v1Root, v2Root, err := c.roots(ctx)
	if err != nil {
		return nil, err
	}
	u := v2Root + path
	if version == apiV1 {
		u = v1Root + path
	}
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, connectors.Permanent(fmt.Errorf("building request for %s: %w", path, err))
	}
	req.Header.Set("Accept", "application/json")
	if c.cfg.APIToken != "" {
		req.Header.Set("x-api-token", c.cfg.APIToken)
	}
	resp, err := connectors.Do(c.hc, req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	c.observeClock(resp.Header)
	var env envelope
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return nil, fmt.Errorf("decoding the response of GET %s: %w", path, err)
	}
	if env.Success != nil && !*env.Success {
		return nil, fmt.Errorf("GET %s answered success=false: %s", path, env.Error)
	}
	return &env, nil
}

// observeClock records the vendor's clock skew from a Date header.
func (c *Connector) observeClock(h http.Header) {
	d, err := http.ParseTime(h.Get("Date"))
	if err != nil {
		return
	}
	c.skew.Store(int64(d.Sub(c.cfg.NowFunc())))
}

// peekID returns the id of a record that failed to decode, for the skip report.
func peekID(raw json.RawMessage) string {
	var v struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(raw, &v) != nil || len(v.ID) == 0 || string(v.ID) == "null" {
		return ""
	}
	return strings.Trim(string(v.ID), `"`)
}

// skip reports a record that could not be mapped.
func skip(entity pipeline.Entity, raw json.RawMessage, id string, err error) connectors.SkippedRecord {
	if id == "" {
		id = peekID(raw)
	}
	return connectors.SkippedRecord{Entity: entity, ExternalID: id, Reason: err.Error()}
}
