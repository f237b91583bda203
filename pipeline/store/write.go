package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pipewatch/pipewatch/pipeline"
)

// buildUpsert returns the statement that merges a staging table into its synced table and
// reports (inserted, updated, inserted ids). For deals it also records observed changes.
//
// $1 = connection id, $2 = synced_at, $3 = the records come from a Full read.
func buildUpsert(s *entitySpec) string {
	cols := s.allColumns()
	insertCols := append([]string{"connection_id", "synced_at", "deleted_at"}, cols...)
	selects := []string{"$1", "$2", "NULL"}
	for _, c := range cols {
		if c == "raw" {
			selects = append(selects, `coalesce(src.raw, '{}')`)
			continue
		}
		selects = append(selects, "src."+c)
	}
	var joins []string
	for i, r := range s.refs {
		insertCols = append(insertCols, r.idColumn)
		selects = append(selects, fmt.Sprintf("r%d.id", i))
		joins = append(joins, fmt.Sprintf("LEFT JOIN %s r%d ON r%d.connection_id = $1 AND r%d.external_id = src.%s",
			r.target, i, i, i, r.externalColumn))
	}
	compared := append([]string{}, cols[1:]...) // all but external_id, the conflict key
	for _, r := range s.refs {
		compared = append(compared, r.idColumn)
	}
	var sets, stored, incoming []string
	for _, c := range compared {
		sets = append(sets, fmt.Sprintf("%s = EXCLUDED.%s", c, c))
		stored = append(stored, "t."+c)
		incoming = append(incoming, "EXCLUDED."+c)
	}
	sets = append(sets, "synced_at = EXCLUDED.synced_at", "deleted_at = NULL")

	returning := "t.id, t.xmax = 0 AS inserted"
	var prev, observe string
	if s.observe {
		// prev reads the stored versions before the upsert (every part of the statement
		// sees the same snapshot), one index probe per staged id.
		prev = fmt.Sprintf(`prev AS (
	SELECT d.id, d.stage_external_id, d.stage_entered_at, d.close_date, d.amount, d.owner_external_id
	FROM deals d WHERE d.connection_id = $1 AND d.external_id = ANY(ARRAY(SELECT external_id FROM %s))
), `, s.stageTable)
		returning += ", t.stage_id, t.stage_external_id, t.stage_entered_at, t.close_date, t.amount, t.owner_external_id, t.remote_updated_at"
		observe = observeCTEs
	}

	// The latest version of each record wins within the batch (ties: the last one read).
	return fmt.Sprintf(`WITH %[2]sup AS (
	INSERT INTO %[3]s AS t (%[4]s)
	SELECT %[5]s
	FROM (SELECT DISTINCT ON (external_id) * FROM %[1]s
	      ORDER BY external_id, remote_updated_at DESC NULLS LAST, ord DESC) AS src
	%[6]s
	ON CONFLICT (connection_id, external_id) DO UPDATE SET %[7]s
	WHERE (t.remote_updated_at IS NULL OR EXCLUDED.remote_updated_at IS NULL OR t.remote_updated_at <= EXCLUDED.remote_updated_at)
	  AND ((%[8]s) IS DISTINCT FROM (%[9]s) OR (t.deleted_at IS NOT NULL AND $3))
	RETURNING %[10]s
)%[11]s
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted),
       coalesce(array_agg(id) FILTER (WHERE inserted), '{}')
FROM up`,
		s.stageTable, prev, s.entity, strings.Join(insertCols, ", "), strings.Join(selects, ", "), strings.Join(joins, "\n\t"),
		strings.Join(sets, ", "), strings.Join(stored, ", "), strings.Join(incoming, ", "), returning, observe)
}

