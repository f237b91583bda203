// Package hubspot reads a HubSpot portal (CRM v3) into pipeline records: owners, deal
// pipelines and stages, companies, contacts (and the leads among them), deals with their
// stage history, engagements (calls, emails, meetings, notes, tasks) and archived records.
//
// Streams, in sync order (names are stable; they key cursors and runs):
//
//	owners, archived_owners        active owners; reps who left (Active false)
//	pipelines                      deal pipelines and their stages (reconcilable)
//	companies, contacts, deals     incremental search; Full = list (reconcilable);
//	                               contacts also yield the leads among them, linked to
//	                               the deal each converted into (contact→deal associations)
//	calls, emails, meetings,       incremental search → activities linked to a deal and a
//	notes, tasks                   contact (not reconcilable: they share one table)
//	archived_<type>                deletions, for companies, contacts, deals and each
//	                               engagement type
//
// Incremental streams use the search API ordered by last-modified time with keyset paging
// that never loses or repeats records sharing a millisecond and never pages into the
// 10,000-result cap; Full reads (reconciliation) use the list endpoints. A search page
// costs one more request per association type it needs (engagements: deals and contacts;
// contacts: the deals of the leads among them, which Full lists answer inline), and a
// contacts page one more per 100 deals when a lead has several deals or no lifecycle
// conversion date (the deals' creation times decide the link); a run that finds no
// changed records makes one request per stream. Authentication, retries and rate
// limiting live in the *http.Client (connectors.NewHTTPClient with RateLimits and a
// bearer or OAuth token source); see ExampleNew for the wiring.
package hubspot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/pipewatch/pipewatch/connectors"
	"github.com/pipewatch/pipewatch/pipeline"
)

// Defaults of Config.
const (
	DefaultBaseURL  = "https://api.hubapi.com"
	DefaultLag      = 2 * time.Minute
	DefaultPageSize = 200
)

// Config configures a HubSpot connection.
type Config struct {
	// BaseURL is the API root (default https://api.hubapi.com); a fake's URL in tests.
	BaseURL string
	// PortalID is the hub id, used for record links (DealURL).
	PortalID int64
	// Lookback re-reads this much before the stored cursor on each incremental run, as an
	// overlap against late-indexed records (default 0: resume just after the cursor).
	Lookback time.Duration
	// Lag keeps an incremental window's upper bound this far behind the vendor's clock, so
	// records still settling in the search index are read next run (default DefaultLag;
	// negative: none).
	Lag time.Duration
	// PageSize is the search page size, 1..200 (default 200). List pages hold at most 100.
	PageSize int
	// Currency is used for deals without deal_currency_code ("" leaves it empty).
	Currency string
	// Logger receives the connector's own lines (nil: discarded).
	Logger *slog.Logger
	// NowFunc is the local clock for the window guess before the vendor's Date is known
	// (default time.Now).
	NowFunc func() time.Time
}

