package pipedrivetest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/connectors/pipedrive/pipedrivetest"
)

const token = "fake-token"

type testBundle struct {
	clock *pipedrivetest.Clock
	fake  *pipedrivetest.Server
}

func setup(t *testing.T, opts pipedrivetest.Options) *testBundle {
	t.Helper()
	clock := pipedrivetest.NewClock(time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC))
	opts.Now = clock.Now
	if opts.APIToken == "" {
		opts.APIToken = token
	}
	fake := pipedrivetest.NewServer(opts)
	t.Cleanup(fake.Close)
	return &testBundle{clock: clock, fake: fake}
}

type response struct {
	status int
	header http.Header
	body   map[string]any
}

func (b *testBundle) get(t *testing.T, path string, q url.Values, header map[string]string) response {
	t.Helper()
	u := b.fake.URL() + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	require.NoError(t, err)
	if header == nil {
		header = map[string]string{"x-api-token": token}
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := b.fake.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var body map[string]any
	require.NoError(t, json.Unmarshal(raw, &body), string(raw))
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}

func ids(t *testing.T, r response) []float64 {
	t.Helper()
	require.Equal(t, http.StatusOK, r.status, r.body)
	var out []float64
	for _, item := range r.body["data"].([]any) {
		out = append(out, item.(map[string]any)["id"].(float64))
	}
	return out
}

func nextCursor(r response) (string, bool) {
	c, ok := r.body["additional_data"].(map[string]any)["next_cursor"].(string)
	return c, ok
}

func TestV2Lists(t *testing.T) {
	t.Parallel()

	t.Run("CursorPagingEndsWithNullNextCursor", func(t *testing.T) {
		t.Parallel()
		b := setup(t, pipedrivetest.Options{})
		b.fake.Generate(pipedrivetest.Account{Deals: 25})
		var all []float64
		q := url.Values{"limit": {"10"}}
		for {
			r := b.get(t, "/api/v2/deals", q, nil)
			all = append(all, ids(t, r)...)
			next, ok := nextCursor(r)
			if !ok {
				require.Nil(t, r.body["additional_data"].(map[string]any)["next_cursor"], "next_cursor is null at the end")
				break
			}
			q.Set("cursor", next)
		}
		require.Len(t, all, 25)
		for i := 1; i < len(all); i++ {
			require.Less(t, all[i-1], all[i], "sorted by id ascending by default")
		}
	})

	t.Run("LimitAbove500IsRejected", func(t *testing.T) {
		t.Parallel()
		b := setup(t, pipedrivetest.Options{})
		r := b.get(t, "/api/v2/persons", url.Values{"limit": {"501"}}, nil)
		require.Equal(t, http.StatusBadRequest, r.status)
		require.Equal(t, false, r.body["success"])
		require.Contains(t, r.body["error"], "less than or equal to 500")
	})

	t.Run("UpdatedSinceIsInclusiveAndUntilExclusive", func(t *testing.T) {
		t.Parallel()
		b := setup(t, pipedrivetest.Options{})
		at := func(m int) pipedrivetest.Time {
			return pipedrivetest.T(b.clock.Now().Add(time.Duration(m) * time.Minute))
		}
		d1 := b.fake.AddDeal(pipedrivetest.Deal{Title: "a", UpdateTime: at(-30)})
		d2 := b.fake.AddDeal(pipedrivetest.Deal{Title: "b", UpdateTime: at(-20)})
		b.fake.AddDeal(pipedrivetest.Deal{Title: "c", UpdateTime: at(-10)})
		r := b.get(t, "/api/v2/deals", url.Values{
			"updated_since": {at(-30).Std().Format(time.RFC3339)}, "updated_until": {at(-10).Std().Format(time.RFC3339)},
			"sort_by": {"update_time"}, "sort_direction": {"asc"},
		}, nil)
		require.Equal(t, []float64{float64(d1.ID), float64(d2.ID)}, ids(t, r))
	})

	t.Run("CursorOfAnotherSortIsRejected", func(t *testing.T) {
		t.Parallel()
		b := setup(t, pipedrivetest.Options{})
		b.fake.Generate(pipedrivetest.Account{Deals: 5})
		r := b.get(t, "/api/v2/deals", url.Values{"limit": {"2"}}, nil)
		next, ok := nextCursor(r)
		require.True(t, ok)
		r = b.get(t, "/api/v2/deals", url.Values{"limit": {"2"}, "cursor": {next}, "sort_by": {"update_time"}}, nil)
		require.Equal(t, http.StatusBadRequest, r.status)
	})

	t.Run("DeletedDealsAreListedForThirtyDays", func(t *testing.T) {
		t.Parallel()
		b := setup(t, pipedrivetest.Options{})
		kept := b.fake.AddDeal(pipedrivetest.Deal{Title: "kept"})
		gone := b.fake.AddDeal(pipedrivetest.Deal{Title: "gone"})
		require.NoError(t, b.fake.DeleteDeal(gone.ID))
		require.Equal(t, []float64{float64(kept.ID)}, ids(t, b.get(t, "/api/v2/deals", nil, nil)))
		deleted := b.get(t, "/api/v2/deals", url.Values{"status": {"deleted"}}, nil)
		require.Equal(t, []float64{float64(gone.ID)}, ids(t, deleted))
		require.Equal(t, true, deleted.body["data"].([]any)[0].(map[string]any)["is_deleted"])

		b.clock.Advance(30*24*time.Hour + time.Second)
		require.Empty(t, ids(t, b.get(t, "/api/v2/deals", url.Values{"status": {"deleted"}}, nil)), "purged")
		require.Error(t, b.fake.RestoreDeal(gone.ID))
	})

	t.Run("IncludeFieldsGivesLastAndNextActivity", func(t *testing.T) {
		t.Parallel()
		b := setup(t, pipedrivetest.Options{})
		d := b.fake.AddDeal(pipedrivetest.Deal{Title: "d"})
		before := d.UpdateTime
		b.clock.Advance(time.Minute)
		done := b.fake.AddActivity(pipedrivetest.Activity{DealID: &d.ID, DueDate: "2026-03-01", Done: true})
		next := b.fake.AddActivity(pipedrivetest.Activity{DealID: &d.ID, DueDate: "2026-03-20", DueTime: "09:00:00"})
		r := b.get(t, "/api/v2/deals", url.Values{"include_fields": {"last_activity_id,next_activity_id"}}, nil)
		item := r.body["data"].([]any)[0].(map[string]any)
		require.Equal(t, float64(done.ID), item["last_activity_id"])
		require.Equal(t, float64(next.ID), item["next_activity_id"])
		got, _ := b.fake.Deal(d.ID)
		require.True(t, got.UpdateTime.Std().After(before.Std()), "the deal's activity fields changed: update_time bumped")
	})
}

func TestV1Lists(t *testing.T) {
	t.Parallel()

	t.Run("LeadsOffsetPaging", func(t *testing.T) {
		t.Parallel()
		b := setup(t, pipedrivetest.Options{})
		b.fake.Generate(pipedrivetest.Account{Leads: 12})
		r := b.get(t, "/v1/leads", url.Values{"limit": {"5"}, "start": {"10"}, "sort": {"update_time DESC"}}, nil)
		require.Equal(t, http.StatusOK, r.status)
		require.Len(t, r.body["data"], 2)
		p := r.body["additional_data"].(map[string]any)["pagination"].(map[string]any)
		require.Equal(t, false, p["more_items_in_collection"])
		require.NotContains(t, p, "next_start")

		r = b.get(t, "/v1/leads", url.Values{"limit": {"5"}}, nil)
		p = r.body["additional_data"].(map[string]any)["pagination"].(map[string]any)
		require.Equal(t, true, p["more_items_in_collection"])
		require.Equal(t, float64(5), p["next_start"])

		lead := r.body["data"].([]any)[0].(map[string]any)
		require.Regexp(t, `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`, lead["update_time"])
	})

	t.Run("UsersAreNotPagedAndUseV1Times", func(t *testing.T) {
		t.Parallel()
		b := setup(t, pipedrivetest.Options{})
		b.fake.AddUser(pipedrivetest.User{Name: "Ana", Email: "ana@example.com", TimezoneName: "Europe/Tallinn", Active: true})
		r := b.get(t, "/v1/users", nil, nil)
		require.Equal(t, http.StatusOK, r.status)
		u := r.body["data"].([]any)[0].(map[string]any)
		require.Equal(t, "Europe/Tallinn", u["timezone_name"])
		require.Equal(t, "2026-03-10 12:00:00", u["modified"])
	})
}

func TestAuthAndLimits(t *testing.T) {
	t.Parallel()

	t.Run("Unauthorized", func(t *testing.T) {
		t.Parallel()
		b := setup(t, pipedrivetest.Options{})
		for _, header := range []map[string]string{{}, {"x-api-token": "nope"}, {"Authorization": "Bearer nope"}} {
			r := b.get(t, "/api/v2/deals", nil, header)
			require.Equal(t, http.StatusUnauthorized, r.status)
			require.Equal(t, "unauthorized access", r.body["error"])
			require.Equal(t, float64(401), r.body["errorCode"])
		}
		// The v1 api_token query parameter is accepted by v1 only.
		require.Equal(t, http.StatusOK, b.get(t, "/v1/users", url.Values{"api_token": {token}}, map[string]string{}).status)
		require.Equal(t, http.StatusUnauthorized, b.get(t, "/api/v2/deals", url.Values{"api_token": {token}}, map[string]string{}).status)
		for _, r := range b.fake.Requests() {
			require.NotContains(t, r.Query.Encode(), token, "the request log never keeps the token")
		}
	})

	t.Run("BurstWindow", func(t *testing.T) {
		t.Parallel()
		b := setup(t, pipedrivetest.Options{BurstLimit: 3})
		for i := range 3 {
			r := b.get(t, "/api/v2/pipelines", nil, nil)
			require.Equal(t, http.StatusOK, r.status)
			require.Equal(t, "3", r.header.Get("x-ratelimit-limit"))
			require.Equal(t, []string{"2", "1", "0"}[i], r.header.Get("x-ratelimit-remaining"))
			require.NotEmpty(t, r.header.Get("x-ratelimit-reset"))
		}
		r := b.get(t, "/api/v2/pipelines", nil, nil)
		require.Equal(t, http.StatusTooManyRequests, r.status)
		require.Equal(t, "Request over limit", r.body["error"])
		require.Equal(t, false, r.body["success"])
		require.NotEmpty(t, r.header.Get("Retry-After"))
	})

	t.Run("DailyBudget", func(t *testing.T) {
		t.Parallel()
		b := setup(t, pipedrivetest.Options{DailyBudget: 25})
		require.Equal(t, http.StatusOK, b.get(t, "/api/v2/deals", nil, nil).status)
		require.Equal(t, http.StatusOK, b.get(t, "/api/v2/deals", nil, nil).status)
		r := b.get(t, "/api/v2/deals", nil, nil)
		require.Equal(t, http.StatusTooManyRequests, r.status)
		require.Contains(t, r.body["error"], "Daily")
		require.Equal(t, "43200", r.header.Get("Retry-After"), "until midnight UTC")
		require.NotEqual(t, "0", r.header.Get("x-ratelimit-remaining"), "the burst window is not what ran out")
		require.Equal(t, http.StatusOK, b.get(t, "/api/v2/stages", nil, nil).status, "a 5-token request still fits")

		b.clock.Advance(12 * time.Hour)
		require.Equal(t, http.StatusOK, b.get(t, "/api/v2/deals", nil, nil).status, "the budget resets at midnight")
	})

	t.Run("OAuthRefreshRotatesAndTokensWork", func(t *testing.T) {
		t.Parallel()
		b := setup(t, pipedrivetest.Options{ClientID: "cid", ClientSecret: "csecret", RefreshToken: "rt-1"})
		refresh := func(user, pass, rt string) (int, map[string]any) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, b.fake.URL()+"/oauth/token",
				strings.NewReader(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}.Encode()))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(user, pass)
			resp, err := b.fake.Client().Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			var body map[string]any
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
			return resp.StatusCode, body
		}
		status, body := refresh("cid", "wrong", "rt-1")
		require.Equal(t, http.StatusUnauthorized, status)
		require.Equal(t, "invalid_client", body["error"])

		status, body = refresh("cid", "csecret", "rt-1")
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, b.fake.URL(), body["api_domain"])
		require.Equal(t, "Bearer", body["token_type"])
		require.NotEqual(t, "rt-1", body["refresh_token"])
		require.Equal(t, body["refresh_token"], b.fake.RefreshToken())

		r := b.get(t, "/api/v2/deals", nil, map[string]string{"Authorization": "Bearer " + body["access_token"].(string)})
		require.Equal(t, http.StatusOK, r.status)

		status, body = refresh("cid", "csecret", "rt-1")
		require.Equal(t, http.StatusBadRequest, status, "a rotated-away refresh token is spent")
		require.Equal(t, "invalid_grant", body["error"])
	})
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	b := setup(t, pipedrivetest.Options{BurstLimit: 10_000})
	b.fake.Generate(pipedrivetest.Account{Deals: 200, ActivitiesPerDeal: 1})
	deals := b.fake.Snapshot().Deals
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 20 {
				if i%2 == 0 {
					require.NoError(t, b.fake.UpdateDeal(deals[i].ID, func(d *pipedrivetest.Deal) { d.Title += "!" }))
				}
				req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, b.fake.URL()+"/api/v2/deals?sort_by=update_time&limit=50", nil)
				req.Header.Set("x-api-token", token)
				resp, err := b.fake.Client().Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		})
	}
	wg.Wait()
	require.Len(t, b.fake.Requests(), 160)
	got, _ := b.fake.Deal(deals[0].ID)
	require.True(t, strings.HasSuffix(got.Title, strings.Repeat("!", 20)))
}
