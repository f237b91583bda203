package hubspottest_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/connectors/hubspot/hubspottest"
)

type testBundle struct {
	fake  *hubspottest.Server
	token string
}

func setup(t *testing.T, opts hubspottest.Options) *testBundle {
	t.Helper()
	if opts.BurstLimit == 0 {
		opts.BurstLimit, opts.SearchPerSecond = 100_000, 100_000
	}
	fake := hubspottest.New(opts)
	t.Cleanup(fake.Close)
	return &testBundle{fake: fake, token: fake.AddPrivateAppToken()}
}

// do sends a request and decodes the JSON answer.
func (b *testBundle) do(t *testing.T, method, path string, body any) (*http.Response, map[string]any) {
	t.Helper()
	var r io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		require.NoError(t, err)
		r = strings.NewReader(string(raw))
	}
	req, err := http.NewRequestWithContext(t.Context(), method, b.fake.URL+path, r)
	require.NoError(t, err)
	if b.token != "" {
		req.Header.Set("Authorization", "Bearer "+b.token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var out map[string]any
	require.NoError(t, json.Unmarshal(raw, &out), string(raw))
	return resp, out
}

func search(filters []map[string]any, sorts []map[string]any, limit int, after string, props ...string) map[string]any {
	body := map[string]any{"filterGroups": []any{map[string]any{"filters": filters}}, "limit": limit, "properties": props}
	if sorts != nil {
		body["sorts"] = sorts
	}
	if after != "" {
		body["after"] = after
	}
	return body
}

func f(prop, op string, v any) map[string]any {
	return map[string]any{"propertyName": prop, "operator": op, "value": fmt.Sprint(v)}
}

func ids(t *testing.T, out map[string]any) []string {
	t.Helper()
	var got []string
	for _, r := range out["results"].([]any) {
		got = append(got, r.(map[string]any)["id"].(string))
	}
	return got
}

func TestSearch(t *testing.T) {
	t.Parallel()

	t.Run("PagesWithAfterUpToTheTenThousandCap", func(t *testing.T) {
		t.Parallel()
		b := setup(t, hubspottest.Options{})
		b.fake.GenerateDeals(10_050, hubspottest.GenerateOptions{})
		asc := []map[string]any{{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}}
		gte := []map[string]any{f("hs_lastmodifieddate", "GTE", 0)}

		resp, out := b.do(t, "POST", "/crm/v3/objects/deals/search", search(gte, asc, 200, "9800"))
		require.Equal(t, 200, resp.StatusCode)
		require.EqualValues(t, 10_050, out["total"])
		require.Len(t, out["results"], 200)
		require.Equal(t, "10000", out["paging"].(map[string]any)["next"].(map[string]any)["after"])

		resp, out = b.do(t, "POST", "/crm/v3/objects/deals/search", search(gte, asc, 200, "10000"))
		require.Equal(t, 400, resp.StatusCode)
		require.Equal(t, "error", out["status"])
		require.Contains(t, out["message"], "10000")

		resp, _ = b.do(t, "POST", "/crm/v3/objects/deals/search", search(gte, asc, 201, ""))
		require.Equal(t, 400, resp.StatusCode, "search pages hold at most 200")
	})

	t.Run("ValuesAreStringsOrNullAndArchivedRecordsAreAbsent", func(t *testing.T) {
		t.Parallel()
		b := setup(t, hubspottest.Options{})
		deals := b.fake.GenerateDeals(5, hubspottest.GenerateOptions{})
		require.NoError(t, b.fake.Archive("deals", deals[0]))
		_, out := b.do(t, "POST", "/crm/v3/objects/deals/search", search(nil, nil, 10, "", "amount", "no_such_property"))
		require.EqualValues(t, 4, out["total"])
		require.NotContains(t, ids(t, out), deals[0])
		for _, r := range out["results"].([]any) {
			props := r.(map[string]any)["properties"].(map[string]any)
			require.Nil(t, props["no_such_property"])
			for name, v := range props {
				if v != nil {
					require.IsType(t, "", v, name)
				}
			}
			require.Contains(t, props, "hs_lastmodifieddate")
			require.Contains(t, props, "hs_object_id")
		}
	})

	t.Run("FiltersAndSorts", func(t *testing.T) {
		t.Parallel()
		b := setup(t, hubspottest.Options{})
		all := b.fake.GenerateDeals(60, hubspottest.GenerateOptions{SharedModified: 20})
		o, _ := b.fake.Object("deals", all[30]) // one of the 20 sharing a stamp
		shared := o.Modified.UnixMilli()

		_, out := b.do(t, "POST", "/crm/v3/objects/deals/search", search(
			[]map[string]any{f("hs_lastmodifieddate", "EQ", shared), f("hs_object_id", "GT", all[30])},
			[]map[string]any{{"propertyName": "hs_object_id", "direction": "ASCENDING"}}, 100, ""))
		got := ids(t, out)
		require.NotEmpty(t, got)
		prev := all[30]
		for _, id := range got {
			require.Greater(t, mustInt(t, id), mustInt(t, prev))
			prev = id
			d, _ := b.fake.Object("deals", id)
			require.Equal(t, shared, d.Modified.UnixMilli())
		}

		_, out = b.do(t, "POST", "/crm/v3/objects/deals/search", search(
			[]map[string]any{f("hs_lastmodifieddate", "LT", shared)},
			[]map[string]any{{"propertyName": "hs_lastmodifieddate", "direction": "DESCENDING"}}, 100, ""))
		var last int64 = 1 << 62
		for _, id := range ids(t, out) {
			d, _ := b.fake.Object("deals", id)
			require.Less(t, d.Modified.UnixMilli(), shared)
			require.LessOrEqual(t, d.Modified.UnixMilli(), last)
			last = d.Modified.UnixMilli()
		}

		// ISO dates work as filter values too.
		_, iso := b.do(t, "POST", "/crm/v3/objects/deals/search", search(
			[]map[string]any{f("hs_lastmodifieddate", "GTE", o.Modified.Format(time.RFC3339Nano))}, nil, 100, ""))
		_, ms := b.do(t, "POST", "/crm/v3/objects/deals/search", search(
			[]map[string]any{f("hs_lastmodifieddate", "GTE", shared)}, nil, 100, ""))
		require.Equal(t, ms["total"], iso["total"])
	})

	t.Run("ContactsFilterOnLastmodifieddateOnly", func(t *testing.T) {
		t.Parallel()
		b := setup(t, hubspottest.Options{})
		b.fake.GenerateContacts(10, hubspottest.GenerateOptions{})
		_, out := b.do(t, "POST", "/crm/v3/objects/contacts/search", search([]map[string]any{f("lastmodifieddate", "GTE", 0)}, nil, 100, ""))
		require.EqualValues(t, 10, out["total"])
		_, out = b.do(t, "POST", "/crm/v3/objects/contacts/search", search([]map[string]any{f("hs_lastmodifieddate", "GTE", 0)}, nil, 100, ""))
		require.EqualValues(t, 0, out["total"], "filtering contacts on hs_lastmodifieddate silently matches nothing")
	})
}

func mustInt(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	require.NoError(t, err)
	return n
}

func TestListsAndAssociations(t *testing.T) {
	t.Parallel()
	b := setup(t, hubspottest.Options{})
	b.fake.GenerateContacts(5, hubspottest.GenerateOptions{})
	b.fake.GenerateDeals(5, hubspottest.GenerateOptions{})
	calls, err := b.fake.GenerateEngagements("calls", 150, hubspottest.GenerateOptions{})
	require.NoError(t, err)
	require.NoError(t, b.fake.Archive("calls", calls[7]))

	var listed []string
	after := ""
	for {
		q := url.Values{"limit": {"100"}, "associations": {"deals,contacts"}, "properties": {"hs_timestamp"}}
		if after != "" {
			q.Set("after", after)
		}
		resp, out := b.do(t, "GET", "/crm/v3/objects/calls?"+q.Encode(), nil)
		require.Equal(t, 200, resp.StatusCode)
		for _, r := range out["results"].([]any) {
			rec := r.(map[string]any)
			listed = append(listed, rec["id"].(string))
			o, _ := b.fake.Object("calls", rec["id"].(string))
			if len(o.Associations["deals"]) > 0 {
				assoc := rec["associations"].(map[string]any)["deals"].(map[string]any)["results"].([]any)
				require.Equal(t, o.Associations["deals"][0], assoc[0].(map[string]any)["id"])
				require.Equal(t, "call_to_deal", assoc[0].(map[string]any)["type"])
			}
		}
		next, ok := out["paging"].(map[string]any)
		if !ok {
			break
		}
		after = next["next"].(map[string]any)["after"].(string)
	}
	require.Len(t, listed, 149)
	require.NotContains(t, listed, calls[7])

	_, out := b.do(t, "GET", "/crm/v3/objects/calls?archived=true&limit=100", nil)
	require.Equal(t, []string{calls[7]}, ids(t, out))
	rec := out["results"].([]any)[0].(map[string]any)
	require.Equal(t, true, rec["archived"])
	require.NotEmpty(t, rec["archivedAt"])

	resp, _ := b.do(t, "GET", "/crm/v3/objects/calls?limit=101", nil)
	require.Equal(t, 400, resp.StatusCode)

	// v4 batch read: inputs without associations come back as errors (207).
	var inputs []map[string]string
	for _, id := range calls[:20] {
		inputs = append(inputs, map[string]string{"id": id})
	}
	resp, out = b.do(t, "POST", "/crm/v4/associations/calls/deals/batch/read", map[string]any{"inputs": inputs})
	require.Contains(t, []int{200, 207}, resp.StatusCode)
	results := out["results"].([]any)
	require.NotEmpty(t, results)
	first := results[0].(map[string]any)
	o, _ := b.fake.Object("calls", first["from"].(map[string]any)["id"].(string))
	require.EqualValues(t, mustInt(t, o.Associations["deals"][0]), first["to"].([]any)[0].(map[string]any)["toObjectId"])
}

func TestAssociationsAreTwoWay(t *testing.T) {
	t.Parallel()
	b := setup(t, hubspottest.Options{})
	contact, err := b.fake.Create("contacts", map[string]string{"email": "eve@acme.test"}, nil)
	require.NoError(t, err)
	before, _ := b.fake.Object("contacts", contact)
	b.fake.Advance(time.Minute)
	created, err := b.fake.Create("deals", map[string]string{"dealname": "A"}, map[string][]string{"contacts": {contact}})
	require.NoError(t, err)
	linked, err := b.fake.Create("deals", map[string]string{"dealname": "B"}, nil)
	require.NoError(t, err)
	require.NoError(t, b.fake.Associate("contacts", contact, "deals", linked))

	_, err = b.fake.Create("deals", nil, map[string][]string{"contacts": {"999999"}})
	require.ErrorContains(t, err, "no contacts 999999", "an association needs an existing record")

	after, _ := b.fake.Object("contacts", contact)
	require.Equal(t, []string{created, linked}, after.Associations["deals"])
	require.Equal(t, before.Modified, after.Modified, "associating does not bump the last-modified stamp")
	for _, id := range []string{created, linked} {
		d, _ := b.fake.Object("deals", id)
		require.Equal(t, []string{contact}, d.Associations["contacts"])
	}

	// Both directions through v4 batch reads and inline on lists.
	resp, out := b.do(t, "POST", "/crm/v4/associations/contacts/deals/batch/read", map[string]any{"inputs": []map[string]string{{"id": contact}}})
	require.Equal(t, 200, resp.StatusCode)
	var to []int64
	for _, x := range out["results"].([]any)[0].(map[string]any)["to"].([]any) {
		to = append(to, int64(x.(map[string]any)["toObjectId"].(float64)))
	}
	require.Equal(t, []int64{mustInt(t, created), mustInt(t, linked)}, to)
	resp, out = b.do(t, "POST", "/crm/v4/associations/deals/contacts/batch/read", map[string]any{"inputs": []map[string]string{{"id": linked}}})
	require.Equal(t, 200, resp.StatusCode)
	require.EqualValues(t, mustInt(t, contact), out["results"].([]any)[0].(map[string]any)["to"].([]any)[0].(map[string]any)["toObjectId"])
	_, out = b.do(t, "GET", "/crm/v3/objects/contacts?associations=deals&limit=10", nil)
	inline := out["results"].([]any)[0].(map[string]any)["associations"].(map[string]any)["deals"].(map[string]any)["results"].([]any)
	require.Len(t, inline, 2)
	require.Equal(t, map[string]any{"id": created, "type": "contact_to_deal"}, inline[0])
}

func TestLimits(t *testing.T) {
	t.Parallel()

	t.Run("SearchesOverFourPerSecondAreRefusedAndCounted", func(t *testing.T) {
		t.Parallel()
		b := setup(t, hubspottest.Options{BurstLimit: 100, SearchPerSecond: 4})
		statuses := make(map[int]int)
		var body map[string]any
		for range 6 {
			resp, out := b.do(t, "POST", "/crm/v3/objects/deals/search", search(nil, nil, 10, ""))
			statuses[resp.StatusCode]++
			if resp.StatusCode == 429 {
				body = out
				require.Empty(t, resp.Header.Get("X-HubSpot-RateLimit-Max"), "search answers carry no rate-limit headers")
			}
		}
		require.Equal(t, map[int]int{200: 4, 429: 2}, statuses)
		require.Equal(t, "RATE_LIMIT", body["errorType"])
		require.Equal(t, "SECONDLY", body["policyName"])
		require.Equal(t, 2, b.fake.Stats().SearchViolations)
	})

	t.Run("TheBurstWindowIsEnforcedWithHeaders", func(t *testing.T) {
		t.Parallel()
		b := setup(t, hubspottest.Options{BurstLimit: 5, BurstInterval: 10 * time.Second, SearchPerSecond: 100})
		for i := range 5 {
			resp, _ := b.do(t, "GET", "/crm/v3/owners", nil)
			require.Equal(t, 200, resp.StatusCode)
			require.Equal(t, "5", resp.Header.Get("X-HubSpot-RateLimit-Max"))
			require.Equal(t, strconv.Itoa(4-i), resp.Header.Get("X-HubSpot-RateLimit-Remaining"))
			require.Equal(t, "10000", resp.Header.Get("X-HubSpot-RateLimit-Interval-Milliseconds"))
			require.Equal(t, "250000", resp.Header.Get("X-HubSpot-RateLimit-Daily"))
		}
		resp, _ := b.do(t, "GET", "/crm/v3/owners", nil)
		require.Equal(t, 429, resp.StatusCode)
		require.Equal(t, 1, b.fake.Stats().BurstViolations)
	})

	t.Run("InjectedFaults", func(t *testing.T) {
		t.Parallel()
		b := setup(t, hubspottest.Options{})
		b.fake.SetFaults(hubspottest.Faults{RateLimited: 1, RetryAfterShare: 1, RetryAfter: 2 * time.Second})
		resp, out := b.do(t, "GET", "/crm/v3/owners", nil)
		require.Equal(t, 429, resp.StatusCode)
		require.Equal(t, "2", resp.Header.Get("Retry-After"))
		require.Equal(t, "SECONDLY", out["policyName"])
		b.fake.SetFaults(hubspottest.Faults{ServerErrors: 1})
		resp, _ = b.do(t, "GET", "/crm/v3/owners", nil)
		require.GreaterOrEqual(t, resp.StatusCode, 500)
		b.fake.SetFaults(hubspottest.Faults{})
		b.fake.FailNext(1, hubspottest.Failure{Status: 429, Daily: true})
		_, out = b.do(t, "GET", "/crm/v3/owners", nil)
		require.Equal(t, "DAILY", out["policyName"])
		st := b.fake.Stats()
		require.Equal(t, 2, st.InjectedRateLimits)
		require.Equal(t, 1, st.InjectedServerErrors)
	})
}

func TestAuth(t *testing.T) {
	t.Parallel()
	clock := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	b := setup(t, hubspottest.Options{Now: func() time.Time { return clock }, RotateRefreshTokens: true})

	b.token = ""
	resp, out := b.do(t, "GET", "/crm/v3/owners", nil)
	require.Equal(t, 401, resp.StatusCode)
	require.Equal(t, "INVALID_AUTHENTICATION", out["category"])
	require.Equal(t, clock.Format(http.TimeFormat), resp.Header.Get("Date"))

	g := b.fake.AddOAuthGrant()
	b.token = g.AccessToken
	resp, _ = b.do(t, "GET", "/crm/v3/owners", nil)
	require.Equal(t, 200, resp.StatusCode)
	require.Empty(t, resp.Header.Get("X-HubSpot-RateLimit-Daily"), "no daily headers for OAuth requests")

	b.fake.Advance(31 * time.Minute)
	resp, out = b.do(t, "GET", "/crm/v3/owners", nil)
	require.Equal(t, 401, resp.StatusCode)
	require.Equal(t, "EXPIRED_AUTHENTICATION", out["category"])

	refresh := func(clientSecret, refreshToken string) (int, map[string]any) {
		form := url.Values{"grant_type": {"refresh_token"}, "client_id": {g.ClientID}, "client_secret": {clientSecret}, "refresh_token": {refreshToken}}
		resp, err := http.PostForm(b.fake.URL+"/oauth/v1/token", form)
		require.NoError(t, err)
		defer resp.Body.Close()
		var out map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		return resp.StatusCode, out
	}
	status, tok := refresh(g.ClientSecret, g.RefreshToken)
	require.Equal(t, 200, status)
	require.EqualValues(t, 1800, tok["expires_in"])
	require.NotEqual(t, g.RefreshToken, tok["refresh_token"], "rotated")
	b.token = tok["access_token"].(string)
	resp, _ = b.do(t, "GET", "/crm/v3/owners", nil)
	require.Equal(t, 200, resp.StatusCode)

	status, out = refresh("wrong", tok["refresh_token"].(string))
	require.Equal(t, 400, status)
	require.Equal(t, "invalid_client", out["error"])

	// Reusing the rotated-away token revokes the grant.
	status, out = refresh(g.ClientSecret, g.RefreshToken)
	require.Equal(t, 400, status)
	require.Equal(t, "invalid_grant", out["error"])
	require.Equal(t, "BAD_REFRESH_TOKEN", out["status"])
	status, _ = refresh(g.ClientSecret, tok["refresh_token"].(string))
	require.Equal(t, 400, status)
	resp, _ = b.do(t, "GET", "/crm/v3/owners", nil)
	require.Equal(t, 401, resp.StatusCode)
	require.Equal(t, 1, b.fake.Stats().TokenRefreshes)
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	b := setup(t, hubspottest.Options{})
	ids := b.fake.GenerateDeals(500, hubspottest.GenerateOptions{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 20 {
				id := ids[(w*20+i)%len(ids)]
				if err := b.fake.Update("deals", id, map[string]string{"amount": strconv.Itoa(i)}); err != nil {
					t.Error(err)
				}
			}
		})
		wg.Go(func() {
			body, _ := json.Marshal(search([]map[string]any{f("hs_lastmodifieddate", "GTE", 0)}, nil, 200, ""))
			for range 5 {
				req, _ := http.NewRequest(http.MethodPost, b.fake.URL+"/crm/v3/objects/deals/search", strings.NewReader(string(body)))
				req.Header.Set("Authorization", "Bearer "+b.token)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				var out struct{ Total int }
				err = json.NewDecoder(resp.Body).Decode(&out)
				_ = resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || out.Total != 500 {
					t.Errorf("search answered %d with total %d (%v)", resp.StatusCode, out.Total, err)
				}
			}
		})
	}
	wg.Wait()
}
