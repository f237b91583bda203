package jobs_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/connectors"
	"github.com/pipewatch/pipewatch/connectors/pipedrive"
	"github.com/pipewatch/pipewatch/connectors/pipedrive/pipedrivetest"
	"github.com/pipewatch/pipewatch/internal/credentials"
	"github.com/pipewatch/pipewatch/internal/dbtest"
	"github.com/pipewatch/pipewatch/internal/secrets"
	"github.com/pipewatch/pipewatch/jobs"
	"github.com/pipewatch/pipewatch/pipeline/store"
)

const pipedriveTestToken = "pd-e2e-token"

// pipedriveBundle is the whole path: the fake Pipedrive → the Pipedrive connector built by
// the engine's registry from the stored connection and its sealed API token → the sync
// engine → Postgres.
type pipedriveBundle struct {
	db     jobs.SyncDB
	engine *jobs.SyncEngine
	fake   *pipedrivetest.Server
	clock  *pipedrivetest.Clock
	connID int64
}

type pipedriveSetup struct {
	fake    pipedrivetest.Options
	account pipedrivetest.Account
	options map[string]string
	// wrap, when set, wraps the connector the engine builds.
	wrap func(connectors.Connector) connectors.Connector
	// oauth stores an OAuth grant instead of an API token.
	oauth bool
}

func newPipedriveBundle(ctx context.Context, t *testing.T, db jobs.SyncDB, s pipedriveSetup) *pipedriveBundle {
	t.Helper()
	clock := pipedrivetest.NewClock(time.Now().UTC().Truncate(time.Second))
	s.fake.Now, s.fake.APIToken = clock.Now, pipedriveTestToken
	if s.fake.BurstLimit == 0 {
		s.fake.BurstLimit = 2000
	}
	fake := pipedrivetest.NewServer(s.fake)
	t.Cleanup(fake.Close)
	fake.Generate(s.account)

	options := map[string]string{"company_domain": "acme"}
	for k, v := range s.options {
		options[k] = v
	}
	doc := map[string]any{"base_url": fake.URL(), "schedule": "15m", "options": options}
	if s.oauth {
		delete(doc, "base_url") // the token response's api_domain says where the API is
	}
	cfg, err := json.Marshal(doc)
	require.NoError(t, err)
	var connID int64
	require.NoError(t, db.QueryRow(ctx, `INSERT INTO connections (name, kind, config) VALUES ('pd', 'pipedrive', $1) RETURNING id`, cfg).Scan(&connID))

	key := make([]byte, 32)
	_, _ = rand.Read(key)
	box, err := secrets.New(key)
	require.NoError(t, err)
	creds := &credentials.Store{Box: box}
	stored := credentials.Credentials{Token: pipedriveTestToken}
	if s.oauth {
		stored = credentials.Credentials{OAuth: &credentials.OAuth{ClientID: s.fake.ClientID, ClientSecret: s.fake.ClientSecret,
			TokenURL: fake.URL() + "/oauth/token", RefreshToken: s.fake.RefreshToken}}
	}
	require.NoError(t, creds.Save(ctx, db, connID, stored))

	build := jobs.PipedriveConnector(connectors.HTTPConfig{RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond, RetryMax: 3})
	registry := jobs.ConnectorRegistry{"pipedrive": func(ctx context.Context, p jobs.ConnectorParams) (connectors.Connector, error) {
		c, err := build(ctx, p)
		if err != nil || s.wrap == nil {
			return c, err
		}
		return s.wrap(c), nil
	}}
	engine := &jobs.SyncEngine{
		DB: db, Connectors: registry, Credentials: creds, Limiters: connectors.NewLimiters(),
		NowFunc: clock.Now, BatchRecords: 1000, BatchWait: time.Hour,
	}
	return &pipedriveBundle{db: db, engine: engine, fake: fake, clock: clock, connID: connID}
}

