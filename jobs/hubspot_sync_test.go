package jobs_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/connectors"
	"github.com/pipewatch/pipewatch/connectors/hubspot"
	"github.com/pipewatch/pipewatch/connectors/hubspot/hubspottest"
	"github.com/pipewatch/pipewatch/internal/credentials"
	"github.com/pipewatch/pipewatch/internal/dbtest"
	"github.com/pipewatch/pipewatch/internal/secrets"
	"github.com/pipewatch/pipewatch/jobs"
)

// hubspotBundle is the whole path: the fake HubSpot portal → the HubSpot connector, built
// by the engine's registry from the stored connection and its sealed private-app token →
// the sync engine → Postgres.
type hubspotBundle struct {
	db     jobs.SyncDB
	engine *jobs.SyncEngine
	fake   *hubspottest.Server
	connID int64
}

func newHubSpotBundle(ctx context.Context, t *testing.T, db jobs.SyncDB) *hubspotBundle {
	t.Helper()
	// The fake and the client allow more than HubSpot's 100 requests / 10 s and 4
	// searches / s, so the test is about exactness, not waiting.
	fake := hubspottest.New(hubspottest.Options{BurstLimit: 100_000, SearchPerSecond: 10_000})
	t.Cleanup(fake.Close)
	cfg, err := json.Marshal(map[string]any{"base_url": fake.URL, "schedule": "15m",
		"options": map[string]string{"portal_id": fmt.Sprint(fake.PortalID)}})
	require.NoError(t, err)
	var connID int64
	require.NoError(t, db.QueryRow(ctx, `INSERT INTO connections (name, kind, config) VALUES ('hubspot-main', 'hubspot', $1) RETURNING id`, cfg).Scan(&connID))

	key := make([]byte, 32)
	_, _ = rand.Read(key)
	box, err := secrets.New(key)
	require.NoError(t, err)
	creds := &credentials.Store{Box: box}
	require.NoError(t, creds.Save(ctx, db, connID, credentials.Credentials{Token: fake.AddPrivateAppToken()}))

	limits := hubspot.RateLimits()
	limits.Budgets[hubspot.BudgetGeneral] = connectors.Budget{Limit: 100_000, Interval: 10 * time.Second}
	limits.Budgets[hubspot.BudgetSearch] = connectors.Budget{Limit: 10_000, Interval: time.Second}
	chain := connectors.HTTPConfig{RateLimits: limits, RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond}
	engine := &jobs.SyncEngine{
		DB: db, Connectors: jobs.ConnectorRegistry{"hubspot": jobs.HubSpotConnector(chain)}, Credentials: creds,
		Limiters: connectors.NewLimiters(), NowFunc: fake.Now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	return &hubspotBundle{db: db, engine: engine, fake: fake, connID: connID}
}

func (b *hubspotBundle) syncAll(ctx context.Context, t *testing.T) map[string]jobs.SyncResult {
	t.Helper()
	results, err := b.engine.RunConnection(ctx, b.connID, connectors.Incremental, false)
	require.NoError(t, err)
	out := map[string]jobs.SyncResult{}
	for _, r := range results {
		require.Equal(t, jobs.OutcomeSucceeded, r.Outcome, "%s: %v", r.Stream, r.Err)
		out[r.Stream] = r
	}
	return out
}

// liveIDs returns the external ids of the live rows of table.
func (b *hubspotBundle) liveIDs(ctx context.Context, t *testing.T, table string) []string {
	t.Helper()
	rows, err := b.db.Query(ctx, `SELECT external_id FROM `+table+` WHERE connection_id = $1 AND deleted_at IS NULL
		ORDER BY length(external_id), external_id`, b.connID)
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return ids
}

// requireExact compares the store with the portal: every live record, no more; deals'
// amounts to the cent, stages, owners and vendor stage history; archived deals tombstoned.
func (b *hubspotBundle) requireExact(ctx context.Context, t *testing.T) {
	t.Helper()
	require.Equal(t, b.fake.OwnerIDs(false), b.liveIDs(ctx, t, "owners"))
	require.Equal(t, b.fake.IDs("companies", false), b.liveIDs(ctx, t, "accounts"))
	require.Equal(t, b.fake.IDs("contacts", false), b.liveIDs(ctx, t, "contacts"))
	require.Equal(t, b.fake.IDs("deals", false), b.liveIDs(ctx, t, "deals"))
	var engagements []string
	for _, typ := range hubspottest.EngagementTypes {
		engagements = append(engagements, b.fake.IDs(typ, false)...)
	}
	require.ElementsMatch(t, engagements, b.liveIDs(ctx, t, "activities"))
	require.ElementsMatch(t, append(append([]string{}, hubspottest.DefaultStages...), hubspottest.CustomStages...),
		b.liveIDs(ctx, t, "stages"))
	require.EqualValues(t, 0, countRows(ctx, t, b.db, `SELECT count(*) FROM stages WHERE connection_id = $1
		AND (canonical_stage IS NULL OR pipeline_id IS NULL OR probability IS NULL)`, b.connID), "stages mapped and linked")

	rows, err := b.db.Query(ctx, `SELECT d.external_id, coalesce(d.amount::text, ''), d.stage_external_id, coalesce(d.owner_external_id, ''),
			d.stage_id IS NOT NULL, (SELECT count(*) FROM deal_stage_history h WHERE h.deal_id = d.id)
		FROM deals d WHERE d.connection_id = $1 AND d.deleted_at IS NULL`, b.connID)
	require.NoError(t, err)
	type stored struct {
		ID, Amount, Stage, Owner string
		StageResolved            bool
		Stays                    int64
	}
	deals, err := pgx.CollectRows(rows, pgx.RowToStructByPos[stored])
	require.NoError(t, err)
	for _, d := range deals {
		o, ok := b.fake.Object("deals", d.ID)
		require.True(t, ok)
		want := stored{ID: d.ID, Stage: o.Properties["dealstage"], Owner: o.Properties["hubspot_owner_id"], StageResolved: true}
		if a := o.Properties["amount"]; a != "" {
			want.Amount = decimal.RequireFromString(a).String()
			d.Amount = decimal.RequireFromString(d.Amount).String()
		}
		for p := range o.Properties {
			if strings.HasPrefix(p, "hs_date_entered_") {
				want.Stays++
			}
		}
		require.Equal(t, want, d, "deal %s", d.ID)
	}
	var tombstoned int64
	require.NoError(t, b.db.QueryRow(ctx, `SELECT count(*) FROM deals WHERE connection_id = $1 AND deleted_at IS NOT NULL
		AND external_id = ANY($2)`, b.connID, b.fake.IDs("deals", true)).Scan(&tombstoned))
	var synced int64
	require.NoError(t, b.db.QueryRow(ctx, `SELECT count(*) FROM deals WHERE connection_id = $1 AND external_id = ANY($2)`,
		b.connID, b.fake.IDs("deals", true)).Scan(&synced))
	require.Equal(t, synced, tombstoned, "every archived deal that was synced is tombstoned")
}

// TestHubSpotSync runs the HubSpot connector through the engine against the fake portal:
// a 12,000-deal portal (past the search API's 10,000-result cap) with 650 deals sharing one
// modified millisecond syncs exactly, and a second sync with no changes writes nothing.
func TestHubSpotSync(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newHubSpotBundle(ctx, t, dbtest.TestTx(ctx, t))
	require.NoError(t, b.fake.Populate(hubspottest.Population{
		Owners: 12, Companies: 400, Contacts: 1500, Deals: 12_000, EngagementsPerType: 300,
		SharedModified: 650, ArchivedDeals: 20,
	}))
	b.fake.Advance(5 * time.Minute)

	first := b.syncAll(ctx, t)
	b.requireExact(ctx, t)

	// Archive deals already synced: the archived stream tombstones them.
	ids := b.fake.IDs("deals", false)
	for _, id := range ids[:15] {
		require.NoError(t, b.fake.Archive("deals", id))
	}
	b.fake.Advance(5 * time.Minute)
	res, err := b.engine.Run(ctx, jobs.SyncRequest{ConnectionID: b.connID, Stream: hubspot.StreamArchivedDeals})
	require.NoError(t, err)
	require.EqualValues(t, 15, res.Deleted)
	b.requireExact(ctx, t)

	// Nothing changed since: at most one request per stream, zero rows written.
	b.fake.Advance(15 * time.Minute)
	second := b.syncAll(ctx, t)
	require.Len(t, second, len(first))
	for stream, r := range second {
		require.LessOrEqual(t, r.Requests, int64(1), "stream %s: requests of a no-change sync", stream)
		require.Zero(t, r.Inserted+r.Updated+r.Deleted, "stream %s wrote rows", stream)
	}
	b.requireExact(ctx, t)
}

// TestHubSpotChangesBetweenSyncs: stage moves, close-date pushes, new, archived and
// restored deals made at the vendor appear after the next sync, and the moves and pushes
// are recorded.
func TestHubSpotChangesBetweenSyncs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newHubSpotBundle(ctx, t, dbtest.TestTx(ctx, t))
	require.NoError(t, b.fake.Populate(hubspottest.Population{Owners: 3, Companies: 20, Contacts: 50, Deals: 300}))
	b.fake.Advance(5 * time.Minute)
	b.syncAll(ctx, t)

	ids := b.fake.IDs("deals", false)
	open := func(i int) string { // a deal of the default pipeline in an open stage
		for ; ; i++ {
			o, _ := b.fake.Object("deals", ids[i])
			if o.Properties["pipeline"] == "default" && o.Properties["hs_is_closed"] == "false" && o.Properties["dealstage"] != "contractsent" {
				return ids[i]
			}
		}
	}
	moved, pushed, archived, restored := open(0), open(100), ids[200], ids[250]
	require.NoError(t, b.fake.Archive("deals", restored))
	b.fake.Advance(5 * time.Minute)
	b.syncAll(ctx, t)
	b.requireExact(ctx, t)

	require.NoError(t, b.fake.MoveDealStage(moved, "contractsent"))
	require.NoError(t, b.fake.SetDealCloseDate(pushed, time.Date(2027, 3, 31, 0, 0, 0, 0, time.UTC)))
	require.NoError(t, b.fake.Archive("deals", archived))
	require.NoError(t, b.fake.Restore("deals", restored))
	created, err := b.fake.Create("deals", map[string]string{
		"dealname": "New logo", "amount": "12500.10", "pipeline": "default", "dealstage": "appointmentscheduled",
	}, nil)
	require.NoError(t, err)
	b.fake.Advance(5 * time.Minute)
	b.syncAll(ctx, t)
	b.requireExact(ctx, t)

	rows, err := b.db.Query(ctx, `SELECT d.external_id || ' ' || c.field || ' ' || coalesce(c.new_value, '')
		FROM deal_changes c JOIN deals d ON d.id = c.deal_id ORDER BY 1`)
	require.NoError(t, err)
	changes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.ElementsMatch(t, []string{pushed + " close_date 2027-03-31", moved + " stage contractsent"}, changes)
	require.EqualValues(t, 1, countRows(ctx, t, b.db, `SELECT count(*) FROM deal_stage_history h JOIN deals d ON d.id = h.deal_id
		WHERE d.external_id = $1 AND h.stage_external_id = 'contractsent' AND h.exited_at IS NULL`, moved))
	require.EqualValues(t, 0, countRows(ctx, t, b.db, `SELECT count(*) FROM deal_stage_history h JOIN deals d ON d.id = h.deal_id
		WHERE d.external_id = $1 AND h.exited_at IS NULL AND h.stage_external_id <> 'contractsent'`, moved), "the previous stay is closed")
	require.EqualValues(t, 1, countRows(ctx, t, b.db, `SELECT count(*) FROM deals WHERE external_id = $1 AND amount = 12500.10`, created))
}
