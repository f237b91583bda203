package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/dbtest"
	"github.com/pipewatch/pipewatch/pipeline"
	"github.com/pipewatch/pipewatch/pipeline/store"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

var t0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

func newConnection(ctx context.Context, t *testing.T, db store.Querier, name string) int64 {
	t.Helper()
	var id int64
	require.NoError(t, db.QueryRow(ctx, `INSERT INTO connections (name, kind) VALUES ($1, 'hubspot') RETURNING id`, name).Scan(&id))
	return id
}

// write commits w in a transaction of its own (a savepoint of the test transaction).
func write(ctx context.Context, t *testing.T, db interface {
	Begin(context.Context) (pgx.Tx, error)
}, w store.Write) store.Counts {
	t.Helper()
	var counts store.Counts
	require.NoError(t, pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		var err error
		counts, err = store.WriteBatch(ctx, tx, w)
		return err
	}))
	return counts
}

func rec(id string, updated time.Time) pipeline.Record {
	return pipeline.Record{ExternalID: id, CreatedAt: t0.Add(-24 * time.Hour), UpdatedAt: updated,
		Raw: json.RawMessage(fmt.Sprintf(`{"id":%q,"updatedAt":%q}`, id, updated.Format(time.RFC3339Nano)))}
}

func amount(s string) decimal.NullDecimal {
	return decimal.NewNullDecimal(decimal.RequireFromString(s))
}

func ptr(s string) *decimal.Decimal {
	d := decimal.RequireFromString(s)
	return &d
}

// fullBatch is a small portal: two owners (one managing the other), a pipeline with three
// stages, an account, a contact, two deals with vendor stage history and an activity.
func fullBatch(at time.Time) pipeline.Batch {
	return pipeline.Batch{
		Owners: []pipeline.Owner{
			{Record: rec("o1", at), Email: "ana@example.com", Name: "Ana", ManagerExternalID: "o2", Active: true},
			{Record: rec("o2", at), Email: "max@example.com", Name: "Max", Active: true},
		},
		Pipelines: []pipeline.Pipeline{{Record: rec("p1", at), Name: "Sales"}},
		Stages: []pipeline.Stage{
			{Record: rec("s1", at), PipelineExternalID: "p1", Name: "Appointment scheduled", Position: 0, Probability: ptr("0.2")},
			{Record: rec("s2", at), PipelineExternalID: "p1", Name: "Contract sent", Position: 1, Probability: ptr("0.9")},
			{Record: rec("won", at), PipelineExternalID: "p1", Name: "Closed won", Position: 2, Probability: ptr("1"), IsClosed: true, IsWon: true},
		},
		Accounts: []pipeline.Account{{Record: rec("a1", at), Name: "Acme", Domain: "acme.test", OwnerExternalID: "o1"}},
		Contacts: []pipeline.Contact{{Record: rec("c1", at), Email: "eve@acme.test", Name: "Eve", AccountExternalID: "a1", OwnerExternalID: "o1"}},
		Deals: []pipeline.Deal{
			{Record: rec("d1", at), Name: "Acme renewal", Amount: amount("12345.67"), Currency: "USD", PipelineExternalID: "p1",
				StageExternalID: "s1", OwnerExternalID: "o1", AccountExternalID: "a1", CloseDate: time.Date(2026, 12, 15, 0, 0, 0, 0, time.UTC),
				StageEnteredAt: t0.Add(-48 * time.Hour)},
			{Record: rec("d2", at), Name: "Acme upsell", Amount: amount("0.10"), Currency: "USD", PipelineExternalID: "p1",
				StageExternalID: "won", OwnerExternalID: "o2", IsClosed: true, IsWon: true, ClosedAt: t0.Add(-time.Hour)},
		},
		StageHistory: []pipeline.StageEntry{
			{DealExternalID: "d1", StageExternalID: "s1", EnteredAt: t0.Add(-48 * time.Hour)},
			{DealExternalID: "d2", StageExternalID: "s2", EnteredAt: t0.Add(-72 * time.Hour), ExitedAt: t0.Add(-time.Hour)},
			{DealExternalID: "d2", StageExternalID: "won", EnteredAt: t0.Add(-time.Hour)},
		},
		Activities: []pipeline.Activity{{Record: rec("e1", at), Kind: pipeline.ActivityCall, Direction: pipeline.Outbound,
			Subject: "Intro call", OccurredAt: t0.Add(-2 * time.Hour), Done: true, DealExternalID: "d1", ContactExternalID: "c1", OwnerExternalID: "o1"}},
	}
}