// syncAll runs every stream incrementally and requires success; it returns the results by stream.
func (b *pipedriveBundle) syncAll(ctx context.Context, t *testing.T) map[string]jobs.SyncResult {
	t.Helper()
	results, err := b.engine.RunConnection(ctx, b.connID, connectors.Incremental, false)
	require.NoError(t, err)
	out := map[string]jobs.SyncResult{}
	for _, r := range results {
		require.Equal(t, jobs.OutcomeSucceeded, r.Outcome, "%s: %v", r.Stream, r.Err)
		require.Zero(t, r.Skipped, r.Stream)
		out[r.Stream] = r
	}
	return out
}

// requireExact checks that Postgres holds exactly the fake account's live records.
func (b *pipedriveBundle) requireExact(ctx context.Context, t *testing.T) {
	t.Helper()
	snap := b.fake.Snapshot()

	type deal struct {
		ID, Name, Amount, Currency, Stage, Owner string
		Closed, Won, Resolved                    bool
		UpdatedAt                                time.Time
	}
	rows, err := b.db.Query(ctx, `SELECT external_id, name, amount::text, currency, stage_external_id, owner_external_id,
		is_closed, is_won, stage_id IS NOT NULL AND owner_id IS NOT NULL AND pipeline_id IS NOT NULL, remote_updated_at
		FROM deals WHERE connection_id = $1 AND deleted_at IS NULL`, b.connID)
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[deal])
	require.NoError(t, err)
	require.Len(t, got, len(snap.Deals), "live deals")
	byID := map[string]deal{}
	for _, d := range got {
		d.UpdatedAt = d.UpdatedAt.UTC()
		byID[d.ID] = d
	}
	for _, w := range snap.Deals {
		g, ok := byID[strconv.Itoa(w.ID)]
		require.True(t, ok, "deal %d missing", w.ID)
		require.True(t, decimal.RequireFromString(string(w.Value)).Equal(decimal.RequireFromString(g.Amount)), "deal %d amount %s vs %s", w.ID, w.Value, g.Amount)
		require.Equal(t, deal{strconv.Itoa(w.ID), w.Title, g.Amount, w.Currency, strconv.Itoa(w.StageID), strconv.Itoa(w.OwnerID),
			w.Status != "open", w.Status == "won", true, w.UpdateTime.Std()}, g)
	}
	for _, id := range snap.DeletedDealIDs {
		require.EqualValues(t, 0, countRows(ctx, t, b.db, `SELECT count(*) FROM deals WHERE connection_id = $1 AND external_id = $2 AND deleted_at IS NULL`,
			b.connID, strconv.Itoa(id)), "deleted deal %d is live", id)
	}
	for table, want := range map[string]int{
		"owners": len(snap.Users), "pipelines": len(snap.Pipelines), "stages": len(snap.Stages),
		"accounts": len(snap.Organizations), "contacts": len(snap.Persons), "activities": len(snap.Activities), "leads": len(snap.Leads),
	} {
		require.EqualValues(t, want, countRows(ctx, t, b.db, `SELECT count(*) FROM `+table+` WHERE connection_id = $1 AND deleted_at IS NULL`, b.connID), table)
	}
}

func TestPipedriveConnectorSettings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	build := jobs.PipedriveConnector(connectors.HTTPConfig{})
	params := func(cfg store.ConnectionConfig, creds credentials.Credentials) jobs.ConnectorParams {
		return jobs.ConnectorParams{Connection: store.Connection{ID: 1, Name: "pd", Kind: "pipedrive", Config: cfg}, Credentials: creds}
	}
	token := credentials.Credentials{Token: "t"}

	c, err := build(ctx, params(store.ConnectionConfig{Options: map[string]string{"company_domain": "acme", "lag": "2m", "page_size": "200"}}, token))
	require.NoError(t, err)
	require.Equal(t, "https://acme.pipedrive.com/deal/9", c.(*pipedrive.Connector).DealURL("9"))

	for _, tt := range []struct {
		name  string
		cfg   store.ConnectionConfig
		creds credentials.Credentials
		err   string
	}{
		{"NoCredentials", store.ConnectionConfig{}, credentials.Credentials{},
			"no credentials are stored for this connection: set auth.token_env (an API token) or auth.oauth and run `pipewatch apply`"},
		{"BadLag", store.ConnectionConfig{Options: map[string]string{"lag": "soon"}}, token, `options.lag "soon" is not a duration (like 5m)`},
		{"BadPageSize", store.ConnectionConfig{Options: map[string]string{"page_size": "1000"}}, token, "pipedrive page size 1000 is outside 1–500"},
		{"BadBaseURL", store.ConnectionConfig{BaseURL: "ftp://x"}, token, `pipedrive base_url "ftp://x" is not an http(s) URL`},
		{"OAuthWithoutStore", store.ConnectionConfig{}, credentials.Credentials{OAuth: &credentials.OAuth{RefreshToken: "r"}},
			"an OAuth connection needs the credential store and the database"},
	} {
		_, err := build(ctx, params(tt.cfg, tt.creds))
		require.EqualError(t, err, tt.err, tt.name)
	}
}

