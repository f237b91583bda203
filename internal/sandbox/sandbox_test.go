package sandbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/pipewatch/pipewatch/connectors"
	"github.com/pipewatch/pipewatch/connectors/hubspot"
	"github.com/pipewatch/pipewatch/connectors/pipedrive"
	"github.com/pipewatch/pipewatch/internal/config"
	"github.com/pipewatch/pipewatch/internal/sandbox"
	"github.com/pipewatch/pipewatch/pipeline"
)

// readAll reads a whole stream through a real connector and returns its records.
func readAll(ctx context.Context, t *testing.T, c connectors.Connector, stream string) pipeline.Batch {
	t.Helper()
	var all pipeline.Batch
	var cur connectors.Cursor
	for range 1000 {
		page, err := c.Read(ctx, connectors.ReadRequest{Stream: stream, Mode: connectors.Incremental, Cursor: cur, SyncStart: time.Now()})
		require.NoError(t, err)
		all.Append(page.Batch)
		if page.Done {
			return all
		}
		cur = page.Next
	}
	t.Fatalf("stream %s did not finish", stream)
	return all
}

func TestStart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// History ends before the connectors' lag, so the first read sees all of it.
	sb, err := sandbox.Start(sandbox.Options{Seed: 3, Now: time.Now().Add(-3 * time.Minute)})
	require.NoError(t, err)
	t.Cleanup(sb.Close)

	byCRM := func(crm sandbox.CRM) (deals []*sandbox.Deal) {
		for _, d := range sb.Company.Deals {
			if d.Team.CRM == crm {
				deals = append(deals, d)
			}
		}
		return deals
	}

	t.Run("HubSpotServesTheAmericasAndEMEA", func(t *testing.T) {
		t.Parallel()
		hc := connectors.NewHTTPClient(connectors.HTTPConfig{
			Auth:       oauth2.StaticTokenSource(&oauth2.Token{AccessToken: sb.HubSpotToken}),
			RateLimits: hubspot.RateLimits(),
		})
		c, err := hubspot.New(hubspot.Config{BaseURL: sb.HubSpot.URL, PortalID: sb.HubSpot.PortalID}, hc)
		require.NoError(t, err)
		readAll(ctx, t, c, hubspot.StreamPipelines)
		owners := readAll(ctx, t, c, hubspot.StreamOwners).Owners
		require.Len(t, owners, 10, "two teams of a manager and four reps")
		teams := map[string]int{}
		for _, o := range owners {
			teams[o.Team]++
		}
		require.Equal(t, map[string]int{"Americas": 5, "EMEA": 5}, teams)

		want := byCRM(sandbox.HubSpot)
		got := readAll(ctx, t, c, hubspot.StreamDeals)
		require.Len(t, got.Deals, len(want))
		byName := map[string]pipeline.Deal{}
		for _, d := range got.Deals {
			byName[d.Name+"/"+d.Amount.Decimal.String()] = d
		}
		for _, d := range want {
			g, ok := byName[d.Name+"/"+d.Amount.String()]
			require.True(t, ok, "deal %s", d.Name)
			require.Equal(t, d.Currency, g.Currency)
			require.Equal(t, !d.Open(), g.IsClosed, d.Name)
			require.Equal(t, d.Won(), g.IsWon, d.Name)
			require.True(t, g.CreatedAt.Equal(d.Created.Truncate(time.Millisecond)), "deal %s created %s, got %s", d.Name, d.Created, g.CreatedAt)
			require.True(t, g.StageEnteredAt.Equal(d.StageEntered().Truncate(time.Millisecond)), d.Name)
			if d.Story == sandbox.StoryGoneQuiet {
				require.True(t, g.LastActivityAt.Equal(d.LastTouch().Truncate(time.Millisecond)))
				require.True(t, g.NextActivityAt.IsZero())
			}
		}
		calls := readAll(ctx, t, c, hubspot.StreamCalls).Activities
		require.NotEmpty(t, calls)
		for _, a := range calls {
			require.NotEmpty(t, a.DealExternalID)
		}
		leads := readAll(ctx, t, c, hubspot.StreamContacts).Leads
		var sql int
		for _, l := range leads {
			if !l.SQLAt.IsZero() {
				sql++
			}
		}
		require.Greater(t, sql, 300)
	})

	t.Run("PipedriveServesAPAC", func(t *testing.T) {
		t.Parallel()
		c, err := pipedrive.New(pipedrive.Config{BaseURL: sb.Pipedrive.URL(), APIToken: sb.PipedriveToken},
			connectors.NewHTTPClient(connectors.HTTPConfig{RateLimits: pipedrive.RateLimits()}))
		require.NoError(t, err)
		owners := readAll(ctx, t, c, "owners").Owners
		require.Len(t, owners, 5)
		zones := map[string]bool{}
		for _, o := range owners {
			zones[o.Timezone] = true
		}
		require.True(t, zones["Australia/Sydney"] && zones["Asia/Tokyo"], "reps keep their own time zones: %v", zones)
		want := byCRM(sandbox.Pipedrive)
		got := readAll(ctx, t, c, "deals").Deals
		require.Len(t, got, len(want))
		currencies := map[string]bool{}
		for _, d := range got {
			currencies[d.Currency] = true
		}
		require.Equal(t, map[string]bool{"JPY": true, "AUD": true}, currencies)
	})

	t.Run("ConfigIsValid", func(t *testing.T) {
		t.Parallel()
		f, err := config.Parse("sandbox.yaml", sb.ConfigYAML(), sb.LookupEnv)
		require.NoError(t, err)
		require.Len(t, f.Teams, 3)
		require.Len(t, f.Connections, 2)
		require.Equal(t, sb.HubSpotToken, f.Connections[0].Credentials.Token)
		require.Len(t, f.Targets, len(sb.Company.Targets))
		require.NotContains(t, string(sb.ConfigYAML()), sb.HubSpotToken, "the file names env vars, never secrets")
	})
}