// observeCTEs record, in the statement that upserts deals, what changed in the deals it
// updated: a deal_changes row per changed field (stage, close date, amount, owner) at the
// deal's remote_updated_at, and for a stage move the stay in the previous stage (when no
// recorded stay covers it), the closing of open stays in other stages and the opening of
// the stay in the new stage, entered at the vendor's stage entry time when it moved, else
// at the deal's remote_updated_at. The CTEs touch disjoint rows, so their order within the
// statement does not matter.
const observeCTEs = `, obs AS (
	SELECT up.id AS deal_id, prev.stage_external_id AS old_stage, up.stage_external_id AS new_stage,
	       up.stage_id AS new_stage_id, prev.stage_entered_at AS old_stage_entered_at,
	       prev.close_date AS old_close_date, up.close_date AS new_close_date, prev.amount AS old_amount,
	       up.amount AS new_amount, prev.owner_external_id AS old_owner, up.owner_external_id AS new_owner,
	       coalesce(up.remote_updated_at, $2) AS changed_at,
	       CASE WHEN up.stage_entered_at IS NOT NULL AND up.stage_entered_at IS DISTINCT FROM prev.stage_entered_at
	            THEN up.stage_entered_at ELSE coalesce(up.remote_updated_at, $2) END AS stage_entered
	FROM up JOIN prev ON prev.id = up.id
	WHERE (prev.stage_external_id, prev.close_date, prev.amount, prev.owner_external_id)
	      IS DISTINCT FROM (up.stage_external_id, up.close_date, up.amount, up.owner_external_id)
), moves AS (
	SELECT * FROM obs WHERE old_stage IS DISTINCT FROM new_stage
), changes AS (
	INSERT INTO deal_changes (deal_id, field, old_value, new_value, changed_at)
	SELECT o.deal_id, v.field, v.old_value, v.new_value, o.changed_at
	FROM obs o
	CROSS JOIN LATERAL (VALUES
		('stage', o.old_stage, o.new_stage, o.old_stage IS DISTINCT FROM o.new_stage),
		('close_date', to_char(o.old_close_date, 'YYYY-MM-DD'), to_char(o.new_close_date, 'YYYY-MM-DD'),
		 o.old_close_date IS DISTINCT FROM o.new_close_date),
		('amount', o.old_amount::text, o.new_amount::text, o.old_amount IS DISTINCT FROM o.new_amount),
		('owner', o.old_owner, o.new_owner, o.old_owner IS DISTINCT FROM o.new_owner)
	) AS v(field, old_value, new_value, changed)
	WHERE v.changed
), left_stays AS (
	INSERT INTO deal_stage_history (deal_id, stage_id, stage_external_id, entered_at, exited_at, source)
	SELECT o.deal_id, st.id, o.old_stage, o.old_stage_entered_at, o.stage_entered, 'observed'
	FROM moves o
	LEFT JOIN stages st ON st.connection_id = $1 AND st.external_id = o.old_stage
	WHERE o.old_stage IS NOT NULL AND o.old_stage_entered_at IS NOT NULL AND o.old_stage_entered_at < o.stage_entered
	  AND NOT EXISTS (SELECT 1 FROM deal_stage_history h
	                  WHERE h.deal_id = o.deal_id AND h.stage_external_id = o.old_stage
	                    AND (h.exited_at IS NULL OR h.exited_at > o.old_stage_entered_at))
	ON CONFLICT (deal_id, stage_external_id, entered_at) DO NOTHING
), closed_stays AS (
	UPDATE deal_stage_history h SET exited_at = o.stage_entered
	FROM moves o
	WHERE h.deal_id = o.deal_id AND h.exited_at IS NULL AND h.stage_external_id IS DISTINCT FROM o.new_stage
	  AND h.entered_at <= o.stage_entered
), new_stays AS (
	INSERT INTO deal_stage_history (deal_id, stage_id, stage_external_id, entered_at, source)
	SELECT o.deal_id, coalesce(o.new_stage_id, st.id), o.new_stage, o.stage_entered, 'observed'
	FROM moves o
	LEFT JOIN stages st ON st.connection_id = $1 AND st.external_id = o.new_stage
	WHERE o.new_stage IS NOT NULL
	ON CONFLICT (deal_id, stage_external_id, entered_at) DO NOTHING
)`

// resolveSQL maps a target entity to the statements that resolve the references waiting
// for its rows inserted now ($1 = connection id, $2 = the inserted ids).
var resolveSQL = map[pipeline.Entity][]string{}

