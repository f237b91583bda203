// Package pipeline is pipewatch's domain: the vendor-neutral records connectors produce,
// the standard (canonical) stages, and the metrics and rules computed over them.
// It knows no HTTP and no vendor; its Postgres store lives in pipeline/store.
package pipeline

import (
	"encoding/json"
	"time"

	"github.com/shopspring/decimal"
)

// Entity names a synced table. Its values are the table names of the normalized model.
type Entity string

// The synced entities, in the order a full sync writes them (referenced rows first).
const (
	EntityOwners     Entity = "owners"
	EntityPipelines  Entity = "pipelines"
	EntityStages     Entity = "stages"
	EntityAccounts   Entity = "accounts"
	EntityContacts   Entity = "contacts"
	EntityLeads      Entity = "leads"
	EntityDeals      Entity = "deals"
	EntityActivities Entity = "activities"
)

// Entities lists every synced entity, referenced rows first.
var Entities = []Entity{
	EntityOwners, EntityPipelines, EntityStages, EntityAccounts,
	EntityContacts, EntityLeads, EntityDeals, EntityActivities,
}

// Record is what every synced row carries besides its own fields.
type Record struct {
	// ExternalID is the vendor's id, unique per connection and entity.
	ExternalID string
	// CreatedAt and UpdatedAt are the vendor's timestamps; UpdatedAt is the sync cursor
	// value. Zero means unknown.
	CreatedAt time.Time
	UpdatedAt time.Time
	// Raw is the vendor payload, kept for audit and re-mapping.
	Raw json.RawMessage
}

// Owner is a rep or manager: a CRM user who owns records.
type Owner struct {
	Record
	Email             string
	Name              string
	Team              string
	ManagerExternalID string
	// Timezone is an IANA zone name from the vendor ("" when it has none).
	Timezone string
	// Active is false for users who left; their rows and deals are kept.
	Active bool
}

// Account is a company / organization.
type Account struct {
	Record
	Name            string
	Domain          string
	OwnerExternalID string
}

// Contact is a person at an account.
type Contact struct {
	Record
	Email             string
	Name              string
	AccountExternalID string
	OwnerExternalID   string
}

// LeadStatus is where a lead stands in the funnel.
type LeadStatus string

// Lead statuses.
const (
	LeadNew          LeadStatus = "new"
	LeadMQL          LeadStatus = "mql"
	LeadSQL          LeadStatus = "sql"
	LeadConverted    LeadStatus = "converted"
	LeadDisqualified LeadStatus = "disqualified"
)

// Lead is a prospect before (or when) it becomes a deal.
type Lead struct {
	Record
	Email           string
	Name            string
	Source          string
	Status          LeadStatus
	MQLAt           time.Time
	SQLAt           time.Time
	ConvertedAt     time.Time
	OwnerExternalID string
	// ConvertedDealExternalID is the vendor id of the deal the lead converted into ("" =
	// none known); the store resolves it to leads.converted_deal_id, at once or when the
	// deal arrives. A connector that sets it also sets Status LeadConverted and ConvertedAt
	// (the vendor's conversion time, else the deal's creation) unless the vendor's own
	// status says otherwise; the store writes the three as given.
	ConvertedDealExternalID string
}

// Pipeline is a sequence of stages deals move through.
type Pipeline struct {
	Record
	Name     string
	Position int
}

// Stage is one vendor stage of a pipeline.
type Stage struct {
	Record
	PipelineExternalID string
	Name               string
	Position           int
	// Probability is the stage's win probability in 0..1; nil when the vendor has none.
	Probability *decimal.Decimal
	IsClosed    bool
	IsWon       bool
	// Canonical is the standard stage this vendor stage maps to ("" = unmapped).
	Canonical CanonicalStage
	// RotDays is the vendor's per-stage rotting threshold in days (0 = none).
	RotDays int
}

// Deal is an opportunity.
type Deal struct {
	Record
	Name               string
	Amount             decimal.NullDecimal
	Currency           string
	PipelineExternalID string
	StageExternalID    string
	OwnerExternalID    string
	AccountExternalID  string
	// CloseDate is the expected (open) or actual (closed) close date, at UTC midnight; zero = none.
	CloseDate time.Time
	ClosedAt  time.Time
	IsClosed  bool
	IsWon     bool
	// Probability overrides the stage's probability when the vendor keeps one per deal.
	Probability      *decimal.Decimal
	ForecastCategory string
	StageEnteredAt   time.Time
	LastActivityAt   time.Time
	NextActivityAt   time.Time
}

// StageEntry is one stay of a deal in a stage as the vendor reports it.
type StageEntry struct {
	DealExternalID  string
	StageExternalID string
	EnteredAt       time.Time
	ExitedAt        time.Time // zero while the deal is still in the stage
}

// ActivityKind is the type of a logged touch.
type ActivityKind string

// Activity kinds.
const (
	ActivityCall    ActivityKind = "call"
	ActivityEmail   ActivityKind = "email"
	ActivityMeeting ActivityKind = "meeting"
	ActivityNote    ActivityKind = "note"
	ActivityTask    ActivityKind = "task"
)

// Direction tells whether a touch went out from the rep or came in from the customer.
type Direction string

// Directions ("" = not applicable or unknown).
const (
	Inbound  Direction = "inbound"
	Outbound Direction = "outbound"
)

// Activity is a call, email, meeting, note or task.
type Activity struct {
	Record
	Kind              ActivityKind
	Direction         Direction
	Subject           string
	OccurredAt        time.Time
	Done              bool
	DealExternalID    string
	ContactExternalID string
	LeadExternalID    string
	OwnerExternalID   string
}

// Deletion says a record was deleted (archived) at the vendor.
type Deletion struct {
	Entity     Entity
	ExternalID string
	DeletedAt  time.Time // zero = unknown; the store uses the sync time
}

// Batch is a set of records read together. A connector page fills the slices its stream
// produces; the sync engine merges several pages into one write.
type Batch struct {
	Owners       []Owner
	Pipelines    []Pipeline
	Stages       []Stage
	Accounts     []Account
	Contacts     []Contact
	Leads        []Lead
	Deals        []Deal
	StageHistory []StageEntry
	Activities   []Activity
	Deletions    []Deletion
}

// Len is the number of records in the batch.
func (b *Batch) Len() int {
	return len(b.Owners) + len(b.Pipelines) + len(b.Stages) + len(b.Accounts) + len(b.Contacts) +
		len(b.Leads) + len(b.Deals) + len(b.StageHistory) + len(b.Activities) + len(b.Deletions)
}

// Append adds every record of o to b.
func (b *Batch) Append(o Batch) {
	b.Owners = append(b.Owners, o.Owners...)
	b.Pipelines = append(b.Pipelines, o.Pipelines...)
	b.Stages = append(b.Stages, o.Stages...)
	b.Accounts = append(b.Accounts, o.Accounts...)
	b.Contacts = append(b.Contacts, o.Contacts...)
	b.Leads = append(b.Leads, o.Leads...)
	b.Deals = append(b.Deals, o.Deals...)
	b.StageHistory = append(b.StageHistory, o.StageHistory...)
	b.Activities = append(b.Activities, o.Activities...)
	b.Deletions = append(b.Deletions, o.Deletions...)
}
