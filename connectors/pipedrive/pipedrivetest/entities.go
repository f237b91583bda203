package pipedrivetest

import (
	"encoding/json"
	"time"
)

// Time is an API v2 timestamp: RFC 3339 in UTC, to the second ("2025-01-01T10:20:00Z").
type Time time.Time

// T converts t to a Time, truncated to the second like Pipedrive's timestamps.
func T(t time.Time) Time { return Time(t.UTC().Truncate(time.Second)) }

// TimePtr is T for nullable fields.
func TimePtr(t time.Time) *Time { v := T(t); return &v }

// Std returns t as a time.Time.
func (t Time) Std() time.Time { return time.Time(t) }

// MarshalJSON writes the v2 format.
func (t Time) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Time(t).UTC().Format(time.RFC3339) + `"`), nil
}

// v1Time is the v1 format: "YYYY-MM-DD HH:MM:SS" in UTC, no zone.
func v1Time(t time.Time) string { return t.UTC().Format(time.DateTime) }

// leadTime is the format of the v1 leads API: ISO 8601 with milliseconds.
func leadTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// User is a Pipedrive user (a rep), served by GET /v1/users.
type User struct {
	ID           int
	Name         string
	Email        string
	TimezoneName string // IANA name, e.g. "Europe/Tallinn"
	Active       bool   // active_flag
	Deleted      bool   // is_deleted
	Created      time.Time
	Modified     time.Time
}

func (u *User) wire() map[string]any {
	return map[string]any{
		"id":                  u.ID,
		"name":                u.Name,
		"default_currency":    "USD",
		"locale":              "en_US",
		"lang":                1,
		"email":               u.Email,
		"phone":               nil,
		"activated":           true,
		"last_login":          v1Time(u.Modified),
		"created":             v1Time(u.Created),
		"modified":            v1Time(u.Modified),
		"has_created_company": false,
		"active_flag":         u.Active,
		"timezone_name":       u.TimezoneName,
		"timezone_offset":     "+00:00",
		"role_id":             1,
		"icon_url":            nil,
		"is_you":              false,
		"is_deleted":          u.Deleted,
	}
}

// Pipeline is served by GET /api/v2/pipelines.
type Pipeline struct {
	ID                       int    `json:"id"`
	Name                     string `json:"name"`
	OrderNr                  int    `json:"order_nr"`
	IsSelected               bool   `json:"is_selected"`
	IsDeleted                bool   `json:"is_deleted"`
	IsDealProbabilityEnabled bool   `json:"is_deal_probability_enabled"`
	AddTime                  Time   `json:"add_time"`
	UpdateTime               Time   `json:"update_time"`
}

// Stage is served by GET /api/v2/stages.
type Stage struct {
	ID               int    `json:"id"`
	OrderNr          int    `json:"order_nr"`
	Name             string `json:"name"`
	IsDeleted        bool   `json:"is_deleted"`
	DealProbability  int    `json:"deal_probability"`
	PipelineID       int    `json:"pipeline_id"`
	IsDealRotEnabled bool   `json:"is_deal_rot_enabled"`
	DaysToRotten     *int   `json:"days_to_rotten"`
	AddTime          Time   `json:"add_time"`
	UpdateTime       Time   `json:"update_time"`
}

// Address is a postal address as v2 returns it.
type Address struct {
	Value      string `json:"value"`
	Country    string `json:"country,omitempty"`
	Locality   string `json:"locality,omitempty"`
	PostalCode string `json:"postal_code,omitempty"`
}

// Organization is served by GET /api/v2/organizations.
type Organization struct {
	ID           int            `json:"id"`
	Name         string         `json:"name"`
	OwnerID      int            `json:"owner_id"`
	AddTime      Time           `json:"add_time"`
	UpdateTime   Time           `json:"update_time"`
	IsDeleted    bool           `json:"is_deleted"`
	VisibleTo    int            `json:"visible_to"`
	Address      *Address       `json:"address"`
	LabelIDs     []int          `json:"label_ids"`
	CustomFields map[string]any `json:"custom_fields"`
}

// ContactDetail is one email address or phone number of a person.
type ContactDetail struct {
	Value   string `json:"value"`
	Primary bool   `json:"primary"`
	Label   string `json:"label"`
}

// Person is served by GET /api/v2/persons.
type Person struct {
	ID           int             `json:"id"`
	Name         string          `json:"name"`
	FirstName    string          `json:"first_name"`
	LastName     string          `json:"last_name"`
	OwnerID      int             `json:"owner_id"`
	OrgID        *int            `json:"org_id"`
	AddTime      Time            `json:"add_time"`
	UpdateTime   Time            `json:"update_time"`
	Emails       []ContactDetail `json:"emails"`
	Phones       []ContactDetail `json:"phones"`
	IsDeleted    bool            `json:"is_deleted"`
	VisibleTo    int             `json:"visible_to"`
	LabelIDs     []int           `json:"label_ids"`
	CustomFields map[string]any  `json:"custom_fields"`
}

