package store

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/shopspring/decimal"

	"github.com/pipewatch/pipewatch/pipeline"
)

// reference is a pair of columns pointing at another synced table: the internal id,
// resolved by the store, and the vendor id the connector gave.
type reference struct {
	idColumn       string
	externalColumn string
	target         pipeline.Entity
}

// entitySpec describes how one synced table is written.
type entitySpec struct {
	entity pipeline.Entity
	// columns are copied from the record to the table as they are; external_id first.
	columns []string
	refs    []reference
	// source returns the number of records of the entity in b and a function giving the
	// COPY row of record i (see row).
	source func(b *pipeline.Batch, m pipeline.StageMap) (int, func(i int) []any)
	// observe records deal changes (deals only).
	observe bool

	stageTable string // temporary staging table
	createSQL  string // creates the staging table
	upsertSQL  string
}

// commonTail are the columns every synced record ends with.
var commonTail = []string{"remote_created_at", "remote_updated_at", "raw"}

// entitySpecs are in write order: referenced tables first.
var entitySpecs = []*entitySpec{
	{
		entity:  pipeline.EntityOwners,
		columns: []string{"external_id", "email", "name", "team", "manager_external_id", "timezone", "active"},
		refs:    []reference{{"manager_owner_id", "manager_external_id", pipeline.EntityOwners}},
		source: func(b *pipeline.Batch, _ pipeline.StageMap) (int, func(int) []any) {
			return len(b.Owners), func(i int) []any {
				o := &b.Owners[i]
				return row(&o.Record, text(o.Email), text(o.Name), text(o.Team), text(o.ManagerExternalID), text(o.Timezone), o.Active)
			}
		},
	},
	{
		entity:  pipeline.EntityPipelines,
		columns: []string{"external_id", "name", "position"},
		source: func(b *pipeline.Batch, _ pipeline.StageMap) (int, func(int) []any) {
			return len(b.Pipelines), func(i int) []any {
				p := &b.Pipelines[i]
				return row(&p.Record, text(p.Name), int32(p.Position))
			}
		},
	},
	{
		entity: pipeline.EntityStages,
		columns: []string{"external_id", "pipeline_external_id", "name", "position", "probability", "is_closed", "is_won",
			"canonical_stage", "rot_days"},
		refs: []reference{{"pipeline_id", "pipeline_external_id", pipeline.EntityPipelines}},
		source: func(b *pipeline.Batch, m pipeline.StageMap) (int, func(int) []any) {
			return len(b.Stages), func(i int) []any {
				s := &b.Stages[i]
				var rot any
				if s.RotDays > 0 {
					rot = int32(s.RotDays)
				}
				return row(&s.Record, text(s.PipelineExternalID), text(s.Name), int32(s.Position), numericPtr(s.Probability),
					s.IsClosed, s.IsWon, text(string(m.Resolve(*s))), rot)
			}
		},
	},
	{
		entity:  pipeline.EntityAccounts,
		columns: []string{"external_id", "name", "domain", "owner_external_id"},
		refs:    []reference{{"owner_id", "owner_external_id", pipeline.EntityOwners}},
		source: func(b *pipeline.Batch, _ pipeline.StageMap) (int, func(int) []any) {
			return len(b.Accounts), func(i int) []any {
				a := &b.Accounts[i]
				return row(&a.Record, text(a.Name), text(a.Domain), text(a.OwnerExternalID))
			}
		},
	},
	{
		entity:  pipeline.EntityContacts,
		columns: []string{"external_id", "email", "name", "account_external_id", "owner_external_id"},
		refs: []reference{
			{"account_id", "account_external_id", pipeline.EntityAccounts},
			{"owner_id", "owner_external_id", pipeline.EntityOwners},
		},
		source: func(b *pipeline.Batch, _ pipeline.StageMap) (int, func(int) []any) {
			return len(b.Contacts), func(i int) []any {
				c := &b.Contacts[i]
				return row(&c.Record, text(c.Email), text(c.Name), text(c.AccountExternalID), text(c.OwnerExternalID))
			}
		},
	},
	{
		entity: pipeline.EntityLeads,
		columns: []string{"external_id", "email", "name", "source", "status", "mql_at", "sql_at", "converted_at", "owner_external_id",
			"converted_deal_external_id"},
		refs: []reference{
			{"owner_id", "owner_external_id", pipeline.EntityOwners},
			{"converted_deal_id", "converted_deal_external_id", pipeline.EntityDeals},
		},
		source: func(b *pipeline.Batch, _ pipeline.StageMap) (int, func(int) []any) {
			return len(b.Leads), func(i int) []any {
				l := &b.Leads[i]
				status := l.Status
				if status == "" {
					status = pipeline.LeadNew
				}
				return row(&l.Record, text(l.Email), text(l.Name), text(l.Source), string(status),
					timestamp(l.MQLAt), timestamp(l.SQLAt), timestamp(l.ConvertedAt), text(l.OwnerExternalID),
					text(l.ConvertedDealExternalID))
			}
		},
	},
	{
		entity: pipeline.EntityDeals,
		columns: []string{"external_id", "name", "amount", "currency", "pipeline_external_id", "stage_external_id",
			"owner_external_id", "account_external_id", "close_date", "closed_at", "is_closed", "is_won", "probability",
			"forecast_category", "stage_entered_at", "last_activity_at", "next_activity_at"},
		refs: []reference{
			{"pipeline_id", "pipeline_external_id", pipeline.EntityPipelines},
			{"stage_id", "stage_external_id", pipeline.EntityStages},
			{"owner_id", "owner_external_id", pipeline.EntityOwners},
			{"account_id", "account_external_id", pipeline.EntityAccounts},
		},
		observe: true,
		source: func(b *pipeline.Batch, _ pipeline.StageMap) (int, func(int) []any) {
			return len(b.Deals), func(i int) []any {
				d := &b.Deals[i]
				var amount any
				if d.Amount.Valid {
					amount = numeric(d.Amount.Decimal)
				}
				return row(&d.Record, text(d.Name), amount, text(d.Currency), text(d.PipelineExternalID),
					text(d.StageExternalID), text(d.OwnerExternalID), text(d.AccountExternalID), date(d.CloseDate),
					timestamp(d.ClosedAt), d.IsClosed, d.IsWon, numericPtr(d.Probability), text(d.ForecastCategory),
					timestamp(d.StageEnteredAt), timestamp(d.LastActivityAt), timestamp(d.NextActivityAt))
			}
		},
	},
	{
		entity: pipeline.EntityActivities,
		columns: []string{"external_id", "kind", "direction", "subject", "occurred_at", "done", "deal_external_id",
			"contact_external_id", "lead_external_id", "owner_external_id"},
		refs: []reference{
			{"deal_id", "deal_external_id", pipeline.EntityDeals},
			{"contact_id", "contact_external_id", pipeline.EntityContacts},
			{"lead_id", "lead_external_id", pipeline.EntityLeads},
			{"owner_id", "owner_external_id", pipeline.EntityOwners},
		},
		source: func(b *pipeline.Batch, _ pipeline.StageMap) (int, func(int) []any) {
			return len(b.Activities), func(i int) []any {
				a := &b.Activities[i]
				return row(&a.Record, string(a.Kind), text(string(a.Direction)), text(a.Subject), timestamp(a.OccurredAt),
					a.Done, text(a.DealExternalID), text(a.ContactExternalID), text(a.LeadExternalID), text(a.OwnerExternalID))
			}
		},
	},
}