func init() {
	for _, s := range entitySpecs {
		for _, r := range s.refs {
			resolveSQL[r.target] = append(resolveSQL[r.target], fmt.Sprintf(
				`UPDATE %[1]s t SET %[2]s = r.id FROM %[4]s r
				WHERE r.id = ANY($2) AND t.connection_id = $1 AND t.%[2]s IS NULL AND t.%[3]s = r.external_id`,
				s.entity, r.idColumn, r.externalColumn, r.target))
		}
	}
	resolveSQL[pipeline.EntityStages] = append(resolveSQL[pipeline.EntityStages],
		`UPDATE deal_stage_history h SET stage_id = r.id FROM stages r, deals d
		WHERE r.id = ANY($2) AND h.stage_id IS NULL AND h.stage_external_id = r.external_id
		  AND d.id = h.deal_id AND d.connection_id = $1`)
}

func writeEntity(ctx context.Context, tx pgx.Tx, w Write, spec *entitySpec, n int, rows func(int) []any) (Counts, error) {
	if _, err := tx.Exec(ctx, spec.createSQL); err != nil {
		return Counts{}, fmt.Errorf("creating staging table: %w", err)
	}
	ids := make(map[string]struct{}, n)
	_, err := tx.CopyFrom(ctx, pgx.Identifier{spec.stageTable}, spec.copyColumns(), pgx.CopyFromSlice(n, func(i int) ([]any, error) {
		r := rows(i)
		r[0] = int32(i)
		ids[r[1].(string)] = struct{}{}
		return r, nil
	}))
	if err != nil {
		return Counts{}, fmt.Errorf("copying into staging table: %w", err)
	}
	staged := int64(len(ids))
	var (
		inserted, updated int64
		insertedIDs       []int64
	)
	if err := tx.QueryRow(ctx, spec.upsertSQL, w.ConnectionID, w.SyncedAt, w.FullRead).Scan(&inserted, &updated, &insertedIDs); err != nil {
		return Counts{}, fmt.Errorf("upserting: %w", err)
	}
	if len(insertedIDs) > 0 {
		if err := execAll(ctx, tx, resolveSQL[spec.entity], w.ConnectionID, insertedIDs); err != nil {
			return Counts{}, fmt.Errorf("resolving references to new %s: %w", spec.entity, err)
		}
	}
	if _, err := tx.Exec(ctx, "DROP TABLE "+spec.stageTable); err != nil {
		return Counts{}, fmt.Errorf("dropping staging table: %w", err)
	}
	return Counts{Inserted: inserted, Updated: updated, Unchanged: staged - inserted - updated}, nil
}

// execAll runs statements that take the same arguments in one round trip.
func execAll(ctx context.Context, tx pgx.Tx, statements []string, args ...any) error {
	if len(statements) == 0 {
		return nil
	}
	batch := &pgx.Batch{}
	for _, s := range statements {
		batch.Queue(s, args...)
	}
	return tx.SendBatch(ctx, batch).Close()
}

const createHistoryStageSQL = `CREATE TEMP TABLE pw_stage_history (
	ord integer, deal_external_id text, stage_external_id text, entered_at timestamptz, exited_at timestamptz
) ON COMMIT DROP`

// upsertHistorySQL merges vendor stage entries. The vendor's word wins over an observed
// entry for the same stay, but a known exit is never reopened by an older page.
const upsertHistorySQL = `WITH src AS (
	SELECT DISTINCT ON (d.id, s.stage_external_id, s.entered_at)
	       d.id AS deal_id, st.id AS stage_id, s.stage_external_id, s.entered_at, s.exited_at
	FROM pw_stage_history s
	JOIN deals d ON d.connection_id = $1 AND d.external_id = s.deal_external_id
	LEFT JOIN stages st ON st.connection_id = $1 AND st.external_id = s.stage_external_id
	ORDER BY d.id, s.stage_external_id, s.entered_at, s.ord DESC
), up AS (
	INSERT INTO deal_stage_history AS h (deal_id, stage_id, stage_external_id, entered_at, exited_at, source)
	SELECT deal_id, stage_id, stage_external_id, entered_at, exited_at, 'vendor' FROM src
	ON CONFLICT (deal_id, stage_external_id, entered_at) DO UPDATE SET
		source = 'vendor', exited_at = coalesce(EXCLUDED.exited_at, h.exited_at), stage_id = coalesce(EXCLUDED.stage_id, h.stage_id)
	WHERE (h.source, h.exited_at, h.stage_id)
	      IS DISTINCT FROM ('vendor', coalesce(EXCLUDED.exited_at, h.exited_at), coalesce(EXCLUDED.stage_id, h.stage_id))
	RETURNING h.xmax = 0 AS inserted
)
SELECT (SELECT count(*) FROM src), count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up`

