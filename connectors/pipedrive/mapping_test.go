package pipedrive

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/pipeline"
)

func decodeInto[T any](t *testing.T, payload string) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal([]byte(payload), &v))
	return v
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func TestParseTime(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct {
		in   string
		want time.Time
	}{
		{"2025-01-01T10:20:00Z", utc("2025-01-01T10:20:00Z")},                  // v2
		{"2025-01-01T12:20:00+02:00", utc("2025-01-01T10:20:00Z")},             // v2 with an offset
		{"2020-06-08T12:00:00.418Z", utc("2020-06-08T12:00:00.418Z")},          // v1 leads
		{"2019-11-05 09:04:27", time.Date(2019, 11, 5, 9, 4, 27, 0, time.UTC)}, // v1, UTC
	} {
		got, err := parseTime(tt.in)
		require.NoError(t, err, tt.in)
		require.True(t, tt.want.Equal(got), "%s: got %s", tt.in, got)
		require.Equal(t, time.UTC, got.Location())
	}
	_, err := parseTime("05/11/2019")
	require.EqualError(t, err, `unrecognized timestamp "05/11/2019"`)
}

func TestMapDeal(t *testing.T) {
	t.Parallel()

	const base = `"id": 7, "title": "Acme expansion", "owner_id": 3, "org_id": 11, "person_id": 12,
		"pipeline_id": 1, "stage_id": 4, "value": 12500.45, "currency": "EUR",
		"add_time": "2025-01-01T00:00:00Z", "update_time": "2025-03-01T10:00:00Z"`

	t.Run("Open", func(t *testing.T) {
		t.Parallel()
		raw := `{` + base + `, "status": "open", "stage_change_time": "2025-02-01T09:00:00Z",
			"probability": 35, "expected_close_date": "2025-04-30", "last_activity_id": 100, "next_activity_id": 101}`
		acts := map[int]activityTimes{100: {at: utc("2025-02-20T15:00:00Z")}, 101: {at: utc("2025-03-05T09:30:00Z")}}
		d, err := mapDeal(decodeInto[v2Deal](t, raw), json.RawMessage(raw), acts)
		require.NoError(t, err)
		require.Equal(t, "7", d.ExternalID)
		require.Equal(t, "Acme expansion", d.Name)
		require.Equal(t, "12500.45", d.Amount.Decimal.String())
		require.True(t, d.Amount.Valid)
		require.Equal(t, "EUR", d.Currency)
		require.Equal(t, "1", d.PipelineExternalID)
		require.Equal(t, "4", d.StageExternalID)
		require.Equal(t, "3", d.OwnerExternalID)
		require.Equal(t, "11", d.AccountExternalID)
		require.False(t, d.IsClosed)
		require.False(t, d.IsWon)
		require.True(t, d.ClosedAt.IsZero())
		require.Equal(t, time.Date(2025, 4, 30, 0, 0, 0, 0, time.UTC), d.CloseDate)
		require.Equal(t, "0.35", d.Probability.String())
		require.Equal(t, utc("2025-02-01T09:00:00Z"), d.StageEnteredAt)
		require.Equal(t, utc("2025-02-20T15:00:00Z"), d.LastActivityAt)
		require.Equal(t, utc("2025-03-05T09:30:00Z"), d.NextActivityAt)
		require.Equal(t, utc("2025-01-01T00:00:00Z"), d.CreatedAt)
		require.Equal(t, utc("2025-03-01T10:00:00Z"), d.UpdatedAt)
		require.JSONEq(t, raw, string(d.Raw))
	})

	t.Run("WonKeepsItsLastStage", func(t *testing.T) {
		t.Parallel()
		raw := `{` + base + `, "status": "won", "won_time": "2025-03-01T09:59:00Z", "close_time": "2025-03-01T09:59:00Z",
			"expected_close_date": "2025-05-31", "probability": null}`
		d, err := mapDeal(decodeInto[v2Deal](t, raw), json.RawMessage(raw), nil)
		require.NoError(t, err)
		require.True(t, d.IsClosed)
		require.True(t, d.IsWon)
		require.Equal(t, "4", d.StageExternalID, "Pipedrive has no won stage: the deal stays in its last stage")
		require.Equal(t, utc("2025-03-01T09:59:00Z"), d.ClosedAt)
		require.Equal(t, time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), d.CloseDate, "a closed deal's close date is when it closed")
		require.Nil(t, d.Probability)
		require.Equal(t, utc("2025-01-01T00:00:00Z"), d.StageEnteredAt, "never moved: in its stage since it was added")
	})

	t.Run("LostFallsBackToCloseTime", func(t *testing.T) {
		t.Parallel()
		raw := `{` + base + `, "status": "lost", "close_time": "2025-02-27T08:00:00Z", "lost_reason": "Price"}`
		d, err := mapDeal(decodeInto[v2Deal](t, raw), json.RawMessage(raw), nil)
		require.NoError(t, err)
		require.True(t, d.IsClosed)
		require.False(t, d.IsWon)
		require.Equal(t, utc("2025-02-27T08:00:00Z"), d.ClosedAt)
	})

	t.Run("ExactDecimals", func(t *testing.T) {
		t.Parallel()
		raw := `{"id": 1, "status": "open", "update_time": "2025-03-01T10:00:00Z", "value": 0.1, "currency": "USD"}`
		d, err := mapDeal(decodeInto[v2Deal](t, raw), json.RawMessage(raw), nil)
		require.NoError(t, err)
		require.True(t, d.Amount.Decimal.Equal(decimal.RequireFromString("0.1")))
		require.Equal(t, "0.1", d.Amount.Decimal.String())
	})

	t.Run("Malformed", func(t *testing.T) {
		t.Parallel()
		for _, tt := range []struct {
			name, raw, err string
		}{
			{"NoID", `{"status": "open", "update_time": "2025-03-01T10:00:00Z"}`, "the record has no id"},
			{"NoUpdateTime", `{"id": 1, "status": "open"}`, "update_time is missing"},
			{"UnknownStatus", `{"id": 1, "status": "pending", "update_time": "2025-03-01T10:00:00Z"}`, `status "pending" is not open, won or lost`},
			{"ProbabilityOutOfRange", `{"id": 1, "status": "open", "update_time": "2025-03-01T10:00:00Z", "probability": 140}`, "probability 140 is outside 0–100"},
		} {
			_, err := mapDeal(decodeInto[v2Deal](t, tt.raw), json.RawMessage(tt.raw), nil)
			require.EqualError(t, err, tt.err, tt.name)
		}
		var d v2Deal
		err := json.Unmarshal([]byte(`{"id": 1, "update_time": "yesterday"}`), &d)
		require.ErrorContains(t, err, `unrecognized timestamp "yesterday"`)
	})
}