// specByEntity indexes entitySpecs.
var specByEntity = map[pipeline.Entity]*entitySpec{}

func init() {
	for _, s := range entitySpecs {
		s.stageTable = "pw_stage_" + string(s.entity)
		s.createSQL = fmt.Sprintf(`CREATE TEMP TABLE %s ON COMMIT DROP AS SELECT 0::integer AS ord, %s FROM %s WITH NO DATA`,
			s.stageTable, strings.Join(s.allColumns(), ", "), s.entity)
		s.upsertSQL = buildUpsert(s)
		specByEntity[s.entity] = s
	}
}

// allColumns are the staged columns: the entity's own, then the common tail.
func (s *entitySpec) allColumns() []string {
	return append(append([]string{}, s.columns...), commonTail...)
}

// copyColumns are the staging table's columns in COPY order.
func (s *entitySpec) copyColumns() []string { return append([]string{"ord"}, s.allColumns()...) }

// row returns a record's COPY values: a slot for ord, external_id, the given values, then
// the common tail.
func row(r *pipeline.Record, values ...any) []any {
	out := make([]any, 0, len(values)+5)
	out = append(out, nil, clean(r.ExternalID))
	out = append(out, values...)
	return append(out, timestamp(r.CreatedAt), timestamp(r.UpdatedAt), rawJSON(r.Raw))
}

// text maps "" to NULL and makes s storable: Postgres text holds neither NUL bytes nor
// invalid UTF-8.
func text(s string) any {
	if s == "" {
		return nil
	}
	return clean(s)
}

func clean(s string) string {
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return s
}

// rawJSON returns the payload for a jsonb column (NULL when empty). jsonb rejects the
// \u0000 escape, so it is replaced by U+FFFD.
func rawJSON(raw json.RawMessage) any {
	if len(raw) == 0 {
		return nil
	}
	if strings.Contains(string(raw), `\u0000`) {
		return json.RawMessage(strings.ReplaceAll(string(raw), `\u0000`, `\ufffd`))
	}
	return raw
}

func timestamp(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return pgtype.Timestamptz{Time: t, Valid: true}
}

func date(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return pgtype.Date{Time: time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC), Valid: true}
}

// numeric converts exactly: amounts keep every cent.
func numeric(d decimal.Decimal) pgtype.Numeric {
	return pgtype.Numeric{Int: d.Coefficient(), Exp: d.Exponent(), Valid: true}
}

func numericPtr(d *decimal.Decimal) any {
	if d == nil {
		return nil
	}
	return numeric(*d)
}
