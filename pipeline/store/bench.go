package store

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/pipewatch/pipewatch/pipeline"
)

// Beginner is a pool: it runs statements and begins transactions.
type Beginner interface {
	Querier
	Begin(ctx context.Context) (pgx.Tx, error)
}

// SyntheticDeals returns n deals shaped like a CRM's: ids, names, cent amounts, a handful
// of pipelines, stages and owners, dates, and a raw payload of a few hundred bytes. The
// same seed gives the same deals.
func SyntheticDeals(n int, seed uint64) []pipeline.Deal {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	deals := make([]pipeline.Deal, n)
	for i := range deals {
		id := fmt.Sprintf("%d", 10_000_000+i)
		updated := base.Add(time.Duration(i) * time.Second)
		stage := fmt.Sprintf("stage-%d", rng.IntN(6))
		owner := fmt.Sprintf("owner-%d", rng.IntN(40))
		amount := decimal.New(rng.Int64N(50_000_000), -2)
		closeDate := base.AddDate(0, 0, 30+rng.IntN(300))
		raw, _ := json.Marshal(map[string]any{
			"id": id, "properties": map[string]string{
				"dealname": "Deal " + id, "amount": amount.String(), "dealstage": stage, "hubspot_owner_id": owner,
				"closedate": closeDate.Format(time.RFC3339), "hs_lastmodifieddate": updated.Format(time.RFC3339Nano),
				"pipeline": "default", "description": "Renewal with expansion seats for the analytics team",
			},
			"createdAt": base.Format(time.RFC3339), "updatedAt": updated.Format(time.RFC3339Nano), "archived": false,
		})
		deals[i] = pipeline.Deal{
			Record: pipeline.Record{ExternalID: id, CreatedAt: base, UpdatedAt: updated, Raw: raw},
			Name:   "Deal " + id, Amount: decimal.NewNullDecimal(amount), Currency: "USD",
			PipelineExternalID: "default", StageExternalID: stage, OwnerExternalID: owner,
			AccountExternalID: fmt.Sprintf("company-%d", rng.IntN(2000)), CloseDate: closeDate,
			StageEnteredAt: updated.Add(-72 * time.Hour), LastActivityAt: updated.Add(-time.Hour),
		}
	}
	return deals
}

// WriteComparison is the write path measured against a raw COPY of the same rows.
type WriteComparison struct {
	Rows      int
	BatchSize int
	// Upsert is the time to write the deals through WriteBatch, one committed
	// transaction per batch, into a connection with no rows yet.
	Upsert time.Duration
	// Replay is the time to write the same deals again (every row unchanged).
	Replay time.Duration
	// RawCopy is the time to COPY the same rows, batch by batch, each committed, into a
	// table of the deals table's shape (columns, defaults, indexes; no foreign keys).
	RawCopy time.Duration
}

// Ratio is the write path's speed as a fraction of raw COPY's (1 = as fast).
func (c WriteComparison) Ratio() float64 { return c.RawCopy.Seconds() / c.Upsert.Seconds() }

// UpsertRowsPerSecond is the write path's throughput.
func (c WriteComparison) UpsertRowsPerSecond() float64 { return float64(c.Rows) / c.Upsert.Seconds() }

// CopyRowsPerSecond is raw COPY's throughput.
func (c WriteComparison) CopyRowsPerSecond() float64 { return float64(c.Rows) / c.RawCopy.Seconds() }

// CompareWritePath measures the write path against raw COPY on db, in batches of
// batchSize. It works in a scratch connection and a scratch table and removes both.
func CompareWritePath(ctx context.Context, db Beginner, deals []pipeline.Deal, batchSize int) (WriteComparison, error) {
	c := WriteComparison{Rows: len(deals), BatchSize: batchSize}
	var connID int64
	name := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	if err := db.QueryRow(ctx, `INSERT INTO connections (name, kind, status, status_reason) VALUES ($1, 'hubspot', 'paused', 'write benchmark') RETURNING id`,
		name).Scan(&connID); err != nil {
		return c, fmt.Errorf("creating the benchmark connection: %w", err)
	}
	table := fmt.Sprintf("pw_bench_copy_%d", connID)
	defer func() {
		cleanup := context.WithoutCancel(ctx)
		_, _ = db.Exec(cleanup, `DROP TABLE IF EXISTS `+table)
		_, _ = db.Exec(cleanup, `DELETE FROM connections WHERE id = $1`, connID)
	}()
	if _, err := db.Exec(ctx, `CREATE TABLE `+table+` (LIKE deals INCLUDING ALL)`); err != nil {
		return c, fmt.Errorf("creating the COPY table: %w", err)
	}

	spec := specByEntity[pipeline.EntityDeals]
	cols := append([]string{"connection_id"}, spec.allColumns()...)
	_, source := spec.source(&pipeline.Batch{Deals: deals}, nil)
	upsert := func(lo, hi int) error {
		b := &pipeline.Batch{Deals: deals[lo:hi]}
		return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
			_, err := WriteBatch(ctx, tx, Write{ConnectionID: connID, Batch: b, SyncedAt: time.Now()})
			return err
		})
	}
	rawCopy := func(lo, hi int) error {
		return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
			_, err := tx.CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromSlice(hi-lo, func(i int) ([]any, error) {
				r := source(lo + i)
				r[0] = connID // the ord slot carries the connection id here
				return r, nil
			}))
			return err
		})
	}
	// Batches of both paths alternate, so a machine busy with other work slows both alike.
	for lo := 0; lo < len(deals); lo += batchSize {
		hi := min(lo+batchSize, len(deals))
		start := time.Now()
		if err := upsert(lo, hi); err != nil {
			return c, fmt.Errorf("writing deals: %w", err)
		}
		c.Upsert += time.Since(start)
		start = time.Now()
		if err := rawCopy(lo, hi); err != nil {
			return c, fmt.Errorf("copying deals: %w", err)
		}
		c.RawCopy += time.Since(start)
	}
	start := time.Now()
	for lo := 0; lo < len(deals); lo += batchSize {
		if err := upsert(lo, min(lo+batchSize, len(deals))); err != nil {
			return c, fmt.Errorf("replaying deals: %w", err)
		}
	}
	c.Replay = time.Since(start)
	return c, nil
}