func TestMapStages(t *testing.T) {
	t.Parallel()

	payload := func(raw string) stagePayload {
		return stagePayload{stage: decodeInto[v2Stage](t, raw), raw: json.RawMessage(raw)}
	}
	stages, deletions, skipped := mapStages([]stagePayload{
		payload(`{"id": 1, "order_nr": 1, "name": "Lead In", "pipeline_id": 1, "deal_probability": 10, "is_deal_rot_enabled": true, "days_to_rotten": 7, "update_time": "2025-01-01T00:00:00Z"}`),
		payload(`{"id": 2, "order_nr": 2, "name": "Contact Made", "pipeline_id": 1, "deal_probability": 100, "is_deal_rot_enabled": false, "days_to_rotten": 14}`),
		payload(`{"id": 3, "order_nr": 3, "name": "Stage C", "pipeline_id": 1, "deal_probability": 100, "is_deal_rot_enabled": true, "days_to_rotten": null}`),
		payload(`{"id": 4, "order_nr": 4, "name": "Proposal Made", "pipeline_id": 1, "deal_probability": 60}`),
		payload(`{"id": 5, "order_nr": 5, "name": "Stage E", "pipeline_id": 1, "deal_probability": 100, "is_deal_rot_enabled": true, "days_to_rotten": 30}`),
		payload(`{"id": 6, "order_nr": 1, "name": "Old", "pipeline_id": 1, "is_deleted": true, "update_time": "2025-02-01T00:00:00Z"}`),
		payload(`{"id": 7, "order_nr": 1, "name": "Orphan"}`),
		payload(`{"id": 8, "order_nr": 1, "name": "Only", "pipeline_id": 2, "deal_probability": 250}`),
	})
	require.Equal(t, []pipeline.Deletion{{Entity: pipeline.EntityStages, ExternalID: "6", DeletedAt: utc("2025-02-01T00:00:00Z")}}, deletions)
	require.Len(t, skipped, 2)
	require.Equal(t, "7", skipped[0].ExternalID)
	require.Equal(t, "pipeline_id is missing", skipped[0].Reason)
	require.Equal(t, "8", skipped[1].ExternalID)
	require.Equal(t, "deal_probability 250 is outside 0–100", skipped[1].Reason)

	require.Len(t, stages, 5)
	byID := map[string]pipeline.Stage{}
	for _, s := range stages {
		byID[s.ExternalID] = s
		require.False(t, s.IsClosed, "Pipedrive stages are never closed: won/lost are deal statuses")
		require.Equal(t, "1", s.PipelineExternalID)
	}
	require.Equal(t, 7, byID["1"].RotDays)
	require.Zero(t, byID["2"].RotDays, "rotting disabled: days_to_rotten does not apply")
	require.Zero(t, byID["3"].RotDays, "rotting enabled without days")
	require.Equal(t, 30, byID["5"].RotDays)
	require.Equal(t, "0.1", byID["1"].Probability.String())
	require.Equal(t, "1", byID["2"].Probability.String())
	require.Equal(t, 4, byID["4"].Position)

	// Names first, then the place among the pipeline's five live stages.
	require.Equal(t, pipeline.StageLeadGeneration, byID["1"].Canonical)
	require.Equal(t, pipeline.StageQualification, byID["2"].Canonical)
	require.Equal(t, pipeline.StageNeedsAssessment, byID["3"].Canonical)
	require.Equal(t, pipeline.StageProposal, byID["4"].Canonical)
	require.Equal(t, pipeline.StageNegotiation, byID["5"].Canonical)
}

