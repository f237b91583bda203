package analytics

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

const snapshotSQL = `
INSERT INTO pipeline_snapshots (snapshot_date, owner_id, canonical_stage, currency, deals, deals_without_amount,
                                amount, weighted_amount, taken_at)
SELECT @day::date, d.owner_id, coalesce(s.canonical_stage, 'unmapped'), coalesce(d.currency, ''),
       count(*), count(*) FILTER (WHERE d.amount IS NULL), coalesce(sum(d.amount), 0),
       round(coalesce(sum(d.amount * coalesce(d.probability, s.probability, 0)), 0), 2), @taken_at
FROM deals d
LEFT JOIN stages s ON s.id = d.stage_id
WHERE d.deleted_at IS NULL AND NOT d.is_closed
GROUP BY 2, 3, 4`

// TakeSnapshot records the open pipeline of now under the UTC day of day in
// pipeline_snapshots: per owner, canonical stage and currency, the open deals (count,
// without amount, amount, weighted amount, as in OpenPipeline). Taking a day again
// replaces its rows, so the last snapshot of a day wins and a retry never duplicates;
// concurrent calls for one day are serialized. It returns the number of rows written.
func TakeSnapshot(ctx context.Context, db DB, day, now time.Time) (int64, error) {
	var written int64
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		d := pgDate(utcDay(day))
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('pipeline_snapshots'), hashtext($1))`, d); err != nil {
			return fmt.Errorf("locking the snapshot of %s: %w", d, err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM pipeline_snapshots WHERE snapshot_date = $1::date`, d); err != nil {
			return fmt.Errorf("replacing the snapshot of %s: %w", d, err)
		}
		tag, err := tx.Exec(ctx, snapshotSQL, pgx.NamedArgs{"day": d, "taken_at": now})
		if err != nil {
			return fmt.Errorf("writing the snapshot of %s: %w", d, err)
		}
		written = tag.RowsAffected()
		return nil
	})
	return written, err
}
