package analytics

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// ScopeKind says which deals and leads a report covers.
type ScopeKind string

// Scope kinds.
const (
	ScopeAll        ScopeKind = "all"
	ScopeTeam       ScopeKind = "team"       // deals and leads whose owner is in the team (owners.team)
	ScopeOwner      ScopeKind = "owner"      // deals and leads of the owners with this email, in every connection
	ScopePipeline   ScopeKind = "pipeline"   // deals of one pipeline (internal id); leads have no pipeline
	ScopeConnection ScopeKind = "connection" // deals and leads synced from one connection (by name)
)

// Scope selects the deals and leads a report covers.
type Scope struct {
	Kind ScopeKind
	// Value is the team, the owner's email, the pipeline id or the connection name ("" for all).
	Value string
}

// String is the scope as ParseScope reads it.
func (s Scope) String() string {
	if s.Kind == ScopeAll || s.Kind == "" {
		return string(ScopeAll)
	}
	return string(s.Kind) + ":" + s.Value
}

// ParseScope reads "all", "team:east", "owner:ana@example.com", "pipeline:12" or
// "connection:hubspot-main".
func ParseScope(s string) (Scope, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == string(ScopeAll) {
		return Scope{Kind: ScopeAll}, nil
	}
	kind, value, ok := strings.Cut(s, ":")
	value = strings.TrimSpace(value)
	if !ok || value == "" {
		return Scope{}, fmt.Errorf("scope %q: want all, team:NAME, owner:EMAIL, pipeline:ID or connection:NAME", s)
	}
	switch ScopeKind(kind) {
	case ScopeTeam, ScopeConnection:
	case ScopeOwner:
		value = strings.ToLower(value)
	case ScopePipeline:
		if _, err := strconv.ParseInt(value, 10, 64); err != nil {
			return Scope{}, fmt.Errorf("scope %q: a pipeline is named by its numeric id (pipelines.id)", s)
		}
	default:
		return Scope{}, fmt.Errorf("scope %q: unknown kind %q (want all, team, owner, pipeline or connection)", s, kind)
	}
	return Scope{Kind: ScopeKind(kind), Value: value}, nil
}

// dealFilter is the SQL condition selecting the scope's deals d. It reads @scope and only
// columns of deals, so it works from the covering indexes.
func (s Scope) dealFilter() string {
	switch s.Kind {
	case ScopeTeam:
		return "d.owner_id IN (SELECT id FROM owners WHERE team = @scope)"
	case ScopeOwner:
		return "d.owner_id IN (SELECT id FROM owners WHERE lower(email) = @scope)"
	case ScopePipeline:
		return "d.pipeline_id = @scope::bigint"
	case ScopeConnection:
		return "d.connection_id = (SELECT id FROM connections WHERE name = @scope)"
	}
	return "true"
}

// leadFilter is dealFilter for leads l. Leads have no pipeline, so a pipeline scope has
// no leads (the lead metrics are left out of such a report).
func (s Scope) leadFilter() string {
	switch s.Kind {
	case ScopeTeam:
		return "l.owner_id IN (SELECT id FROM owners WHERE team = @scope)"
	case ScopeOwner:
		return "l.owner_id IN (SELECT id FROM owners WHERE lower(email) = @scope)"
	case ScopePipeline:
		return "false"
	case ScopeConnection:
		return "l.connection_id = (SELECT id FROM connections WHERE name = @scope)"
	}
	return "true"
}

// hasLeads reports whether leads can be attributed to the scope.
func (s Scope) hasLeads() bool { return s.Kind != ScopePipeline }

// existsQuery is the query checking that the scope names something that exists.
func (s Scope) existsQuery() (string, pgx.NamedArgs) {
	args := pgx.NamedArgs{"scope": s.Value}
	switch s.Kind {
	case ScopeTeam:
		return "SELECT EXISTS (SELECT 1 FROM owners WHERE team = @scope)", args
	case ScopeOwner:
		return "SELECT EXISTS (SELECT 1 FROM owners WHERE lower(email) = @scope) OR EXISTS (SELECT 1 FROM targets WHERE lower(owner_email) = @scope)", args
	case ScopePipeline:
		return "SELECT EXISTS (SELECT 1 FROM pipelines WHERE id = @scope::bigint)", args
	case ScopeConnection:
		return "SELECT EXISTS (SELECT 1 FROM connections WHERE name = @scope)", args
	}
	return "SELECT true", args
}
