package notify_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/notify"
)

// blockJSON is a rendered block as Slack receives it.
type blockJSON struct {
	Type    string `json:"type"`
	BlockID string `json:"block_id"`
	Text    *struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"text"`
	Fields []struct {
		Text string `json:"text"`
	} `json:"fields"`
	Elements []struct {
		Type     string          `json:"type"`
		ActionID string          `json:"action_id"`
		Value    string          `json:"value"`
		URL      string          `json:"url"`
		Style    string          `json:"style"`
		Text     json.RawMessage `json:"text"` // a text object on buttons, a string on context elements
	} `json:"elements"`
}

func renderJSON(t *testing.T, id int64, m notify.Message) (notify.Rendered, []blockJSON) {
	t.Helper()
	r, err := notify.Render(id, m)
	require.NoError(t, err)
	raw, err := json.Marshal(r.Blocks)
	require.NoError(t, err)
	var blocks []blockJSON
	require.NoError(t, json.Unmarshal(raw, &blocks))
	return r, blocks
}

func stalledDeal() notify.Message {
	return notify.Message{
		Title:   "Stalled deal: Acme renewal",
		Summary: "No activity for 12 days in Proposal (threshold 5 business days). Log the next step or snooze.",
		Facts: []notify.Fact{
			{Label: "Amount", Value: "$48,000"},
			{Label: "Stage", Value: "Proposal, 19 days"},
		},
		Link: &notify.Link{Text: "Open in HubSpot", URL: "https://app.hubspot.com/contacts/42/record/0-3/901"},
		Actions: []notify.Action{
			{ID: "alert.snooze_3d", Label: "Snooze 3d", Value: "77"},
			{ID: "alert.ack", Label: "Acknowledge", Value: "77", Style: "primary"},
		},
		Context: "rule idle · data synced 10:02 UTC",
	}
}

func TestRender(t *testing.T) {
	t.Parallel()

	t.Run("Alert", func(t *testing.T) {
		t.Parallel()
		r, blocks := renderJSON(t, 42, stalledDeal())

		require.Equal(t, []string{"header", "section", "section", "actions", "context"}, blockTypes(blocks))
		require.Equal(t, "Stalled deal: Acme renewal", blocks[0].Text.Text)
		require.Equal(t, "plain_text", blocks[0].Text.Type)
		require.Contains(t, blocks[1].Text.Text, "No activity for 12 days")
		require.Equal(t, "*Amount*\n$48,000", blocks[2].Fields[0].Text)
		require.Equal(t, "*Stage*\nProposal, 19 days", blocks[2].Fields[1].Text)

		buttons := blocks[3].Elements
		require.Len(t, buttons, 3)
		require.Equal(t, notify.LinkActionID, buttons[0].ActionID)
		require.Equal(t, "https://app.hubspot.com/contacts/42/record/0-3/901", buttons[0].URL)
		require.JSONEq(t, `{"type":"plain_text","text":"Open in HubSpot","emoji":true}`, string(buttons[0].Text))
		require.Equal(t, "alert.snooze_3d", buttons[1].ActionID)
		require.Equal(t, "42:77", buttons[1].Value, "the value carries the notification id")
		require.Equal(t, "primary", buttons[2].Style)
		require.Equal(t, `"rule idle · data synced 10:02 UTC"`, string(blocks[4].Elements[0].Text))
		require.Equal(t, "Stalled deal: Acme renewal\nNo activity for 12 days in Proposal (threshold 5 business days). Log the next step or snooze.\nAmount: $48,000\nStage: Proposal, 19 days", r.Text)
	})

	t.Run("FactsInSectionsOfTen", func(t *testing.T) {
		t.Parallel()
		m := notify.Message{Title: "Coverage"}
		for i := range 13 {
			m.Facts = append(m.Facts, notify.Fact{Label: fmt.Sprintf("Rep %d", i), Value: "1.4×"})
		}
		_, blocks := renderJSON(t, 1, m)
		require.Equal(t, []string{"header", "section", "section"}, blockTypes(blocks))
		require.Len(t, blocks[1].Fields, 10)
		require.Len(t, blocks[2].Fields, 3)
	})

	t.Run("DigestGroupedInOrderOfFirstAppearance", func(t *testing.T) {
		t.Parallel()
		m := notify.Message{Title: "Your team's deals", Items: []notify.Item{
			{Group: "Idle", Text: "Acme — $48,000", URL: "https://crm.example/deal/1"},
			{Group: "Past close date", Text: "Beta — $12,000"},
			{Group: "Idle", Text: "Gamma & Sons <EU>"},
		}}
		r, blocks := renderJSON(t, 5, m)
		require.Equal(t, []string{"header", "section", "section"}, blockTypes(blocks))
		require.Equal(t, "*Idle* (2)\n• <https://crm.example/deal/1|Acme — $48,000>\n• Gamma &amp; Sons &lt;EU&gt;", blocks[1].Text.Text)
		require.Equal(t, "*Past close date* (1)\n• Beta — $12,000", blocks[2].Text.Text)
		require.Equal(t, "Your team's deals\n3 items", r.Text)
	})

	t.Run("LongDigestTruncatedWithAndNMore", func(t *testing.T) {
		t.Parallel()
		m := stalledDeal()
		for i := range 3000 {
			m.Items = append(m.Items, notify.Item{Group: fmt.Sprintf("Rule %d", i%3),
				Text: fmt.Sprintf("Deal number %d with a fairly long name — $%d", i, 1000+i), URL: fmt.Sprintf("https://crm.example/deal/%d", i)})
		}
		_, blocks := renderJSON(t, 9, m)
		require.Len(t, blocks, 50)
		require.Equal(t, "actions", blocks[48].Type, "buttons survive truncation")
		require.Equal(t, "context", blocks[49].Type)
		shown := 0
		for _, b := range blocks[3:47] {
			require.Equal(t, "section", b.Type)
			require.LessOrEqual(t, utf8.RuneCountInString(b.Text.Text), 3000)
			shown += strings.Count(b.Text.Text, "• ")
		}
		require.Equal(t, fmt.Sprintf("_…and %d more_", 3000-shown), blocks[47].Text.Text)
		require.Greater(t, shown, 500)
	})

	t.Run("LimitsRespected", func(t *testing.T) {
		t.Parallel()
		long := strings.Repeat("x", 5000)
		m := notify.Message{Title: long, Summary: long, Facts: []notify.Fact{{Label: "L", Value: long}},
			Actions: []notify.Action{{ID: "a", Label: long, Value: "v"}}, Context: long}
		_, blocks := renderJSON(t, 1, m)
		require.Equal(t, 150, utf8.RuneCountInString(blocks[0].Text.Text))
		require.True(t, strings.HasSuffix(blocks[0].Text.Text, "…"))
		require.Equal(t, 3000, utf8.RuneCountInString(blocks[1].Text.Text))
		require.Equal(t, 2000, utf8.RuneCountInString(blocks[2].Fields[0].Text))
		var button struct{ Text string }
		require.NoError(t, json.Unmarshal(blocks[3].Elements[0].Text, &button))
		require.Equal(t, 75, utf8.RuneCountInString(button.Text))
	})

	t.Run("EscapesMarkdown", func(t *testing.T) {
		t.Parallel()
		_, blocks := renderJSON(t, 1, notify.Message{Title: "T", Summary: "<!channel> & <https://evil|click>"})
		require.Equal(t, "&lt;!channel&gt; &amp; &lt;https://evil|click&gt;", blocks[1].Text.Text)
	})

	t.Run("UnusableMessages", func(t *testing.T) {
		t.Parallel()
		for name, m := range map[string]notify.Message{
			"no title":         {Summary: "x"},
			"empty action id":  {Title: "T", Actions: []notify.Action{{Label: "Go"}}},
			"duplicate id":     {Title: "T", Actions: []notify.Action{{ID: "a", Label: "A"}, {ID: "a", Label: "B"}}},
			"reserved id":      {Title: "T", Actions: []notify.Action{{ID: notify.LinkActionID, Label: "A"}}},
			"bad style":        {Title: "T", Actions: []notify.Action{{ID: "a", Label: "A", Style: "green"}}},
			"huge value":       {Title: "T", Actions: []notify.Action{{ID: "a", Label: "A", Value: strings.Repeat("v", 1990)}}},
			"link without url": {Title: "T", Link: &notify.Link{Text: "Open"}},
		} {
			_, err := notify.Render(1, m)
			require.Error(t, err, name)
		}
	})
}

func blockTypes(blocks []blockJSON) []string {
	types := make([]string, len(blocks))
	for i, b := range blocks {
		types[i] = b.Type
	}
	return types
}

func ExamplePlainText() {
	m := stalledDeal()
	m.Items = []notify.Item{{Group: "Also idle", Text: "Beta — $12,000", URL: "https://crm.example/deal/2"}}
	m.Facts = append(m.Facts, notify.Fact{Label: "Close-date history", Value: "2026-11-02: 2026-11-30 → 2026-12-15\n2026-11-20: 2026-12-15 → 2027-01-31"})
	fmt.Print(notify.PlainText(m))
	// Output:
	// Stalled deal: Acme renewal
	// No activity for 12 days in Proposal (threshold 5 business days). Log the next step or snooze.
	//   Amount: $48,000
	//   Stage: Proposal, 19 days
	//   Close-date history: 2026-11-02: 2026-11-30 → 2026-12-15
	//     2026-11-20: 2026-12-15 → 2027-01-31
	// Open in HubSpot: https://app.hubspot.com/contacts/42/record/0-3/901
	// Also idle
	//   • Beta — $12,000 — https://crm.example/deal/2
	// Buttons: [Snooze 3d] (alert.snooze_3d)  [Acknowledge] (alert.ack)
	// rule idle · data synced 10:02 UTC
}