// Deal is served by GET /api/v2/deals (and /deals/archived, and status=deleted).
type Deal struct {
	ID                int            `json:"id"`
	Title             string         `json:"title"`
	CreatorUserID     int            `json:"creator_user_id"`
	OwnerID           int            `json:"owner_id"`
	PersonID          *int           `json:"person_id"`
	OrgID             *int           `json:"org_id"`
	PipelineID        int            `json:"pipeline_id"`
	StageID           int            `json:"stage_id"`
	Value             json.Number    `json:"value"`
	Currency          string         `json:"currency"`
	AddTime           Time           `json:"add_time"`
	UpdateTime        Time           `json:"update_time"`
	StageChangeTime   *Time          `json:"stage_change_time"`
	IsDeleted         bool           `json:"is_deleted"`
	IsArchived        bool           `json:"is_archived"`
	ArchiveTime       *Time          `json:"archive_time"`
	Status            string         `json:"status"` // open, won or lost
	Probability       *float64       `json:"probability"`
	LostReason        *string        `json:"lost_reason"`
	VisibleTo         int            `json:"visible_to"`
	CloseTime         *Time          `json:"close_time"`
	WonTime           *Time          `json:"won_time"`
	LostTime          *Time          `json:"lost_time"`
	ExpectedCloseDate *string        `json:"expected_close_date"` // "YYYY-MM-DD"
	LabelIDs          []int          `json:"label_ids"`
	Origin            string         `json:"origin"`
	OriginID          *string        `json:"origin_id"`
	Channel           *int           `json:"channel"`
	ChannelID         *string        `json:"channel_id"`
	CustomFields      map[string]any `json:"custom_fields"`

	// deletedAt is when the deal was deleted; Pipedrive purges it 30 days later.
	deletedAt time.Time
}

// Activity is served by GET /api/v2/activities.
type Activity struct {
	ID               int     `json:"id"`
	Subject          string  `json:"subject"`
	Type             string  `json:"type"` // call, meeting, task, deadline, email, lunch or a custom key
	OwnerID          int     `json:"owner_id"`
	CreatorUserID    int     `json:"creator_user_id"`
	IsDeleted        bool    `json:"is_deleted"`
	AddTime          Time    `json:"add_time"`
	UpdateTime       Time    `json:"update_time"`
	DealID           *int    `json:"deal_id"`
	LeadID           *string `json:"lead_id"`
	PersonID         *int    `json:"person_id"`
	OrgID            *int    `json:"org_id"`
	DueDate          string  `json:"due_date"` // "YYYY-MM-DD", UTC
	DueTime          string  `json:"due_time"` // "HH:MM:SS", UTC; "" for all-day
	Duration         string  `json:"duration"`
	Busy             bool    `json:"busy"`
	Done             bool    `json:"done"`
	MarkedAsDoneTime *Time   `json:"marked_as_done_time"`
	Priority         *int    `json:"priority"`
	Note             string  `json:"note"`
}

// due is when the activity is (was) due, in UTC.
func (a *Activity) due() time.Time {
	layout, v := time.DateOnly, a.DueDate
	if a.DueTime != "" {
		layout, v = time.DateTime, a.DueDate+" "+a.DueTime
	}
	t, err := time.Parse(layout, v)
	if err != nil {
		return a.AddTime.Std()
	}
	return t
}

// LeadValue is a lead's potential value.
type LeadValue struct {
	Amount   json.Number `json:"amount"`
	Currency string      `json:"currency"`
}

// Lead is a Leads Inbox entry, served by GET /v1/leads.
type Lead struct {
	ID                string // UUID
	Title             string
	OwnerID           int
	CreatorID         int
	PersonID          *int
	OrganizationID    *int
	SourceName        string
	Origin            string
	Channel           *int
	IsArchived        bool
	WasSeen           bool
	Value             *LeadValue
	ExpectedCloseDate *string
	NextActivityID    *int
	LabelIDs          []string
	AddTime           time.Time
	UpdateTime        time.Time
}

func (l *Lead) wire() map[string]any {
	labels := l.LabelIDs
	if labels == nil {
		labels = []string{}
	}
	return map[string]any{
		"id":                  l.ID,
		"title":               l.Title,
		"owner_id":            l.OwnerID,
		"creator_id":          l.CreatorID,
		"label_ids":           labels,
		"person_id":           l.PersonID,
		"organization_id":     l.OrganizationID,
		"source_name":         l.SourceName,
		"origin":              l.Origin,
		"channel":             l.Channel,
		"channel_id":          nil,
		"is_archived":         l.IsArchived,
		"was_seen":            l.WasSeen,
		"value":               l.Value,
		"expected_close_date": l.ExpectedCloseDate,
		"next_activity_id":    l.NextActivityID,
		"add_time":            leadTime(l.AddTime),
		"update_time":         leadTime(l.UpdateTime),
		"visible_to":          "3",
		"cc_email":            "company+" + l.ID[:8] + "@pipedrivemail.com",
	}
}

func (p *Pipeline) rowID() int            { return p.ID }
func (s *Stage) rowID() int               { return s.ID }
func (o *Organization) rowID() int        { return o.ID }
func (p *Person) rowID() int              { return p.ID }
func (d *Deal) rowID() int                { return d.ID }
func (a *Activity) rowID() int            { return a.ID }
func (p *Pipeline) rowTimes() (a, u Time) { return p.AddTime, p.UpdateTime }
func (s *Stage) rowTimes() (a, u Time)    { return s.AddTime, s.UpdateTime }
func (o *Organization) rowTimes() (a, u Time) {
	return o.AddTime, o.UpdateTime
}
func (p *Person) rowTimes() (a, u Time)   { return p.AddTime, p.UpdateTime }
func (d *Deal) rowTimes() (a, u Time)     { return d.AddTime, d.UpdateTime }
func (a *Activity) rowTimes() (x, u Time) { return a.AddTime, a.UpdateTime }