func writeStageHistory(ctx context.Context, tx pgx.Tx, connectionID int64, entries []pipeline.StageEntry) (Counts, error) {
	if _, err := tx.Exec(ctx, createHistoryStageSQL); err != nil {
		return Counts{}, fmt.Errorf("creating staging table: %w", err)
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"pw_stage_history"},
		[]string{"ord", "deal_external_id", "stage_external_id", "entered_at", "exited_at"},
		pgx.CopyFromSlice(len(entries), func(i int) ([]any, error) {
			e := &entries[i]
			return []any{int32(i), clean(e.DealExternalID), clean(e.StageExternalID), timestamp(e.EnteredAt), timestamp(e.ExitedAt)}, nil
		}))
	if err != nil {
		return Counts{}, fmt.Errorf("copying into staging table: %w", err)
	}
	var staged, inserted, updated int64
	if err := tx.QueryRow(ctx, upsertHistorySQL, connectionID).Scan(&staged, &inserted, &updated); err != nil {
		return Counts{}, fmt.Errorf("upserting: %w", err)
	}
	if _, err := tx.Exec(ctx, "DROP TABLE pw_stage_history"); err != nil {
		return Counts{}, fmt.Errorf("dropping staging table: %w", err)
	}
	// Entries of deals not stored (yet) are counted as unchanged: the connector sends a
	// deal's history with the deal, so a later read brings both.
	return Counts{Inserted: inserted, Updated: updated, Unchanged: int64(len(entries)) - inserted - updated}, nil
}

const createDeletionStageSQL = `CREATE TEMP TABLE pw_stage_deletions (
	entity text, external_id text, deleted_at timestamptz
) ON COMMIT DROP`

// tombstoneSQL sets deleted_at on the rows of one table named in pw_stage_deletions. A
// row updated at the vendor after the deletion time (restored meanwhile) is left live.
// $1 = connection id, $2 = now, $3 = entity.
const tombstoneSQL = `UPDATE %s t SET deleted_at = coalesce(d.deleted_at, $2), synced_at = $2
FROM (SELECT DISTINCT ON (external_id) external_id, deleted_at FROM pw_stage_deletions
      WHERE entity = $3 ORDER BY external_id, deleted_at DESC NULLS LAST) d
WHERE t.connection_id = $1 AND t.external_id = d.external_id AND t.deleted_at IS NULL
  AND (d.deleted_at IS NULL OR t.remote_updated_at IS NULL OR t.remote_updated_at <= d.deleted_at)`

func applyDeletions(ctx context.Context, tx pgx.Tx, connectionID int64, dels []pipeline.Deletion, now time.Time) (int64, error) {
	if _, err := tx.Exec(ctx, createDeletionStageSQL); err != nil {
		return 0, fmt.Errorf("creating staging table: %w", err)
	}
	entities := map[pipeline.Entity]bool{}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"pw_stage_deletions"}, []string{"entity", "external_id", "deleted_at"},
		pgx.CopyFromSlice(len(dels), func(i int) ([]any, error) {
			d := &dels[i]
			entities[d.Entity] = true
			return []any{string(d.Entity), clean(d.ExternalID), timestamp(d.DeletedAt)}, nil
		}))
	if err != nil {
		return 0, fmt.Errorf("copying into staging table: %w", err)
	}
	var deleted int64
	for _, spec := range entitySpecs {
		if !entities[spec.entity] {
			continue
		}
		tag, err := tx.Exec(ctx, fmt.Sprintf(tombstoneSQL, spec.entity), connectionID, now, string(spec.entity))
		if err != nil {
			return 0, fmt.Errorf("tombstoning %s: %w", spec.entity, err)
		}
		deleted += tag.RowsAffected()
	}
	if _, err := tx.Exec(ctx, "DROP TABLE pw_stage_deletions"); err != nil {
		return 0, fmt.Errorf("dropping staging table: %w", err)
	}
	return deleted, nil
}
