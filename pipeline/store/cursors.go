package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// StreamCursor is a stream's stored cursor as a run read it. SaveCursor replaces it only
// while it is still what the run read (compare-and-swap), so two overlapping runs of one
// stream can't both advance it.
type StreamCursor struct {
	Value string
	// Stored is false when the stream has never committed a cursor.
	Stored bool
}

// LoadCursor returns the cursor of (connection, stream).
func LoadCursor(ctx context.Context, db Querier, connectionID int64, stream string) (StreamCursor, error) {
	var c StreamCursor
	err := db.QueryRow(ctx, `SELECT cursor FROM sync_cursors WHERE connection_id = $1 AND stream = $2`,
		connectionID, stream).Scan(&c.Value)
	if errors.Is(err, pgx.ErrNoRows) {
		return StreamCursor{}, nil
	}
	if err != nil {
		return StreamCursor{}, fmt.Errorf("reading the %s cursor: %w", stream, err)
	}
	c.Stored = true
	return c, nil
}

// SaveCursor replaces old by next and returns the new stored cursor. It writes nothing when
// next equals old, and returns ErrConcurrentRun when the stored cursor is no longer old.
func SaveCursor(ctx context.Context, db Querier, connectionID int64, stream string, old StreamCursor, next string, at time.Time) (StreamCursor, error) {
	if next == old.Value && (old.Stored || next == "") {
		return old, nil
	}
	var (
		tag pgconn.CommandTag
		err error
	)
	if old.Stored {
		tag, err = db.Exec(ctx, `UPDATE sync_cursors SET cursor = $4, updated_at = $5
			WHERE connection_id = $1 AND stream = $2 AND cursor = $3`, connectionID, stream, old.Value, next, at)
	} else {
		tag, err = db.Exec(ctx, `INSERT INTO sync_cursors (connection_id, stream, cursor, updated_at)
			VALUES ($1, $2, $3, $4) ON CONFLICT (connection_id, stream) DO NOTHING`, connectionID, stream, next, at)
	}
	if err != nil {
		return old, fmt.Errorf("saving the %s cursor: %w", stream, err)
	}
	if tag.RowsAffected() == 0 {
		return old, ErrConcurrentRun
	}
	return StreamCursor{Value: next, Stored: true}, nil
}
