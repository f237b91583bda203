// Package store is the Postgres store of pipewatch's normalized model: it writes what
// connectors read (bulk, idempotent, order-safe upserts with references resolved and
// changes observed), keeps sync cursors, sync runs and the reconciliation state of full
// reads, and reads the connection rows the sync engine runs on.
//
// Writes take a pgx.Tx so that the records of a batch, the cursor after them and the run's
// progress commit together: a crash replays at most the uncommitted batch, and replays
// write nothing.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pipewatch/pipewatch/pipeline"
)

// Querier is a pool, a connection or a transaction.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ErrConcurrentRun means another run of the same stream committed progress since this run
// read its cursor, so this run's batch was not written (the compare-and-swap on the cursor
// failed). The other run carries on; nothing is lost.
var ErrConcurrentRun = errors.New("another sync of this stream committed progress concurrently; this run stopped without writing its batch")

// Write is one batch of records for one connection.
type Write struct {
	ConnectionID int64
	Batch        *pipeline.Batch
	// SyncedAt is the engine's clock at write time: synced_at of written rows and the
	// deleted_at of deletions whose vendor time is unknown.
	SyncedAt time.Time
	// StageMap overrides canonical stages (the connection's stage_map).
	StageMap pipeline.StageMap
	// FullRead says the records come from a Full read, which is authoritative about what
	// is live: a tombstoned row that is read again is revived even when nothing else about
	// it changed. Incremental reads revive a row only when it changed at the vendor.
	FullRead bool
}

// Counts says what a write did. Derived rows (deal_changes, observed stage history) and
// resolved references are not counted.
type Counts struct {
	// Inserted and Updated count rows of the synced tables (vendor stage history included)
	// that were created or really changed.
	Inserted, Updated int64
	// Unchanged counts records that matched the stored row, or were older than it.
	Unchanged int64
	// Deleted counts rows tombstoned.
	Deleted int64
	// Rejected lists records that could not be stored as they are; the rest of the batch
	// was written.
	Rejected []Rejection
}

// Add adds o to c.
func (c *Counts) Add(o Counts) {
	c.Inserted += o.Inserted
	c.Updated += o.Updated
	c.Unchanged += o.Unchanged
	c.Deleted += o.Deleted
	c.Rejected = append(c.Rejected, o.Rejected...)
}

// Rejection names a record the store refused and why.
type Rejection struct {
	Entity     pipeline.Entity
	ExternalID string
	Reason     string
}

func (r Rejection) String() string {
	id := r.ExternalID
	if id == "" {
		id = "(no id)"
	}
	return fmt.Sprintf("%s %s: %s", r.Entity, id, r.Reason)
}

// WriteBatch writes w.Batch in tx: per entity, referenced entities first, a COPY into a
// temporary table and one INSERT … ON CONFLICT that changes a stored row only when the
// incoming remote_updated_at is not older and the content differs. References are
// resolved from the vendor ids in the same statement, and references that were waiting for
// a row inserted now are resolved after it. Changes of a deal's stage, close date, amount
// or owner are recorded in deal_changes and (stage) deal_stage_history with source
// 'observed'. Vendor stage history is merged idempotently; deletions set deleted_at.
//
// Invalid records are left out and listed in Counts.Rejected.
func WriteBatch(ctx context.Context, tx pgx.Tx, w Write) (Counts, error) {
	var counts Counts
	b, rejected := validBatch(w.Batch, w.StageMap)
	counts.Rejected = rejected
	for _, spec := range entitySpecs {
		n, rows := spec.source(b, w.StageMap)
		if n == 0 {
			continue
		}
		c, err := writeEntity(ctx, tx, w, spec, n, rows)
		if err != nil {
			return Counts{}, fmt.Errorf("writing %s: %w", spec.entity, err)
		}
		counts.Add(c)
	}
	if len(b.StageHistory) > 0 {
		c, err := writeStageHistory(ctx, tx, w.ConnectionID, b.StageHistory)
		if err != nil {
			return Counts{}, fmt.Errorf("writing deal stage history: %w", err)
		}
		counts.Add(c)
	}
	if len(b.Deletions) > 0 {
		n, err := applyDeletions(ctx, tx, w.ConnectionID, b.Deletions, w.SyncedAt)
		if err != nil {
			return Counts{}, fmt.Errorf("applying deletions: %w", err)
		}
		counts.Deleted += n
	}
	return counts, nil
}