func TestTick(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sb, err := sandbox.Start(sandbox.Options{Seed: 5, Now: time.Now().Add(-5 * time.Minute)})
	require.NoError(t, err)
	t.Cleanup(sb.Close)

	hs, err := hubspot.New(hubspot.Config{BaseURL: sb.HubSpot.URL, Lag: -1}, connectors.NewHTTPClient(connectors.HTTPConfig{
		Auth: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: sb.HubSpotToken}), RateLimits: hubspot.RateLimits(),
	}))
	require.NoError(t, err)
	pd, err := pipedrive.New(pipedrive.Config{BaseURL: sb.Pipedrive.URL(), APIToken: sb.PipedriveToken},
		connectors.NewHTTPClient(connectors.HTTPConfig{RateLimits: pipedrive.RateLimits()}))
	require.NoError(t, err)
	readAll(ctx, t, hs, hubspot.StreamPipelines)
	// read returns the deals changed after cursor, and the cursor after them.
	read := func(c connectors.Connector, cur connectors.Cursor) (map[string]pipeline.Deal, connectors.Cursor) {
		out := map[string]pipeline.Deal{}
		for {
			page, err := c.Read(ctx, connectors.ReadRequest{Stream: "deals", Mode: connectors.Incremental, Cursor: cur, SyncStart: time.Now()})
			require.NoError(t, err)
			for _, d := range page.Deals {
				out[d.Name] = d
			}
			cur = page.Next
			if page.Done {
				return out, cur
			}
		}
	}
	all, hsCur := read(hs, "")
	pdAll, pdCur := read(pd, "")
	require.Equal(t, len(sb.Company.Deals), len(all)+len(pdAll), "deal names are unique")

	// Pipedrive's connector reads up to a minute behind the vendor's clock.
	changes, err := sb.Tick(time.Now().Add(-90 * time.Second))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(changes), 3*3, "every team touches, moves and pushes")
	hsChanged, _ := read(hs, hsCur)
	pdChanged, _ := read(pd, pdCur)
	var pushes int
	for _, ch := range changes {
		changed := hsChanged
		if ch.Team == "APAC" {
			changed = pdChanged
		}
		got, ok := changed[ch.Deal]
		require.True(t, ok, "the change %q reaches the vendor (%d changed deals)", ch, len(changed))
		var want *sandbox.Deal
		for _, d := range sb.Company.Deals {
			if d.Name == ch.Deal {
				want = d
			}
		}
		require.Equal(t, !want.Open(), got.IsClosed, ch.String())
		if !want.Open() {
			continue
		}
		require.True(t, want.CloseDate.Equal(got.CloseDate), "%s: close date %s, got %s", ch, want.CloseDate, got.CloseDate)
		if len(ch.What) > 6 && ch.What[:6] == "pushed" {
			pushes++
		}
	}
	require.Equal(t, 3, pushes, "one push a team")
}