func TestPipedriveSync(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	setup := func(t *testing.T, s pipedriveSetup) *pipedriveBundle {
		t.Helper()
		return newPipedriveBundle(ctx, t, dbtest.TestTx(ctx, t), s)
	}

	t.Run("A3000DealAccountSyncsExactlyAndANoChangeSyncWritesNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t, pipedriveSetup{account: pipedrivetest.Account{Users: 8, Pipelines: 2, Organizations: 100, Persons: 300, Deals: 3000, ActivitiesPerDeal: 1, Leads: 200}})
		first := b.syncAll(ctx, t)
		b.requireExact(ctx, t)
		require.EqualValues(t, 3000*2, first[pipedrive.StreamDeals].Inserted, "deals and their current stage entries")

		// Pipedrive's rotting days, probabilities and default canonical stages land on stages.
		require.Positive(t, countRows(ctx, t, b.db, `SELECT count(*) FROM stages WHERE rot_days > 0`))
		require.EqualValues(t, 0, countRows(ctx, t, b.db, `SELECT count(*) FROM stages WHERE canonical_stage IS NULL OR probability IS NULL`))
		// Owners keep the vendor's time zone; deals their last/next activity.
		require.EqualValues(t, 0, countRows(ctx, t, b.db, `SELECT count(*) FROM owners WHERE timezone = ''`))
		require.Positive(t, countRows(ctx, t, b.db, `SELECT count(*) FROM deals WHERE last_activity_at IS NOT NULL`))
		require.Positive(t, countRows(ctx, t, b.db, `SELECT count(*) FROM deals WHERE next_activity_at IS NOT NULL`))
		require.EqualValues(t, 0, countRows(ctx, t, b.db, `SELECT count(*) FROM deals WHERE last_activity_at > $1`, b.clock.Now()))
		// Closed deals keep their last stage (Pipedrive has no won/lost stages).
		require.Positive(t, countRows(ctx, t, b.db, `SELECT count(*) FROM deals d JOIN stages s ON s.id = d.stage_id
			WHERE d.is_won AND NOT s.is_closed AND d.closed_at IS NOT NULL`))

		b.clock.Advance(15 * time.Minute)
		second := b.syncAll(ctx, t)
		for stream, r := range second {
			require.EqualValues(t, 1, r.Requests, "stream %s: a no-change sync makes one request", stream)
			require.Zero(t, r.Inserted+r.Updated+r.Deleted, "stream %s wrote", stream)
		}
		b.requireExact(ctx, t)
	})

	t.Run("OAuthGrantRefreshesWithBasicClientAuthAndPersistsTheRotation", func(t *testing.T) {
		t.Parallel()
		b := setup(t, pipedriveSetup{
			fake:    pipedrivetest.Options{ClientID: "pd-client", ClientSecret: "pd-secret", RefreshToken: "rt-initial"},
			account: pipedrivetest.Account{Deals: 50, Leads: 10},
			oauth:   true,
		})
		b.syncAll(ctx, t)
		b.requireExact(ctx, t)
		for _, r := range b.fake.Requests() {
			require.Equal(t, "bearer", r.Auth, r.Path)
		}
		stored, err := b.engine.Credentials.Load(ctx, b.db, b.connID)
		require.NoError(t, err)
		require.NotEqual(t, "rt-initial", stored.OAuth.RefreshToken)
		require.Equal(t, b.fake.RefreshToken(), stored.OAuth.RefreshToken, "the rotated refresh token is saved")
		require.NotEmpty(t, stored.OAuth.AccessToken)
		require.Equal(t, b.fake.URL(), stored.OAuth.Extra["api_domain"], "kept for the next runs")

		// A later run with the stored (fresh) token still finds the API without a base_url.
		b.clock.Advance(15 * time.Minute)
		b.syncAll(ctx, t)
		b.requireExact(ctx, t)
	})

	t.Run("ChangesDeletionsAndRestores", func(t *testing.T) {
		t.Parallel()
		b := setup(t, pipedriveSetup{account: pipedrivetest.Account{Deals: 200, ActivitiesPerDeal: 1}})
		b.syncAll(ctx, t)
		snap := b.fake.Snapshot()

		b.clock.Advance(time.Hour)
		moved, resized, deleted := snap.Deals[0], snap.Deals[1], snap.Deals[2]
		var next int
		for _, s := range snap.Stages {
			if s.PipelineID == moved.PipelineID && s.ID != moved.StageID {
				next = s.ID
			}
		}
		require.NoError(t, b.fake.UpdateDeal(moved.ID, func(d *pipedrivetest.Deal) { d.StageID = next }))
		require.NoError(t, b.fake.UpdateDeal(resized.ID, func(d *pipedrivetest.Deal) { d.Value = "123456.78" }))
		require.NoError(t, b.fake.DeleteDeal(deleted.ID))
		b.clock.Advance(2 * time.Minute)
		res := b.syncAll(ctx, t)
		require.EqualValues(t, 1, res[pipedrive.StreamDeletedDeals].Deleted)
		b.requireExact(ctx, t)

		movedAt := b.clock.Now().Add(-2 * time.Minute)
		require.EqualValues(t, 1, countRows(ctx, t, b.db, `SELECT count(*) FROM deal_stage_history h JOIN deals d ON d.id = h.deal_id
			WHERE d.external_id = $1 AND h.stage_external_id = $2 AND h.exited_at = $3`, strconv.Itoa(moved.ID), strconv.Itoa(moved.StageID), movedAt))
		require.EqualValues(t, 1, countRows(ctx, t, b.db, `SELECT count(*) FROM deal_stage_history h JOIN deals d ON d.id = h.deal_id
			WHERE d.external_id = $1 AND h.stage_external_id = $2 AND h.entered_at = $3 AND h.exited_at IS NULL`, strconv.Itoa(moved.ID), strconv.Itoa(next), movedAt))
		require.EqualValues(t, 1, countRows(ctx, t, b.db, `SELECT count(*) FROM deal_changes c JOIN deals d ON d.id = c.deal_id
			WHERE d.external_id = $1 AND c.field = 'amount' AND c.new_value::numeric = 123456.78`, strconv.Itoa(resized.ID)))
		b.clock.Advance(time.Minute)
		for stream, r := range b.syncAll(ctx, t) {
			require.Zero(t, r.Inserted+r.Updated+r.Deleted, "%s: the deletion listed again writes nothing", stream)
		}

		// Restored at the vendor: live again.
		b.clock.Advance(time.Hour)
		require.NoError(t, b.fake.RestoreDeal(deleted.ID))
		b.clock.Advance(2 * time.Minute)
		b.syncAll(ctx, t)
		b.requireExact(ctx, t)
		require.EqualValues(t, 1, countRows(ctx, t, b.db, `SELECT count(*) FROM deals WHERE external_id = $1 AND deleted_at IS NULL`, strconv.Itoa(deleted.ID)))
	})

	t.Run("ReconciliationTombstonesWhatNoStreamReports", func(t *testing.T) {
		t.Parallel()
		b := setup(t, pipedriveSetup{account: pipedrivetest.Account{Deals: 60}})
		b.syncAll(ctx, t)
		snap := b.fake.Snapshot()

		// Persons have no deleted list; a deal deleted while syncs were paused for more than
		// 30 days was purged before the deleted_deals stream could see it.
		require.NoError(t, b.fake.DeletePerson(snap.Persons[0].ID))
		require.NoError(t, b.fake.DeleteDeal(snap.Deals[0].ID))
		b.clock.Advance(31 * 24 * time.Hour)
		b.syncAll(ctx, t)
		require.EqualValues(t, 1, countRows(ctx, t, b.db, `SELECT count(*) FROM deals WHERE deleted_at IS NULL AND external_id = $1`, strconv.Itoa(snap.Deals[0].ID)),
			"no stream reported the purged deal")

		for _, stream := range []string{pipedrive.StreamDeals, pipedrive.StreamContacts} {
			res, err := b.engine.Run(ctx, jobs.SyncRequest{ConnectionID: b.connID, Stream: stream, Mode: connectors.Full})
			require.NoError(t, err)
			require.EqualValues(t, 1, res.Deleted, stream)
		}
		b.requireExact(ctx, t)
	})

	t.Run("RateLimitStormsEndExact", func(t *testing.T) {
		t.Parallel()
		b := setup(t, pipedriveSetup{
			fake:    pipedrivetest.Options{OmitRetryAfter: true, Seed: 3},
			account: pipedrivetest.Account{Deals: 400, ActivitiesPerDeal: 1, Leads: 50},
			options: map[string]string{"page_size": "100"},
		})
		b.fake.SetFaults(pipedrivetest.Faults{Rate429: 0.1, Rate5xx: 0.2})
		results, err := b.engine.RunConnection(ctx, b.connID, connectors.Incremental, false)
		var retries int64
		for _, r := range results {
			retries += r.Retries
		}
		require.Positive(t, retries)
		b.fake.SetFaults(pipedrivetest.Faults{})
		if err != nil {
			// A stream whose retries ran out snoozed with its progress committed; the next
			// run resumes it.
			for _, r := range results {
				if r.Err != nil {
					require.Equal(t, jobs.OutcomeSnooze, r.Outcome, "%s: %v", r.Stream, r.Err)
				}
			}
		}
		b.syncAll(ctx, t)
		b.requireExact(ctx, t)
	})

	t.Run("ExhaustedRetriesSnoozeAndTheNextRunResumes", func(t *testing.T) {
		t.Parallel()
		var (
			reads int
			fake  *pipedrivetest.Server
		)
		b := setup(t, pipedriveSetup{
			fake:    pipedrivetest.Options{OmitRetryAfter: true},
			account: pipedrivetest.Account{Deals: 400},
			options: map[string]string{"page_size": "100"},
			wrap: func(c connectors.Connector) connectors.Connector {
				return hookConnector{Connector: c, before: func(req connectors.ReadRequest) {
					if req.Stream == pipedrive.StreamDeals {
						if reads++; reads == 3 {
							fake.FailNext(429, 429, 429, 429) // one more than RetryMax
						}
					}
				}}
			},
		})
		fake = b.fake
		b.engine.BatchRecords = 100
		for _, stream := range []string{pipedrive.StreamOwners, pipedrive.StreamPipelines, pipedrive.StreamStages} {
			_, err := b.engine.Run(ctx, jobs.SyncRequest{ConnectionID: b.connID, Stream: stream})
			require.NoError(t, err)
		}
		res, err := b.engine.Run(ctx, jobs.SyncRequest{ConnectionID: b.connID, Stream: pipedrive.StreamDeals})
		var rl *connectors.RateLimitError
		require.ErrorAs(t, err, &rl)
		require.Equal(t, jobs.OutcomeSnooze, res.Outcome)
		require.Positive(t, res.RetryAfter)
		require.EqualValues(t, 200, countRows(ctx, t, b.db, `SELECT count(*) FROM deals`), "the two pages read before were committed")

		b.fake.ResetRequests()
		res, err = b.engine.Run(ctx, jobs.SyncRequest{ConnectionID: b.connID, Stream: pipedrive.StreamDeals})
		require.NoError(t, err)
		require.EqualValues(t, 2, res.Requests, "resumed from the committed cursor")
		b.syncAll(ctx, t)
		b.requireExact(ctx, t)
	})

	t.Run("DailyBudgetSnoozesToTheResetAndResumes", func(t *testing.T) {
		t.Parallel()
		// Enough for the reference streams and two deal pages.
		b := setup(t, pipedriveSetup{
			fake:    pipedrivetest.Options{DailyBudget: 120},
			account: pipedrivetest.Account{Deals: 500},
			options: map[string]string{"page_size": "100"},
		})
		results, err := b.engine.RunConnection(ctx, b.connID, connectors.Incremental, false)
		require.Error(t, err)
		var snoozed *jobs.SyncResult
		for i, r := range results {
			if r.Err != nil {
				require.Equal(t, jobs.OutcomeSnooze, r.Outcome, "%s: %v", r.Stream, r.Err)
				if snoozed == nil {
					snoozed = &results[i]
				}
			}
		}
		require.NotNil(t, snoozed)
		now := b.clock.Now()
		require.Equal(t, time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC).Sub(now), snoozed.RetryAfter)
		require.ErrorContains(t, snoozed.Err, "daily API limit reached")

		b.clock.Advance(snoozed.RetryAfter + 2*time.Minute)
		b.syncAll(ctx, t)
		b.requireExact(ctx, t)
	})
}