func TestMapActivity(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct {
		name string
		raw  string
		kind pipeline.ActivityKind
		at   time.Time
	}{
		{"Call", `{"id": 1, "type": "call", "due_date": "2025-03-01", "due_time": "15:30:00", "done": true, "update_time": "2025-03-01T16:00:00Z"}`,
			pipeline.ActivityCall, utc("2025-03-01T15:30:00Z")},
		{"LunchIsAMeeting", `{"id": 2, "type": "lunch", "due_date": "2025-03-02", "due_time": "12:00", "update_time": "2025-03-01T16:00:00Z"}`,
			pipeline.ActivityMeeting, utc("2025-03-02T12:00:00Z")},
		{"DeadlineAllDay", `{"id": 3, "type": "deadline", "due_date": "2025-03-03", "due_time": "", "update_time": "2025-03-01T16:00:00Z"}`,
			pipeline.ActivityTask, utc("2025-03-03T00:00:00Z")},
		{"CustomTypeIsATask", `{"id": 4, "type": "demo_call_v2", "due_date": "2025-03-04", "update_time": "2025-03-01T16:00:00Z"}`,
			pipeline.ActivityTask, utc("2025-03-04T00:00:00Z")},
		{"NoDueDate", `{"id": 5, "type": "email", "marked_as_done_time": "2025-03-05T08:00:00Z", "add_time": "2025-03-04T08:00:00Z", "update_time": "2025-03-05T08:00:00Z"}`,
			pipeline.ActivityEmail, utc("2025-03-05T08:00:00Z")},
	} {
		a, err := mapActivity(decodeInto[v2Activity](t, tt.raw), json.RawMessage(tt.raw))
		require.NoError(t, err, tt.name)
		require.Equal(t, tt.kind, a.Kind, tt.name)
		require.Equal(t, tt.at, a.OccurredAt, tt.name)
	}

	raw := `{"id": 9, "subject": "Demo", "type": "meeting", "owner_id": 3, "deal_id": 7, "lead_id": "adf21080-0e10-11eb-879b-05d71fb426ec",
		"person_id": 12, "due_date": "2025-03-01", "done": false, "update_time": "2025-03-01T16:00:00Z"}`
	a, err := mapActivity(decodeInto[v2Activity](t, raw), json.RawMessage(raw))
	require.NoError(t, err)
	require.Equal(t, "7", a.DealExternalID)
	require.Equal(t, "12", a.ContactExternalID)
	require.Equal(t, "adf21080-0e10-11eb-879b-05d71fb426ec", a.LeadExternalID)
	require.Equal(t, "3", a.OwnerExternalID)
	require.Equal(t, "Demo", a.Subject)
	require.False(t, a.Done)

	bad := `{"id": 10, "type": "call", "due_date": "2025-03-01", "due_time": "3pm", "update_time": "2025-03-01T16:00:00Z"}`
	_, err = mapActivity(decodeInto[v2Activity](t, bad), json.RawMessage(bad))
	require.EqualError(t, err, `due_time "3pm" is not HH:MM[:SS]`)
}