// Validate checks c and says what to fix.
func (c Config) Validate() error {
	var errs []error
	if c.BaseURL != "" {
		u, err := url.Parse(c.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("hubspot: base_url %q must be an absolute http(s) URL such as %s", c.BaseURL, DefaultBaseURL))
		}
	}
	if c.PortalID < 0 {
		errs = append(errs, fmt.Errorf("hubspot: portal id must be positive, got %d", c.PortalID))
	}
	if c.Lookback < 0 {
		errs = append(errs, fmt.Errorf("hubspot: lookback must not be negative, got %s", c.Lookback))
	}
	if c.PageSize < 0 || c.PageSize > searchMaxLimit {
		errs = append(errs, fmt.Errorf("hubspot: page size must be between 1 and %d, got %d", searchMaxLimit, c.PageSize))
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	switch {
	case c.Lag == 0:
		c.Lag = DefaultLag
	case c.Lag < 0:
		c.Lag = 0
	}
	if c.PageSize == 0 {
		c.PageSize = DefaultPageSize
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.NowFunc == nil {
		c.NowFunc = time.Now
	}
	return c
}

// Connector reads one HubSpot portal. It is safe for concurrent use and may live as long
// as its connection: it caches the deal pipelines (their stage ids name the stage-history
// properties) for a few minutes.
type Connector struct {
	cfg     Config
	hc      *http.Client
	streams []connectors.Stream
	readers map[string]streamReader
	stages  stageCache
}

var _ connectors.Connector = (*Connector)(nil)

// streamReader reads one stream.
type streamReader func(ctx context.Context, req connectors.ReadRequest) (connectors.Page, error)

// Stream names. They key sync cursors and sync runs, so they never change.
const (
	StreamOwners            = "owners"
	StreamArchivedOwners    = "archived_owners"
	StreamPipelines         = "pipelines"
	StreamCompanies         = "companies"
	StreamContacts          = "contacts"
	StreamDeals             = "deals"
	StreamCalls             = "calls"
	StreamEmails            = "emails"
	StreamMeetings          = "meetings"
	StreamNotes             = "notes"
	StreamTasks             = "tasks"
	StreamArchivedCompanies = "archived_companies"
	StreamArchivedContacts  = "archived_contacts"
	StreamArchivedDeals     = "archived_deals"
	StreamArchivedCalls     = "archived_calls"
	StreamArchivedEmails    = "archived_emails"
	StreamArchivedMeetings  = "archived_meetings"
	StreamArchivedNotes     = "archived_notes"
	StreamArchivedTasks     = "archived_tasks"
)

// New returns a connector reading cfg's portal through hc, the chain from
// connectors.NewHTTPClient with RateLimits() and the connection's token source.
func New(cfg Config, hc *http.Client) (*Connector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if hc == nil {
		return nil, errors.New("hubspot: an *http.Client is required (connectors.NewHTTPClient)")
	}
	c := &Connector{cfg: cfg.withDefaults(), hc: hc}
	c.stages.ttl = stageCacheTTL
	c.stages.now = c.cfg.NowFunc

	type streamDef struct {
		stream connectors.Stream
		read   streamReader
	}
	owners := []pipeline.Entity{pipeline.EntityOwners}
	// Active and archived owners are two lists, read by two streams of one request each;
	// neither reconciles, so neither tombstones the other's owners.
	defs := []streamDef{
		{connectors.Stream{Name: StreamOwners, Entities: owners}, c.ownersReader(false)},
		{connectors.Stream{Name: StreamArchivedOwners, Entities: owners}, c.ownersReader(true)},
		{connectors.Stream{Name: StreamPipelines, Entities: []pipeline.Entity{pipeline.EntityPipelines, pipeline.EntityStages}, Reconcile: true}, c.readPipelines},
	}
	for _, spec := range c.objectSpecs() {
		defs = append(defs, streamDef{
			connectors.Stream{Name: spec.stream, Entities: spec.entities, Incremental: true, Reconcile: spec.reconcile},
			c.objectReader(spec),
		})
	}
	defs = append(defs,
		streamDef{connectors.Stream{Name: StreamArchivedCompanies, Entities: []pipeline.Entity{pipeline.EntityAccounts}}, c.archivedReader("companies")},
		streamDef{connectors.Stream{Name: StreamArchivedContacts, Entities: []pipeline.Entity{pipeline.EntityContacts, pipeline.EntityLeads}}, c.archivedReader("contacts")},
		streamDef{connectors.Stream{Name: StreamArchivedDeals, Entities: []pipeline.Entity{pipeline.EntityDeals}}, c.archivedReader("deals")},
	)
	for _, e := range engagements {
		name := "archived_" + e.stream
		defs = append(defs, streamDef{connectors.Stream{Name: name, Entities: []pipeline.Entity{pipeline.EntityActivities}}, c.archivedReader(e.objectType)})
	}
	c.readers = make(map[string]streamReader, len(defs))
	for _, d := range defs {
		c.streams = append(c.streams, d.stream)
		c.readers[d.stream.Name] = d.read
	}
	return c, nil
}

// Streams lists the streams, referenced entities first.
func (c *Connector) Streams() []connectors.Stream {
	return append([]connectors.Stream(nil), c.streams...)
}

// Read returns the page of req.Stream after req.Cursor.
func (c *Connector) Read(ctx context.Context, req connectors.ReadRequest) (connectors.Page, error) {
	if err := ctx.Err(); err != nil {
		return connectors.Page{}, err
	}
	read, ok := c.readers[req.Stream]
	if !ok {
		return connectors.Page{}, connectors.Permanent(fmt.Errorf("hubspot: unknown stream %q", req.Stream))
	}
	if req.Mode != connectors.Incremental && req.Mode != connectors.Full {
		return connectors.Page{}, connectors.Permanent(fmt.Errorf("hubspot: unknown read mode %q", req.Mode))
	}
	page, err := read(ctx, req)
	if err != nil && ctx.Err() != nil {
		return connectors.Page{}, ctx.Err()
	}
	return page, err
}

// DealURL links to a deal in HubSpot's app.
func DealURL(portalID int64, dealID string) string {
	return fmt.Sprintf("https://app.hubspot.com/contacts/%d/record/0-3/%s", portalID, url.PathEscape(dealID))
}

// OAuthEndpoint is HubSpot's OAuth endpoint for the API root baseURL ("" = the default):
// refresh_token grants at <base>/oauth/v1/token with the client credentials in the body.
func OAuthEndpoint(baseURL string) oauth2.Endpoint {
	if baseURL == "" {
		baseURL = DefaultBaseURL
	}
	return oauth2.Endpoint{
		AuthURL:   "https://app.hubspot.com/oauth/authorize",
		TokenURL:  strings.TrimRight(baseURL, "/") + "/oauth/v1/token",
		AuthStyle: oauth2.AuthStyleInParams,
	}
}

// Rate-limit budget names of RateLimits.
const (
	BudgetGeneral = "general"
	BudgetSearch  = "search"
)

// RateLimits are HubSpot's documented limits for connectors.HTTPConfig: 100 requests per
// 10 seconds (raised from the X-HubSpot-RateLimit-* headers on higher tiers), searches 4
// per second on top, and the daily budget (X-HubSpot-RateLimit-Daily-Remaining, DAILY
// 429s). Each call returns a fresh value the caller may adjust.
func RateLimits() connectors.RateLimits {
	return connectors.RateLimits{
		Budgets: map[string]connectors.Budget{
			BudgetGeneral: {Limit: 100, Interval: 10 * time.Second},
			BudgetSearch:  {Limit: 4, Interval: time.Second},
		},
		BudgetsFor: func(r *http.Request) []string {
			if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/search") {
				return []string{BudgetSearch, BudgetGeneral}
			}
			return []string{BudgetGeneral}
		},
		HeaderBudget:     BudgetGeneral,
		ParseHeaders:     connectors.HubSpotRateLimitHeaders,
		ParseRateLimited: parseRateLimited,
	}
}

// parseRateLimited reads HubSpot's 429 body: {"errorType":"RATE_LIMIT","policyName":"DAILY"|…}.
func parseRateLimited(body []byte) (daily bool, message string) {
	var b struct {
		Message    string `json:"message"`
		PolicyName string `json:"policyName"`
	}
	if json.Unmarshal(body, &b) != nil {
		return false, ""
	}
	return strings.EqualFold(b.PolicyName, "DAILY"), b.Message
}
