package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pipewatch/pipewatch/pipeline"
)

// Seen is the set of external ids a Full read saw, per entity.
type Seen map[pipeline.Entity][]string

// Add notes that the record id of entity was seen.
func (s Seen) Add(entity pipeline.Entity, id string) {
	if id != "" {
		s[entity] = append(s[entity], id)
	}
}

// AddBatch notes every record of b (deletions and stage history excluded: they are not
// live records of a table).
func (s Seen) AddBatch(b *pipeline.Batch) {
	for i := range b.Owners {
		s.Add(pipeline.EntityOwners, b.Owners[i].ExternalID)
	}
	for i := range b.Pipelines {
		s.Add(pipeline.EntityPipelines, b.Pipelines[i].ExternalID)
	}
	for i := range b.Stages {
		s.Add(pipeline.EntityStages, b.Stages[i].ExternalID)
	}
	for i := range b.Accounts {
		s.Add(pipeline.EntityAccounts, b.Accounts[i].ExternalID)
	}
	for i := range b.Contacts {
		s.Add(pipeline.EntityContacts, b.Contacts[i].ExternalID)
	}
	for i := range b.Leads {
		s.Add(pipeline.EntityLeads, b.Leads[i].ExternalID)
	}
	for i := range b.Deals {
		s.Add(pipeline.EntityDeals, b.Deals[i].ExternalID)
	}
	for i := range b.Activities {
		s.Add(pipeline.EntityActivities, b.Activities[i].ExternalID)
	}
}

// Reconciliation is the state of one Full read of a stream. Its cursor and the ids it has
// seen are stored with each committed batch (Advance), so a read interrupted after several
// batches resumes where it stopped; the unseen rows are tombstoned only by Finish, after
// the last page of a complete read.
//
// A read that fits in one batch stores nothing: Finish gets its ids directly.
type Reconciliation struct {
	ConnectionID int64
	Stream       string
	// Cursor is where the read resumes ("" = from the start).
	Cursor string
	// StartedAt is when the read began. Rows synced since (by this read or any other run)
	// are never tombstoned by it.
	StartedAt time.Time
	// Resumed is true when an interrupted read is being continued.
	Resumed bool
	// Refused explains, after Finish, each table whose tombstoning was refused because
	// it would have deleted most of its rows (see massTombstone).
	Refused []string

	stored bool
}

// ResumeReconciliation returns the unfinished Full read of (connection, stream), or a new
// one starting at now. An unfinished read older than maxAge is discarded and started over.
func ResumeReconciliation(ctx context.Context, db Querier, connectionID int64, stream string, now time.Time, maxAge time.Duration) (*Reconciliation, error) {
	r := &Reconciliation{ConnectionID: connectionID, Stream: stream}
	err := db.QueryRow(ctx, `SELECT cursor, started_at FROM sync_reconciliations WHERE connection_id = $1 AND stream = $2`,
		connectionID, stream).Scan(&r.Cursor, &r.StartedAt)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		r.StartedAt = now
		return r, nil
	case err != nil:
		return nil, fmt.Errorf("reading the %s reconciliation: %w", stream, err)
	}
	if now.Sub(r.StartedAt) <= maxAge {
		r.stored, r.Resumed = true, true
		return r, nil
	}
	if _, err := db.Exec(ctx, `DELETE FROM sync_reconciliations WHERE connection_id = $1 AND stream = $2 AND started_at = $3`,
		connectionID, stream, r.StartedAt); err != nil {
		return nil, fmt.Errorf("discarding the stale %s reconciliation: %w", stream, err)
	}
	return &Reconciliation{ConnectionID: connectionID, Stream: stream, StartedAt: now}, nil
}

// Advance stores the ids seen by a committed batch and the cursor after it, in tx. It
// returns ErrConcurrentRun when another read of the stream moved the state meanwhile.
func (r *Reconciliation) Advance(ctx context.Context, tx pgx.Tx, seen Seen, next string, at time.Time) error {
	if r.stored {
		tag, err := tx.Exec(ctx, `UPDATE sync_reconciliations SET cursor = $5, updated_at = $6
			WHERE connection_id = $1 AND stream = $2 AND cursor = $3 AND started_at = $4`,
			r.ConnectionID, r.Stream, r.Cursor, r.StartedAt, next, at)
		if err != nil {
			return fmt.Errorf("saving the %s reconciliation cursor: %w", r.Stream, err)
		}
		if tag.RowsAffected() == 0 {
			return ErrConcurrentRun
		}
	} else {
		tag, err := tx.Exec(ctx, `INSERT INTO sync_reconciliations (connection_id, stream, cursor, started_at, updated_at)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (connection_id, stream) DO NOTHING`,
			r.ConnectionID, r.Stream, next, r.StartedAt, at)
		if err != nil {
			return fmt.Errorf("starting the %s reconciliation: %w", r.Stream, err)
		}
		if tag.RowsAffected() == 0 {
			return ErrConcurrentRun
		}
	}
	if rows := seenRows(seen, r.ConnectionID, r.Stream); len(rows) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"sync_reconciliation_seen"},
			[]string{"connection_id", "stream", "entity", "external_id"}, pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("recording the records seen by the %s reconciliation: %w", r.Stream, err)
		}
	}
	r.Cursor, r.stored = next, true
	return nil
}

