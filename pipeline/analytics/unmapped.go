package analytics

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
)

// Querier runs queries: a pool, a connection or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// UnmappedStage is a live vendor stage without a canonical stage: its deals fall out of
// the stage funnel and show as "unmapped" in the open pipeline until it is mapped with
// `stage_map` in the config file.
type UnmappedStage struct {
	StageID     int64               `json:"stage_id"`
	Connection  string              `json:"connection"`
	Pipeline    string              `json:"pipeline"`
	ExternalID  string              `json:"external_id"`
	Name        string              `json:"name"`
	Probability decimal.NullDecimal `json:"probability"`
	IsClosed    bool                `json:"is_closed"`
	IsWon       bool                `json:"is_won"`
	OpenDeals   int64               `json:"open_deals"`
}

// UnmappedStages lists the live stages whose canonical_stage is NULL, with their open
// deals (the pipeline_unmapped_stages view), ordered by connection, pipeline and position.
// A connection scope lists only that connection's stages; other scopes list all.
// `pipewatch apply` calls it to warn after mapping stages.
func UnmappedStages(ctx context.Context, db Querier, scope Scope) ([]UnmappedStage, error) {
	filter := "true"
	if scope.Kind == ScopeConnection {
		filter = "c.name = @scope"
	}
	rows, err := db.Query(ctx, fmt.Sprintf(`
SELECT s.id, c.name, coalesce(p.name, ''), s.external_id, coalesce(s.name, ''), s.probability, s.is_closed, s.is_won,
       (SELECT count(*) FROM deals d WHERE d.stage_id = s.id AND NOT d.is_closed AND d.deleted_at IS NULL)
FROM stages s
JOIN connections c ON c.id = s.connection_id
LEFT JOIN pipelines p ON p.id = s.pipeline_id
WHERE s.canonical_stage IS NULL AND s.deleted_at IS NULL AND %s
ORDER BY c.name COLLATE "C", p.position, p.name COLLATE "C", s.position, s.id`, filter), pgx.NamedArgs{"scope": scope.Value})
	if err != nil {
		return nil, fmt.Errorf("listing unmapped stages: %w", err)
	}
	stages, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (UnmappedStage, error) {
		var u UnmappedStage
		err := row.Scan(&u.StageID, &u.Connection, &u.Pipeline, &u.ExternalID, &u.Name, &u.Probability,
			&u.IsClosed, &u.IsWon, &u.OpenDeals)
		return u, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing unmapped stages: %w", err)
	}
	if stages == nil {
		stages = []UnmappedStage{}
	}
	return stages, nil
}
