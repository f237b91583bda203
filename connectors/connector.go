// Package connectors defines what a vendor connector is to the sync engine: streams read in
// pages from an opaque cursor, mapped to pipeline records with the raw payload kept. It also
// holds the typed errors connectors return and the HTTP client chain they all share.
package connectors

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/pipewatch/pipewatch/pipeline"
)

// Cursor is an opaque, connector-owned resume token. "" means "from the beginning".
// The engine stores it verbatim and never parses it.
type Cursor string

// Mode is how a stream is read.
type Mode string

const (
	// Incremental reads records changed since the cursor, ordered by (updated_at, id).
	Incremental Mode = "incremental"
	// Full reads every live record of the stream, in any stable order. The engine uses it
	// for reconciliation: after the last page, records of the stream's entities that were
	// not seen are tombstoned.
	Full Mode = "full"
)

// Stream describes one stream a connector can read.
type Stream struct {
	// Name is stable; it keys sync_cursors and sync_runs ("deals", "owners", "archived_deals" …).
	Name string
	// Entities are the tables the stream writes. A Full read tombstones their unseen rows.
	Entities []pipeline.Entity
	// Incremental is true when the stream honours cursors; false for small reference
	// streams (owners, pipelines) that are re-read whole on every run.
	Incremental bool
	// Reconcile is true when a Full read returns every live record, so unseen rows may
	// be tombstoned. Such a stream must be the only one writing live rows of its
	// Entities (otherwise rows written by a sibling stream would look unseen). Deletion
	// streams (archived lists) are not reconcilable.
	Reconcile bool
}

// ReadRequest asks for the page after Cursor.
type ReadRequest struct {
	Stream string
	Mode   Mode
	Cursor Cursor
	// SyncStart is when the run began: an incremental window never reaches past it (nor
	// past the vendor's now minus the connector's lag), so late commits are read next run.
	SyncStart time.Time
}

// Page is one bounded unit of progress. The engine commits its records and Next in one
// transaction, so a crash replays at most the uncommitted pages and replays are harmless.
type Page struct {
	pipeline.Batch
	// Next resumes after this page. When Done, it is the high-water mark for the next run.
	Next Cursor
	// Done is true when the stream is caught up (incremental) or exhausted (full).
	Done bool
	// Skipped lists records that could not be mapped; the rest of the page is still good.
	Skipped []SkippedRecord
}

// SkippedRecord names a record a connector could not map and why.
type SkippedRecord struct {
	Entity     pipeline.Entity
	ExternalID string // "" when the payload had no usable id
	Reason     string
}

// Connector reads a vendor's streams.
type Connector interface {
	// Streams lists the streams in the order a full sync should read them (referenced
	// entities first).
	Streams() []Stream
	// Read returns the page after req.Cursor. It returns ctx.Err() promptly when ctx is
	// cancelled and the typed errors of this package for vendor failures.
	Read(ctx context.Context, req ReadRequest) (Page, error)
}

// StreamByName returns the stream of c called name.
func StreamByName(c Connector, name string) (Stream, bool) {
	for _, s := range c.Streams() {
		if s.Name == name {
			return s, true
		}
	}
	return Stream{}, false
}

// Stats counts the HTTP traffic of one sync run; the shared HTTP client chain fills it and
// the engine records it in sync_runs.
type Stats struct {
	// Requests counts attempts sent to the vendor, retries included.
	Requests atomic.Int64
	// Retries counts attempts that repeated an earlier failed attempt.
	Retries atomic.Int64
}