// hookConnector calls before ahead of every read.
type hookConnector struct {
	connectors.Connector
	before func(connectors.ReadRequest)
}

func (h hookConnector) Read(ctx context.Context, req connectors.ReadRequest) (connectors.Page, error) {
	h.before(req)
	return h.Connector.Read(ctx, req)
}

// killingConnector cancels the run's context after n reads, as a killed process would stop.
type killingConnector struct {
	connectors.Connector
	n      *int
	after  int
	cancel context.CancelFunc
}

func (k killingConnector) Read(ctx context.Context, req connectors.ReadRequest) (connectors.Page, error) {
	*k.n++
	if *k.n == k.after {
		k.cancel()
	}
	return k.Connector.Read(ctx, req)
}

// TestPipedriveSyncKilled kills Pipedrive syncs part way and runs them again: the data ends
// exact, without duplicates. It commits, so it runs on a schema of its own.
func TestPipedriveSyncKilled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, pool := dbtest.TestSchema(ctx, t)

	for _, after := range []int{2, 5} {
		t.Run(fmt.Sprintf("AfterRead%d", after), func(t *testing.T) {
			_, err := pool.Exec(ctx, `TRUNCATE connections CASCADE`)
			require.NoError(t, err)
			runCtx, cancel := context.WithCancel(ctx)
			defer cancel()
			reads := 0
			kill := true
			b := newPipedriveBundle(ctx, t, pool, pipedriveSetup{
				account: pipedrivetest.Account{Organizations: 50, Persons: 100, Deals: 600, Leads: 150},
				options: map[string]string{"page_size": "100"},
				wrap: func(c connectors.Connector) connectors.Connector {
					if !kill {
						return c
					}
					return killingConnector{Connector: c, n: &reads, after: after, cancel: cancel}
				},
			})
			b.engine.BatchRecords = 250

			for _, stream := range []string{pipedrive.StreamOwners, pipedrive.StreamPipelines, pipedrive.StreamStages} {
				_, err := b.engine.Run(ctx, jobs.SyncRequest{ConnectionID: b.connID, Stream: stream})
				require.NoError(t, err)
			}
			reads = 0
			res, err := b.engine.Run(runCtx, jobs.SyncRequest{ConnectionID: b.connID, Stream: pipedrive.StreamDeals})
			require.ErrorIs(t, err, context.Canceled)
			require.Equal(t, jobs.OutcomeRetry, res.Outcome)
			partial := countRows(ctx, t, pool, `SELECT count(*) FROM deals`)
			require.Less(t, partial, int64(600), "the killed run stopped part way")

			kill = false
			b.syncAll(ctx, t)
			b.requireExact(ctx, t)
		})
	}
}
