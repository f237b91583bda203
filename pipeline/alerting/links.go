package alerting

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Connection is what alerting needs of a connections row.
type Connection struct {
	ID     int64
	Name   string
	Kind   string
	Status string
	// StatusReason explains an error or needs_reauth status.
	StatusReason string
	LastSyncedAt time.Time // zero = never synced
	// BaseURL and Options come from connections.config.
	BaseURL string
	Options map[string]string
	// Freshness is how old the last successful sync may be (connections.config.freshness,
	// else 3 × the schedule).
	Freshness time.Duration
	// HasDeals / HasLeads say whether the connection holds live deals / leads.
	HasDeals, HasLeads bool
}

// connectionConfig is the part of connections.config alerting reads.
type connectionConfig struct {
	BaseURL   string            `json:"base_url"`
	Schedule  string            `json:"schedule"`
	Freshness string            `json:"freshness"`
	Options   map[string]string `json:"options"`
}

const (
	defaultSchedule        = 15 * time.Minute
	defaultFreshnessFactor = 3
)

// parseConnectionConfig reads connections.config, applying the freshness default
// (3 × schedule, the schedule defaulting to 15 minutes).
func parseConnectionConfig(raw []byte, c *Connection) error {
	var cfg connectionConfig
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return fmt.Errorf("decoding the config of connection %s: %w", c.Name, err)
		}
	}
	c.BaseURL, c.Options = cfg.BaseURL, cfg.Options
	schedule := defaultSchedule
	if cfg.Schedule != "" {
		d, err := time.ParseDuration(cfg.Schedule)
		if err != nil || d <= 0 {
			return fmt.Errorf("connection %s: schedule %q is not a duration like 15m", c.Name, cfg.Schedule)
		}
		schedule = d
	}
	c.Freshness = defaultFreshnessFactor * schedule
	if cfg.Freshness != "" {
		d, err := time.ParseDuration(cfg.Freshness)
		if err != nil || d <= 0 {
			return fmt.Errorf("connection %s: freshness %q is not a duration like 45m", c.Name, cfg.Freshness)
		}
		c.Freshness = d
	}
	return nil
}

// DealURL links to a deal in its CRM: HubSpot needs options.portal_id, Pipedrive the
// company domain (options.company_domain, or a base_url on <company>.pipedrive.com),
// Salesforce the instance URL (options.instance_url or base_url). "" when unknown.
func (c Connection) DealURL(externalID string) string {
	id := url.PathEscape(externalID)
	switch c.Kind {
	case "hubspot":
		if portal := strings.TrimSpace(c.Options["portal_id"]); portal != "" {
			return "https://app.hubspot.com/contacts/" + url.PathEscape(portal) + "/record/0-3/" + id
		}
	case "pipedrive":
		if company := c.pipedriveCompany(); company != "" {
			return "https://" + company + ".pipedrive.com/deal/" + id
		}
	case "salesforce":
		instance := strings.TrimSpace(c.Options["instance_url"])
		if instance == "" {
			instance = c.BaseURL
		}
		if u, err := url.Parse(instance); err == nil && u.Scheme == "https" && u.Host != "" {
			return "https://" + u.Host + "/lightning/r/Opportunity/" + id + "/view"
		}
	}
	return ""
}

func (c Connection) pipedriveCompany() string {
	company := strings.ToLower(strings.TrimSpace(c.Options["company_domain"]))
	if company == "" {
		if u, err := url.Parse(c.BaseURL); err == nil {
			if host, ok := strings.CutSuffix(u.Hostname(), ".pipedrive.com"); ok && host != "api" && !strings.Contains(host, ".") {
				company = host
			}
		}
	}
	company = strings.TrimSuffix(strings.TrimPrefix(company, "https://"), ".pipedrive.com")
	if company == "" || strings.ContainsAny(company, "/.:") {
		return ""
	}
	return company
}

// vendorName is the CRM's name for people.
func (c Connection) vendorName() string {
	switch c.Kind {
	case "hubspot":
		return "HubSpot"
	case "pipedrive":
		return "Pipedrive"
	case "salesforce":
		return "Salesforce"
	case "mailchimp":
		return "Mailchimp"
	}
	return c.Kind
}