func TestMapPeople(t *testing.T) {
	t.Parallel()

	t.Run("User", func(t *testing.T) {
		t.Parallel()
		raw := `{"id": 3, "name": "Ana Tamm", "email": "ana@example.com", "active_flag": true, "is_deleted": false,
			"timezone_name": "Europe/Tallinn", "created": "2019-11-05 09:04:27", "modified": "2025-01-02 03:04:05"}`
		o, err := mapUser(decodeInto[v1User](t, raw), json.RawMessage(raw))
		require.NoError(t, err)
		require.Equal(t, "3", o.ExternalID)
		require.Equal(t, "Europe/Tallinn", o.Timezone)
		require.True(t, o.Active)
		require.Equal(t, time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), o.UpdatedAt)

		left := `{"id": 4, "name": "Ben", "email": "ben@example.com", "active_flag": false}`
		o, err = mapUser(decodeInto[v1User](t, left), json.RawMessage(left))
		require.NoError(t, err)
		require.False(t, o.Active, "a rep who left is kept, inactive")
	})

	t.Run("PersonPrefersThePrimaryEmail", func(t *testing.T) {
		t.Parallel()
		raw := `{"id": 12, "first_name": "Mia", "last_name": "Berg", "org_id": 11, "owner_id": 3, "update_time": "2025-03-01T16:00:00Z",
			"emails": [{"value": "mia@home.example", "primary": false}, {"value": "mia@acme.example", "primary": true}]}`
		c, err := mapPerson(decodeInto[v2Person](t, raw), json.RawMessage(raw))
		require.NoError(t, err)
		require.Equal(t, "mia@acme.example", c.Email)
		require.Equal(t, "Mia Berg", c.Name)
		require.Equal(t, "11", c.AccountExternalID)
	})

	t.Run("Lead", func(t *testing.T) {
		t.Parallel()
		raw := `{"id": "adf21080-0e10-11eb-879b-05d71fb426ec", "title": "Acme lead", "owner_id": 3, "source_name": "Web forms",
			"is_archived": true, "value": {"amount": 5000, "currency": "EUR"},
			"add_time": "2020-10-14T09:16:27.000Z", "update_time": "2020-10-15T11:00:00.250Z"}`
		l, err := mapLead(decodeInto[v1Lead](t, raw), json.RawMessage(raw))
		require.NoError(t, err)
		require.Equal(t, pipeline.LeadDisqualified, l.Status)
		require.Equal(t, "Web forms", l.Source)
		require.Equal(t, utc("2020-10-15T11:00:00.250Z"), l.UpdatedAt)
	})
}

func TestDailyBudgetExhausted(t *testing.T) {
	t.Parallel()

	daily, msg := dailyBudgetExhausted([]byte(`{"success":false,"error":"Request over limit","errorCode":429,"error_info":"Please check developers.pipedrive.com"}`))
	require.False(t, daily)
	require.Equal(t, "Request over limit", msg)

	daily, msg = dailyBudgetExhausted([]byte(`{"success":false,"error":"Daily API token budget exceeded","errorCode":429}`))
	require.True(t, daily)
	require.Equal(t, "Daily API token budget exceeded", msg)

	daily, _ = dailyBudgetExhausted([]byte(`<html>Too many</html>`))
	require.False(t, daily)
}
