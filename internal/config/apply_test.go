package config_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"maps"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/config"
	"github.com/pipewatch/pipewatch/internal/credentials"
	"github.com/pipewatch/pipewatch/internal/dbtest"
	"github.com/pipewatch/pipewatch/internal/secrets"
	"github.com/pipewatch/pipewatch/pipeline"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

func newBox(t *testing.T) *secrets.Box {
	t.Helper()
	key := make([]byte, 32)
	_, err := rand.Read(key)
	require.NoError(t, err)
	box, err := secrets.New(key)
	require.NoError(t, err)
	return box
}

// ownSections keeps the summary lines of this file's sections (org, teams, connections,
// targets), so that sections other packages add don't change these tests.
func ownSections(summary string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(summary, "\n") {
		kind, name, _ := strings.Cut(line, " ")
		switch {
		case kind == "settings" && !strings.HasPrefix(name, "org:") && !strings.HasPrefix(name, "teams:"):
		case kind == "applied", line == "":
		default:
			b.WriteString(line)
		}
	}
	return b.String()
}

func TestApply(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	type testBundle struct {
		tx  pgx.Tx
		box *secrets.Box
		env env
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		return &testBundle{tx: dbtest.TestTx(ctx, t), box: newBox(t), env: maps.Clone(testEnv)}
	}
	parse := func(t *testing.T, b *testBundle, doc string) *config.File {
		t.Helper()
		f, err := config.Parse("test.yaml", []byte(doc), b.env.lookup)
		require.NoError(t, err)
		return f
	}
	load := func(t *testing.T, b *testBundle) *config.File {
		t.Helper()
		f, err := config.Load("testdata/valid.yaml", b.env.lookup)
		require.NoError(t, err)
		return f
	}
	apply := func(t *testing.T, b *testBundle, f *config.File) string {
		t.Helper()
		summary, err := config.Apply(ctx, b.tx, f, b.box)
		require.NoError(t, err)
		var out bytes.Buffer
		_, err = summary.WriteTo(&out)
		require.NoError(t, err)
		return out.String()
	}
	connectionID := func(t *testing.T, b *testBundle, name string) int64 {
		t.Helper()
		var id int64
		require.NoError(t, b.tx.QueryRow(ctx, `SELECT id FROM connections WHERE name = $1`, name).Scan(&id))
		return id
	}
	status := func(t *testing.T, b *testBundle, name string) string {
		t.Helper()
		var s string
		require.NoError(t, b.tx.QueryRow(ctx, `SELECT status FROM connections WHERE name = $1`, name).Scan(&s))
		return s
	}
	storedCredentials := func(t *testing.T, b *testBundle, name string) credentials.Credentials {
		t.Helper()
		c, err := (&credentials.Store{Box: b.box}).Load(ctx, b.tx, connectionID(t, b, name))
		require.NoError(t, err)
		return c
	}

	t.Run("SecondApplyChangesNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		first := apply(t, b, load(t, b))
		require.Equal(t, `settings org: updated
settings teams: updated
connection hubspot-main: created (hubspot, every 10m)
credentials hubspot-main: stored
connection sf: created (salesforce, every 15m)
credentials sf: stored
target ana@example.com 2026-Q4 USD: created (250000)
target team east 2026-11 USD: created (1000000.5)
target org 2026-Q4 EUR: created (5000000)
`, ownSections(first))
		require.Regexp(t, `\napplied \d+ changes\n$`, first)
		require.Equal(t, "no changes: the database already matches the file\n", apply(t, b, load(t, b)))

		var targets int
		require.NoError(t, b.tx.QueryRow(ctx, `SELECT count(*) FROM targets`).Scan(&targets))
		require.Equal(t, 3, targets)
		require.Equal(t, "pat-na1-hubspot-secret", storedCredentials(t, b, "hubspot-main").Token)
		sf := storedCredentials(t, b, "sf").OAuth
		require.Equal(t, credentials.OAuth{ClientID: "sf-client-id", ClientSecret: "sf-client-secret",
			RefreshToken: "sf-refresh-1", TokenURL: "https://login.salesforce.com/services/oauth2/token"}, *sf)

		teams, err := config.LoadTeams(ctx, b.tx)
		require.NoError(t, err)
		require.Equal(t, load(t, b).Teams, teams)
		org, err := config.LoadOrg(ctx, b.tx)
		require.NoError(t, err)
		require.Equal(t, config.Org{Timezone: "America/New_York", Currency: "USD"}, org)
	})

	t.Run("SecretsStayOutOfConfigAndSummary", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		out := apply(t, b, load(t, b))
		var docs string
		require.NoError(t, b.tx.QueryRow(ctx, `SELECT string_agg(config::text, ' ') FROM connections`).Scan(&docs))
		var sealed []byte
		require.NoError(t, b.tx.QueryRow(ctx, `SELECT string_agg(ciphertext || coalesce(applied_refresh_token, ''), '') FROM connection_credentials`).Scan(&sealed))
		for _, secret := range testEnv {
			require.NotContains(t, docs, secret)
			require.NotContains(t, out, secret)
			require.NotContains(t, string(sealed), secret)
		}
		require.Contains(t, docs, `"token_env": "TEST_HUBSPOT_TOKEN"`, "the file's env var names are kept")
		require.Contains(t, docs, `"refresh_token_env": "TEST_SF_REFRESH_TOKEN"`)
	})

	t.Run("ConnectionsLeavingTheFileArePausedAndComeBack", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		apply(t, b, load(t, b))
		out := apply(t, b, parse(t, b, "connections:\n  - {name: sf, kind: salesforce, freshness: 2h, base_url: https://example.my.salesforce.com,\n     auth: {oauth: {client_id_env: TEST_SF_CLIENT_ID, client_secret_env: TEST_SF_CLIENT_SECRET, refresh_token_env: TEST_SF_REFRESH_TOKEN, token_url: https://login.salesforce.com/services/oauth2/token}}}\n"))
		require.Contains(t, out, "connection hubspot-main: paused (not in the file; its data is kept)\n")
		require.Contains(t, out, "target ana@example.com 2026-10-01..2026-12-31 USD: deleted (not in the file)\n")
		require.Contains(t, out, "settings teams: updated\n")
		require.NotContains(t, out, "connection sf")
		require.Equal(t, "paused", status(t, b, "hubspot-main"))
		require.Equal(t, "active", status(t, b, "sf"))

		out = apply(t, b, load(t, b))
		require.Contains(t, out, "connection hubspot-main: resumed\n")
		require.NotContains(t, out, "credentials hubspot-main")
		require.Equal(t, "active", status(t, b, "hubspot-main"))
	})

	t.Run("ChangesAreReportedByField", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		apply(t, b, load(t, b))
		b.env["TEST_HUBSPOT_TOKEN"] = "pat-na1-rotated-by-a-person"
		f := load(t, b)
		f.Connections[0].Config.Options["portal_id"] = "999"
		f.Targets[0].Amount = f.Targets[0].Amount.Add(f.Targets[0].Amount)
		out := apply(t, b, f)
		require.Equal(t, `connection hubspot-main: updated (options)
credentials hubspot-main: updated (token)
target ana@example.com 2026-Q4 USD: updated (250000 → 500000)
applied 3 changes
`, out)
		require.Equal(t, "pat-na1-rotated-by-a-person", storedCredentials(t, b, "hubspot-main").Token)
	})

	t.Run("StageMapChangeRemapsSyncedStagesAtOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		apply(t, b, load(t, b))
		id := connectionID(t, b, "hubspot-main")
		_, err := b.tx.Exec(ctx, `INSERT INTO stages (connection_id, external_id, name, canonical_stage, is_closed, is_won) VALUES
			($1, '101', 'Pilot running', 'proposal', false, false),
			($1, '102', 'Won back', 'closed_won', true, true),
			($1, '103', 'Legal review', NULL, false, false)`, id)
		require.NoError(t, err)

		f := load(t, b)
		f.Connections[0].Config.StageMap = pipeline.StageMap{
			"101":          pipeline.StageNegotiation, // by id
			"Legal review": pipeline.StageClosing,     // by name
			"102":          pipeline.StageClosedLost,  // a won stage can't become lost
		}
		out := apply(t, b, f)
		require.Contains(t, out, "connection hubspot-main: updated (stage_map), 2 synced stages remapped now")
		rows, err := b.tx.Query(ctx, `SELECT external_id, coalesce(canonical_stage, '') FROM stages WHERE connection_id = $1 ORDER BY external_id`, id)
		require.NoError(t, err)
		got := map[string]string{}
		var ext, canonical string
		_, err = pgx.ForEachRow(rows, []any{&ext, &canonical}, func() error { got[ext] = canonical; return nil })
		require.NoError(t, err)
		require.Equal(t, map[string]string{"101": "negotiation", "102": "closed_won", "103": "closing"}, got)
	})

	t.Run("RotatedRefreshTokenSurvivesReapply", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		apply(t, b, load(t, b))
		// The worker refreshes the grant and saves the rotated tokens.
		store := &credentials.Store{Box: b.box}
		rotated := storedCredentials(t, b, "sf")
		rotated.OAuth.RefreshToken, rotated.OAuth.AccessToken = "sf-refresh-2-rotated", "sf-access-2"
		require.NoError(t, store.Save(ctx, b.tx, connectionID(t, b, "sf"), rotated))

		require.Equal(t, "no changes: the database already matches the file\n", apply(t, b, load(t, b)))
		require.Equal(t, "sf-refresh-2-rotated", storedCredentials(t, b, "sf").OAuth.RefreshToken)

		// A client secret change keeps the rotated grant.
		b.env["TEST_SF_CLIENT_SECRET"] = "sf-client-secret-2"
		require.Contains(t, apply(t, b, load(t, b)), "credentials sf: updated (client_secret)\n")
		got := storedCredentials(t, b, "sf").OAuth
		require.Equal(t, "sf-refresh-2-rotated", got.RefreshToken)
		require.Equal(t, "sf-access-2", got.AccessToken)

		// A new grant in the environment replaces the stored one.
		b.env["TEST_SF_REFRESH_TOKEN"] = "sf-refresh-from-a-new-consent"
		require.Contains(t, apply(t, b, load(t, b)), "credentials sf: updated (refresh_token)\n")
		got = storedCredentials(t, b, "sf").OAuth
		require.Equal(t, "sf-refresh-from-a-new-consent", got.RefreshToken)
		require.Empty(t, got.AccessToken, "the old grant's access token is dropped")
		require.Equal(t, "no changes: the database already matches the file\n", apply(t, b, load(t, b)))
	})

	t.Run("NewCredentialsReactivateNeedsReauth", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		apply(t, b, load(t, b))
		_, err := b.tx.Exec(ctx, `UPDATE connections SET status = 'needs_reauth' WHERE name = 'sf'`)
		require.NoError(t, err)
		require.Equal(t, "no changes: the database already matches the file\n", apply(t, b, load(t, b)))
		require.Equal(t, "needs_reauth", status(t, b, "sf"))

		b.env["TEST_SF_REFRESH_TOKEN"] = "sf-refresh-after-reconsent"
		out := apply(t, b, load(t, b))
		require.Contains(t, out, "connection sf: active again (new credentials)\n")
		require.Equal(t, "active", status(t, b, "sf"))
	})

	t.Run("WrongKeyReseals", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		apply(t, b, load(t, b))
		b.box = newBox(t)
		out := apply(t, b, load(t, b))
		require.Contains(t, out, "credentials hubspot-main: re-sealed with the current PIPEWATCH_SECRET_KEY (the stored ones could not be opened with it)\n")
		require.Equal(t, "pat-na1-hubspot-secret", storedCredentials(t, b, "hubspot-main").Token)
	})

	t.Run("MissingKeyWritesNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := config.Apply(ctx, b.tx, load(t, b), nil)
		require.ErrorIs(t, err, secrets.ErrNoKey)
		require.EqualError(t, err, "storing the credentials of 2 connection(s): "+secrets.ErrNoKey.Error())
		var n int
		require.NoError(t, b.tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM connections) + (SELECT count(*) FROM settings) + (SELECT count(*) FROM targets)`).Scan(&n))
		require.Zero(t, n)
	})

	t.Run("KindChangeIsRefusedAndRolledBack", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		apply(t, b, load(t, b))
		f := load(t, b)
		f.Connections[1].Kind = "pipedrive"
		f.Org.Timezone = "UTC" // the org section is applied before connections
		_, err := config.Apply(ctx, b.tx, f, b.box)
		require.EqualError(t, err, "applying connections: connection sf is a salesforce connection in the database and its synced data "+
			"comes from salesforce; a connection's kind can't change: give the pipedrive connection a new name")
		org, err := config.LoadOrg(ctx, b.tx)
		require.NoError(t, err)
		require.Equal(t, "America/New_York", org.Timezone, "the earlier sections' writes were rolled back too")
	})

	t.Run("LoadSettingNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		var v map[string]any
		require.ErrorIs(t, config.LoadSetting(ctx, b.tx, "rules", &v), config.ErrSettingNotFound)
		org, err := config.LoadOrg(ctx, b.tx)
		require.NoError(t, err)
		require.Equal(t, config.DefaultOrg, org)
	})
}