// seenRows returns a COPY row per seen id: prefix, entity, external id.
func seenRows(seen Seen, prefix ...any) [][]any {
	var rows [][]any
	for entity, ids := range seen {
		for _, id := range ids {
			rows = append(rows, append(append(make([]any, 0, len(prefix)+2), prefix...), string(entity), clean(id)))
		}
	}
	return rows
}

// unseenSQL holds for a live row t of one table that the read did not see and that no
// run synced since the read began. $1 = connection, $2 = stream, $3 = entity, $4 = read
// start.
const unseenSQL = `t.synced_at < $4
  AND NOT EXISTS (SELECT 1 FROM sync_reconciliation_seen s
                  WHERE s.connection_id = $1 AND s.stream = $2 AND s.entity = $3 AND s.external_id = t.external_id)
  AND NOT EXISTS (SELECT 1 FROM pw_seen f WHERE f.entity = $3 AND f.external_id = t.external_id)`

// tombstoneUnseenSQL tombstones the unseen rows of one table ($5 = now).
const tombstoneUnseenSQL = `UPDATE %s t SET deleted_at = $5, synced_at = $5
WHERE t.connection_id = $1 AND t.deleted_at IS NULL AND ` + unseenSQL

// countUnseenSQL counts what tombstoneUnseenSQL would tombstone, and the live rows.
const countUnseenSQL = `SELECT count(*) FILTER (WHERE ` + unseenSQL + `), count(*)
FROM %s t WHERE t.connection_id = $1 AND t.deleted_at IS NULL`

// massTombstone reports whether tombstoning unseen of live rows looks like a broken read
// (an empty answer, a token that lost a scope) rather than deletions: more than half of at
// least 20 rows. Deletions that large come through the vendors' deletion streams instead.
func massTombstone(unseen, live int64) bool {
	return live >= 20 && unseen*2 > live
}

// Finish ends the read after its last page, in the transaction that commits that page.
// With tombstone, the rows of entities that were seen neither in earlier batches nor in
// seen (the last batch) are tombstoned; it returns how many. The stored state is removed.
func (r *Reconciliation) Finish(ctx context.Context, tx pgx.Tx, seen Seen, entities []pipeline.Entity, tombstone bool, now time.Time) (int64, error) {
	var deleted int64
	if tombstone && len(entities) > 0 {
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE pw_seen (entity text, external_id text) ON COMMIT DROP`); err != nil {
			return 0, fmt.Errorf("creating the seen table: %w", err)
		}
		if rows := seenRows(seen); len(rows) > 0 {
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"pw_seen"}, []string{"entity", "external_id"}, pgx.CopyFromRows(rows)); err != nil {
				return 0, fmt.Errorf("copying the records seen by the %s reconciliation: %w", r.Stream, err)
			}
		}
		if _, err := tx.Exec(ctx, `ANALYZE pw_seen`); err != nil {
			return 0, fmt.Errorf("analyzing the seen table: %w", err)
		}
		for _, e := range entities {
			if _, ok := specByEntity[e]; !ok {
				return 0, fmt.Errorf("reconciling %s: unknown entity %q", r.Stream, e)
			}
			var unseen, live int64
			if err := tx.QueryRow(ctx, fmt.Sprintf(countUnseenSQL, e), r.ConnectionID, r.Stream, string(e), r.StartedAt).
				Scan(&unseen, &live); err != nil {
				return 0, fmt.Errorf("counting %s not seen by the %s reconciliation: %w", e, r.Stream, err)
			}
			if massTombstone(unseen, live) {
				r.Refused = append(r.Refused, fmt.Sprintf("the %s reconciliation did not tombstone %d of %d %s: a full read "+
					"that misses most records is more likely a vendor or permission problem than a mass deletion; "+
					"check the connection, then run `pipewatch sync --stream %s --full` again (records deleted at the "+
					"vendor still arrive through the deletion streams)", r.Stream, unseen, live, e, r.Stream))
				continue
			}
			tag, err := tx.Exec(ctx, fmt.Sprintf(tombstoneUnseenSQL, e), r.ConnectionID, r.Stream, string(e), r.StartedAt, now)
			if err != nil {
				return 0, fmt.Errorf("tombstoning %s not seen by the %s reconciliation: %w", e, r.Stream, err)
			}
			deleted += tag.RowsAffected()
		}
		if _, err := tx.Exec(ctx, `DROP TABLE pw_seen`); err != nil {
			return 0, fmt.Errorf("dropping the seen table: %w", err)
		}
	}
	if r.stored {
		tag, err := tx.Exec(ctx, `DELETE FROM sync_reconciliations
			WHERE connection_id = $1 AND stream = $2 AND cursor = $3 AND started_at = $4`,
			r.ConnectionID, r.Stream, r.Cursor, r.StartedAt)
		if err != nil {
			return 0, fmt.Errorf("finishing the %s reconciliation: %w", r.Stream, err)
		}
		if tag.RowsAffected() == 0 {
			return 0, ErrConcurrentRun
		}
	}
	return deleted, nil
}