func count(ctx context.Context, t *testing.T, db store.Querier, query string, args ...any) int64 {
	t.Helper()
	var n int64
	require.NoError(t, db.QueryRow(ctx, query, args...).Scan(&n))
	return n
}

func TestWriteBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	type testBundle struct {
		tx     pgx.Tx
		connID int64
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		tx := dbtest.TestTx(ctx, t)
		return &testBundle{tx: tx, connID: newConnection(ctx, t, tx, "hs")}
	}

	t.Run("InsertsResolvesAndReplaysWriteNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		batch := fullBatch(t0)
		counts := write(ctx, t, b.tx, store.Write{ConnectionID: b.connID, Batch: &batch, SyncedAt: t0})
		require.Equal(t, store.Counts{Inserted: int64(batch.Len())}, counts)

		var ownerID, managerID, stageID, accountID, dealOwner, dealStage, dealAccount, dealPipeline, actDeal, actContact int64
		require.NoError(t, b.tx.QueryRow(ctx, `SELECT o.id, o.manager_owner_id FROM owners o WHERE o.external_id = 'o1'`).Scan(&ownerID, &managerID))
		require.Equal(t, count(ctx, t, b.tx, `SELECT id FROM owners WHERE external_id = 'o2'`), managerID, "manager in the same batch is resolved")
		require.NoError(t, b.tx.QueryRow(ctx, `SELECT id FROM stages WHERE external_id = 's1'`).Scan(&stageID))
		require.NoError(t, b.tx.QueryRow(ctx, `SELECT id FROM accounts WHERE external_id = 'a1'`).Scan(&accountID))
		require.NoError(t, b.tx.QueryRow(ctx, `SELECT owner_id, stage_id, account_id, pipeline_id FROM deals WHERE external_id = 'd1'`).
			Scan(&dealOwner, &dealStage, &dealAccount, &dealPipeline))
		require.Equal(t, []int64{ownerID, stageID, accountID}, []int64{dealOwner, dealStage, dealAccount})
		require.Equal(t, count(ctx, t, b.tx, `SELECT id FROM pipelines WHERE external_id = 'p1'`), dealPipeline)
		require.NoError(t, b.tx.QueryRow(ctx, `SELECT deal_id, contact_id FROM activities WHERE external_id = 'e1'`).Scan(&actDeal, &actContact))
		require.Equal(t, count(ctx, t, b.tx, `SELECT id FROM deals WHERE external_id = 'd1'`), actDeal)

		var amt string
		require.NoError(t, b.tx.QueryRow(ctx, `SELECT amount::text FROM deals WHERE external_id = 'd1'`).Scan(&amt))
		require.Equal(t, "12345.67", amt)
		require.EqualValues(t, 3, count(ctx, t, b.tx, `SELECT count(*) FROM deal_stage_history WHERE source = 'vendor' AND stage_id IS NOT NULL`))
		require.EqualValues(t, 0, count(ctx, t, b.tx, `SELECT count(*) FROM deal_changes`))

		// The same page again, later: nothing is written, synced_at stays.
		replay := fullBatch(t0)
		counts = write(ctx, t, b.tx, store.Write{ConnectionID: b.connID, Batch: &replay, SyncedAt: t0.Add(time.Hour)})
		require.Equal(t, store.Counts{Unchanged: int64(replay.Len())}, counts)
		require.EqualValues(t, 0, count(ctx, t, b.tx, `SELECT count(*) FROM deals WHERE synced_at <> $1`, t0))
		require.EqualValues(t, 0, count(ctx, t, b.tx, `SELECT count(*) FROM deal_changes`))
		require.EqualValues(t, 3, count(ctx, t, b.tx, `SELECT count(*) FROM deal_stage_history`))
	})

	t.Run("OlderVersionNeverOverwrites", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		newer := pipeline.Batch{Deals: []pipeline.Deal{{Record: rec("d1", t0.Add(time.Hour)), Name: "new name", Amount: amount("200")}}}
		write(ctx, t, b.tx, store.Write{ConnectionID: b.connID, Batch: &newer, SyncedAt: t0})
		older := pipeline.Batch{Deals: []pipeline.Deal{{Record: rec("d1", t0), Name: "old name", Amount: amount("100")}}}
		counts := write(ctx, t, b.tx, store.Write{ConnectionID: b.connID, Batch: &older, SyncedAt: t0.Add(2 * time.Hour)})
		require.Equal(t, store.Counts{Unchanged: 1}, counts)
		var name string
		require.NoError(t, b.tx.QueryRow(ctx, `SELECT name FROM deals WHERE external_id = 'd1'`).Scan(&name))
		require.Equal(t, "new name", name)
	})

	t.Run("DuplicatesInOneBatchKeepTheLatest", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		batch := pipeline.Batch{Deals: []pipeline.Deal{
			{Record: rec("d1", t0.Add(time.Hour)), Name: "latest"},
			{Record: rec("d1", t0), Name: "older"},
			{Record: rec("d2", t0), Name: "first"},
			{Record: rec("d2", t0), Name: "second, same time"},
		}}
		counts := write(ctx, t, b.tx, store.Write{ConnectionID: b.connID, Batch: &batch, SyncedAt: t0})
		require.Equal(t, store.Counts{Inserted: 2}, counts)
		rows, err := b.tx.Query(ctx, `SELECT name FROM deals ORDER BY external_id`)
		require.NoError(t, err)
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		require.Equal(t, []string{"latest", "second, same time"}, names)
	})

	t.Run("ChangesBetweenSyncsAreObserved", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		first := fullBatch(t0)
		write(ctx, t, b.tx, store.Write{ConnectionID: b.connID, Batch: &first, SyncedAt: t0})

		// Between syncs: d1 moves to s2 (entered 10:00), its close date slips a month, its
		// amount grows and it changes hands.
		moved := t0.Add(time.Hour)
		d1 := first.Deals[0]
		d1.Record = rec("d1", moved.Add(time.Minute))
		d1.StageExternalID, d1.StageEnteredAt = "s2", moved
		d1.CloseDate = time.Date(2027, 1, 15, 0, 0, 0, 0, time.UTC)
		d1.Amount = amount("15000.5")
		d1.OwnerExternalID = "o2"
		second := pipeline.Batch{Deals: []pipeline.Deal{d1}}
		counts := write(ctx, t, b.tx, store.Write{ConnectionID: b.connID, Batch: &second, SyncedAt: t0.Add(2 * time.Hour)})
		require.Equal(t, store.Counts{Updated: 1}, counts)

		rows, err := b.tx.Query(ctx, `SELECT field, old_value, new_value, changed_at AT TIME ZONE 'UTC' FROM deal_changes ORDER BY field`)
		require.NoError(t, err)
		type change struct {
			Field, Old, New string
			At              time.Time
		}
		changes, err := pgx.CollectRows(rows, pgx.RowToStructByPos[change])
		require.NoError(t, err)
		at := moved.Add(time.Minute)
		require.Equal(t, []change{
			{"amount", "12345.67", "15000.5", at},
			{"close_date", "2026-12-15", "2027-01-15", at},
			{"owner", "o1", "o2", at},
			{"stage", "s1", "s2", at},
		}, changes)

		rows, err = b.tx.Query(ctx, `SELECT h.stage_external_id, h.entered_at AT TIME ZONE 'UTC', h.exited_at AT TIME ZONE 'UTC', h.source, h.stage_id IS NOT NULL
			FROM deal_stage_history h JOIN deals d ON d.id = h.deal_id WHERE d.external_id = 'd1' ORDER BY h.entered_at`)
		require.NoError(t, err)
		type stay struct {
			Stage    string
			Entered  time.Time
			Exited   *time.Time
			Source   string
			Resolved bool
		}
		stays, err := pgx.CollectRows(rows, pgx.RowToStructByPos[stay])
		require.NoError(t, err)
		require.Equal(t, []stay{
			{"s1", t0.Add(-48 * time.Hour), &moved, "vendor", true},
			{"s2", moved, nil, "observed", true},
		}, stays)

		// Observing is idempotent: the same state again records nothing more.
		write(ctx, t, b.tx, store.Write{ConnectionID: b.connID, Batch: &second, SyncedAt: t0.Add(3 * time.Hour)})
		require.EqualValues(t, 4, count(ctx, t, b.tx, `SELECT count(*) FROM deal_changes`))
		require.EqualValues(t, 4, count(ctx, t, b.tx, `SELECT count(*) FROM deal_stage_history`))
	})

	t.Run("StageMoveWithoutVendorHistoryRecordsBothStays", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		entered := t0.Add(-72 * time.Hour)
		first := pipeline.Batch{Deals: []pipeline.Deal{{Record: rec("d1", t0), StageExternalID: "s1", StageEnteredAt: entered}}}
		write(ctx, t, b.tx, store.Write{ConnectionID: b.connID, Batch: &first, SyncedAt: t0})
		// The vendor gives no entry time for the new stage: the update time stands in.
		second := pipeline.Batch{Deals: []pipeline.Deal{{Record: rec("d1", t0.Add(time.Hour)), StageExternalID: "s2", StageEnteredAt: entered}}}
		write(ctx, t, b.tx, store.Write{ConnectionID: b.connID, Batch: &second, SyncedAt: t0.Add(2 * time.Hour)})

		rows, err := b.tx.Query(ctx, `SELECT stage_external_id, entered_at AT TIME ZONE 'UTC', exited_at AT TIME ZONE 'UTC' FROM deal_stage_history WHERE source = 'observed' ORDER BY entered_at`)
		require.NoError(t, err)
		type stay struct {
			Stage   string
			Entered time.Time
			Exited  *time.Time
		}
		stays, err := pgx.CollectRows(rows, pgx.RowToStructByPos[stay])
		require.NoError(t, err)
		moved := t0.Add(time.Hour)
		require.Equal(t, []stay{{"s1", entered, &moved}, {"s2", moved, nil}}, stays)
	})

	t.Run("ReferencesArrivingBeforeTheirTargetsResolveLater", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		early := pipeline.Batch{
			Deals:        []pipeline.Deal{{Record: rec("d1", t0), StageExternalID: "s1", OwnerExternalID: "o1", AccountExternalID: "a1", PipelineExternalID: "p1"}},
			StageHistory: []pipeline.StageEntry{{DealExternalID: "d1", StageExternalID: "s1", EnteredAt: t0}},
			Activities:   []pipeline.Activity{{Record: rec("e1", t0), Kind: pipeline.ActivityNote, DealExternalID: "d1", ContactExternalID: "c1"}},
			Contacts:     []pipeline.Contact{{Record: rec("c1", t0), AccountExternalID: "a1"}},
		}
		write(ctx, t, b.tx, store.Write{ConnectionID: b.connID, Batch: &early, SyncedAt: t0})
		require.EqualValues(t, 1, count(ctx, t, b.tx, `SELECT count(*) FROM deals WHERE owner_id IS NULL AND stage_id IS NULL AND account_id IS NULL AND pipeline_id IS NULL`))
		require.EqualValues(t, 1, count(ctx, t, b.tx, `SELECT count(*) FROM activities WHERE deal_id IS NOT NULL AND contact_id IS NOT NULL`))

		late := fullBatch(t0)
		late.Deals, late.Activities, late.StageHistory, late.Contacts = nil, nil, nil, nil
		write(ctx, t, b.tx, store.Write{ConnectionID: b.connID, Batch: &late, SyncedAt: t0.Add(time.Hour)})
		require.EqualValues(t, 1, count(ctx, t, b.tx, `SELECT count(*) FROM deals d
			JOIN owners o ON o.id = d.owner_id AND o.external_id = 'o1'
			JOIN stages s ON s.id = d.stage_id AND s.external_id = 's1'
			JOIN accounts a ON a.id = d.account_id AND a.external_id = 'a1'
			JOIN pipelines p ON p.id = d.pipeline_id AND p.external_id = 'p1'`))
		require.EqualValues(t, 1, count(ctx, t, b.tx, `SELECT count(*) FROM contacts c JOIN accounts a ON a.id = c.account_id`))
		require.EqualValues(t, 1, count(ctx, t, b.tx, `SELECT count(*) FROM deal_stage_history h JOIN stages s ON s.id = h.stage_id`))
		require.EqualValues(t, 1, count(ctx, t, b.tx, `SELECT count(*) FROM stages WHERE pipeline_id IS NOT NULL AND external_id = 's1'`))
	})

	t.Run("LeadsConvertedDealResolvesNowOrWhenTheDealArrives", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		type link struct {
			External string
			Deal     string // external id of the resolved deal ("" = unresolved)
		}
		links := func() map[string]link {
			rows, err := b.tx.Query(ctx, `SELECT l.external_id, coalesce(l.converted_deal_external_id, ''), coalesce(d.external_id, '')
				FROM leads l LEFT JOIN deals d ON d.id = l.converted_deal_id WHERE l.connection_id = $1`, b.connID)
			require.NoError(t, err)
			out := map[string]link{}
			var id string
			var l link
			_, err = pgx.ForEachRow(rows, []any{&id, &l.External, &l.Deal}, func() error { out[id] = l; return nil })
			require.NoError(t, err)
			return out
		}
		lead := func(id string, at time.Time, deal string) pipeline.Lead {
			l := pipeline.Lead{Record: rec(id, at), Email: id + "@acme.test", Status: pipeline.LeadSQL, SQLAt: t0.Add(-72 * time.Hour)}
			if deal != "" {
				l.Status, l.ConvertedAt, l.ConvertedDealExternalID = pipeline.LeadConverted, t0.Add(-48*time.Hour), deal
			}
			return l
		}

		// The lead arrives before its deal (HubSpot syncs contacts before deals).
		early := pipeline.Batch{Leads: []pipeline.Lead{lead("l1", t0, "d1"), lead("l2", t0, "")}}
		write(ctx, t, b.tx, store.Write{ConnectionID: b.connID, Batch: &early, SyncedAt: t0})
		require.Equal(t, map[string]link{"l1": {External: "d1"}, "l2": {}}, links())
		require.EqualValues(t, 1, count(ctx, t, b.tx, `SELECT count(*) FROM leads WHERE external_id = 'l1'
			AND status = 'converted' AND converted_at = $1`, t0.Add(-48*time.Hour)))

		// The deal arrives: the waiting lead is resolved. A lead whose deal comes in the same
		// batch, and one whose deal is already stored, are resolved at once.
		deals := pipeline.Batch{
			Deals: []pipeline.Deal{{Record: rec("d1", t0), Name: "Acme", IsClosed: true, IsWon: true},
				{Record: rec("d2", t0), Name: "Globex"}},
			Leads: []pipeline.Lead{lead("l3", t0, "d2"), lead("l4", t0, "d1")},
		}
		write(ctx, t, b.tx, store.Write{ConnectionID: b.connID, Batch: &deals, SyncedAt: t0.Add(time.Hour)})
		want := map[string]link{"l1": {"d1", "d1"}, "l2": {}, "l3": {"d2", "d2"}, "l4": {"d1", "d1"}}
		require.Equal(t, want, links())

		// Re-reading the resolved leads unchanged writes nothing.
		replay := pipeline.Batch{Leads: []pipeline.Lead{lead("l1", t0, "d1"), lead("l3", t0, "d2")}}
		counts := write(ctx, t, b.tx, store.Write{ConnectionID: b.connID, Batch: &replay, SyncedAt: t0.Add(2 * time.Hour)})
		require.Equal(t, store.Counts{Unchanged: 2}, counts)

		// The vendor drops the link (the deal was disassociated): both columns are cleared.
		unlinked := pipeline.Batch{Leads: []pipeline.Lead{lead("l4", t0.Add(time.Hour), "")}}
		counts = write(ctx, t, b.tx, store.Write{ConnectionID: b.connID, Batch: &unlinked, SyncedAt: t0.Add(2 * time.Hour)})
		require.Equal(t, store.Counts{Updated: 1}, counts)
		want["l4"] = link{}
		require.Equal(t, want, links())
	})

	t.Run("DeletionsTombstoneAndRestoredRecordsLiveAgain", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		first := fullBatch(t0)
		write(ctx, t, b.tx, store.Write{ConnectionID: b.connID, Batch: &first, SyncedAt: t0})
		archivedAt := t0.Add(time.Hour)
		del := pipeline.Batch{Deletions: []pipeline.Deletion{
			{Entity: pipeline.EntityDeals, ExternalID: "d1", DeletedAt: archivedAt},
			{Entity: pipeline.EntityContacts, ExternalID: "c1"},
			{Entity: pipeline.EntityDeals, ExternalID: "never-synced", DeletedAt: archivedAt},
		}}
		counts := write(ctx, t, b.tx, store.Write{ConnectionID: b.connID, Batch: &del, SyncedAt: t0.Add(2 * time.Hour)})
		require.Equal(t, store.Counts{Deleted: 2}, counts)
		var deletedAt time.Time
		require.NoError(t, b.tx.QueryRow(ctx, `SELECT deleted_at AT TIME ZONE 'UTC' FROM deals WHERE external_id = 'd1'`).Scan(&deletedAt))
		require.Equal(t, archivedAt, deletedAt)
		require.NoError(t, b.tx.QueryRow(ctx, `SELECT deleted_at AT TIME ZONE 'UTC' FROM contacts WHERE external_id = 'c1'`).Scan(&deletedAt))
		require.Equal(t, t0.Add(2*time.Hour), deletedAt, "unknown deletion time = sync time")
		require.EqualValues(t, 2, count(ctx, t, b.tx, `SELECT count(*) FROM deals`), "never hard-deleted")

		// Replaying deletions writes nothing.
		counts = write(ctx, t, b.tx, store.Write{ConnectionID: b.connID, Batch: &del, SyncedAt: t0.Add(3 * time.Hour)})
		require.Equal(t, store.Counts{}, counts)

		// A stale replay of the live version (read before the archive) does not revive it.
		stale := pipeline.Batch{Deals: first.Deals[:1]}
		counts = write(ctx, t, b.tx, store.Write{ConnectionID: b.connID, Batch: &stale, SyncedAt: t0.Add(3 * time.Hour)})
		require.Equal(t, store.Counts{Unchanged: 1}, counts)
		require.EqualValues(t, 1, count(ctx, t, b.tx, `SELECT count(*) FROM deals WHERE deleted_at IS NOT NULL`))

		// Restored at the vendor (updated after the archive): live again.
		restored := first.Deals[0]
		restored.Record = rec("d1", t0.Add(4*time.Hour))
		live := pipeline.Batch{Deals: []pipeline.Deal{restored}}
		counts = write(ctx, t, b.tx, store.Write{ConnectionID: b.connID, Batch: &live, SyncedAt: t0.Add(5 * time.Hour)})
		require.Equal(t, store.Counts{Updated: 1}, counts)
		require.EqualValues(t, 0, count(ctx, t, b.tx, `SELECT count(*) FROM deals WHERE deleted_at IS NOT NULL`))

		// A full read is authoritative: the unchanged contact it sees is live again.
		full := pipeline.Batch{Contacts: first.Contacts}
		counts = write(ctx, t, b.tx, store.Write{ConnectionID: b.connID, Batch: &full, SyncedAt: t0.Add(6 * time.Hour), FullRead: true})
		require.Equal(t, store.Counts{Updated: 1}, counts)
		require.EqualValues(t, 0, count(ctx, t, b.tx, `SELECT count(*) FROM contacts WHERE deleted_at IS NOT NULL`))
	})

	t.Run("DeletionOlderThanTheStoredVersionIsIgnored", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		batch := pipeline.Batch{Deals: []pipeline.Deal{{Record: rec("d1", t0.Add(2*time.Hour))}}}
		write(ctx, t, b.tx, store.Write{ConnectionID: b.connID, Batch: &batch, SyncedAt: t0})
		// Deleted at 10:00, restored and edited at 11:00: the deletion read late is stale.
		del := pipeline.Batch{Deletions: []pipeline.Deletion{{Entity: pipeline.EntityDeals, ExternalID: "d1", DeletedAt: t0.Add(time.Hour)}}}
		require.Equal(t, store.Counts{}, write(ctx, t, b.tx, store.Write{ConnectionID: b.connID, Batch: &del, SyncedAt: t0}))
		// In one batch, the live version updated after the deletion wins.
		both := pipeline.Batch{
			Deals:     []pipeline.Deal{{Record: rec("d2", t0.Add(3*time.Hour))}},
			Deletions: []pipeline.Deletion{{Entity: pipeline.EntityDeals, ExternalID: "d2", DeletedAt: t0.Add(time.Hour)}},
		}
		require.Equal(t, store.Counts{Inserted: 1}, write(ctx, t, b.tx, store.Write{ConnectionID: b.connID, Batch: &both, SyncedAt: t0}))
		require.EqualValues(t, 0, count(ctx, t, b.tx, `SELECT count(*) FROM deals WHERE deleted_at IS NOT NULL`))
	})

	t.Run("InvalidRecordsAreRejectedTheRestIsWritten", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		batch := pipeline.Batch{
			Deals: []pipeline.Deal{
				{Record: rec("ok", t0), Name: "fine"},
				{Record: rec("prob", t0), Probability: ptr("40")},
				{Record: rec("won", t0), IsWon: true},
				{Record: pipeline.Record{ExternalID: "raw", Raw: json.RawMessage(`{"truncated":`)}},
				{Record: pipeline.Record{ExternalID: " "}},
			},
			Activities: []pipeline.Activity{{Record: rec("act", t0), Kind: "sms"}},
			Leads:      []pipeline.Lead{{Record: rec("lead", t0), Status: "hot"}},
			Deletions:  []pipeline.Deletion{{Entity: "widgets", ExternalID: "w1"}},
		}
		counts := write(ctx, t, b.tx, store.Write{ConnectionID: b.connID, Batch: &batch, SyncedAt: t0})
		require.EqualValues(t, 1, counts.Inserted)
		var reasons []string
		for _, r := range counts.Rejected {
			reasons = append(reasons, r.String())
		}
		require.Equal(t, []string{
			"leads lead: unknown lead status \"hot\"",
			"deals prob: probability 40 is outside 0..1",
			"deals won: deal is won but not closed",
			"deals raw: raw payload is not valid JSON",
			"deals  : record without an id",
			"activities act: unknown activity kind \"sms\"",
			"deletions w1: deletion of unknown entity \"widgets\"",
		}, reasons)
		require.EqualValues(t, 1, count(ctx, t, b.tx, `SELECT count(*) FROM deals`))
	})

	t.Run("TextThatPostgresCannotHoldIsCleaned", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		batch := pipeline.Batch{Contacts: []pipeline.Contact{{
			Record: pipeline.Record{ExternalID: "c1", UpdatedAt: t0, Raw: json.RawMessage(`{"name":"Eve\u0000"}`)},
			Name:   "Eve\x00 \xff",
		}}}
		write(ctx, t, b.tx, store.Write{ConnectionID: b.connID, Batch: &batch, SyncedAt: t0})
		var name, raw string
		require.NoError(t, b.tx.QueryRow(ctx, `SELECT name, raw->>'name' FROM contacts`).Scan(&name, &raw))
		require.Equal(t, "Eve \uFFFD", name)
		require.Equal(t, "Eve\uFFFD", raw)
	})

	t.Run("CanonicalStageFromStageMapConnectorOrGuess", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		batch := pipeline.Batch{Stages: []pipeline.Stage{
			{Record: rec("by-id", t0), Name: "Discovery"},
			{Record: rec("by-name", t0), Name: "Legal review"},
			{Record: rec("vendor", t0), Name: "Whatever", Canonical: pipeline.StageProposal},
			{Record: rec("guess", t0), Name: "Demo given"},
			{Record: rec("lost", t0), Name: "Closed lost", IsClosed: true},
			{Record: rec("unmapped", t0), Name: "Zzz"},
		}}
		m := pipeline.StageMap{"by-id": pipeline.StageNegotiation, "Legal review": pipeline.StageClosing}
		write(ctx, t, b.tx, store.Write{ConnectionID: b.connID, Batch: &batch, SyncedAt: t0, StageMap: m})
		rows, err := b.tx.Query(ctx, `SELECT external_id || '=' || coalesce(canonical_stage, '') FROM stages ORDER BY external_id`)
		require.NoError(t, err)
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		require.Equal(t, []string{"by-id=negotiation", "by-name=closing", "guess=proposal", "lost=closed_lost", "unmapped=", "vendor=proposal"}, got)

		// A changed stage map re-maps on the next read of the stages.
		m["guess"] = pipeline.StageNeedsAssessment
		counts := write(ctx, t, b.tx, store.Write{ConnectionID: b.connID, Batch: &batch, SyncedAt: t0, StageMap: m})
		require.EqualValues(t, 1, counts.Updated)
	})
}
