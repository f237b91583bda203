package reminder

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/pipewatch/pipewatch/internal/notify"
	"github.com/pipewatch/pipewatch/pipeline"
)

// Button action ids. The prefix routes presses to HandleAction (notify.Actions); a
// button's value is the reminder id.
const (
	ActionPrefix = "reminder."
	ActionDone   = ActionPrefix + "done"
	ActionSnooze = ActionPrefix + "snooze_1bd"
	ActionStop   = ActionPrefix + "stop"
)

// DealFacts are what a reminder says about its deal.
type DealFacts struct {
	ID        int64
	Name      string
	Amount    decimal.NullDecimal
	Currency  string
	Stage     pipeline.CanonicalStage
	StageName string
	// URL opens the deal in its CRM ("" = unknown); CRM names the vendor.
	URL, CRM string
	// LastTouch is the deal's latest logged email, call or meeting (nil = none), else
	// LastActivityAt is the CRM's last activity date (zero = none).
	LastTouch      *Touch
	LastActivityAt time.Time
}

// message is one reminder message, fresh or after a button press.
type message struct {
	ReminderID  int64
	Step, Steps int
	Deal        DealFacts
	Trigger     pipeline.CanonicalStage
	EnteredAt   time.Time
	Location    *time.Location
	// Next is when the next follow-up is due (zero = none scheduled).
	Next time.Time
	// Status replaces the call to action after a button press ("" = a fresh reminder).
	Status string
	// Buttons are the action ids to show.
	Buttons []string
}

var buttonLabels = map[string]notify.Action{
	ActionDone:   {ID: ActionDone, Label: "Done", Style: "primary"},
	ActionSnooze: {ID: ActionSnooze, Label: "Snooze 1 business day"},
	ActionStop:   {ID: ActionStop, Label: "Stop reminders for this deal", Style: "danger"},
}

// render builds the notify.Message.
func (m message) render() notify.Message {
	name := m.Deal.Name
	if strings.TrimSpace(name) == "" {
		name = fmt.Sprintf("Deal #%d", m.Deal.ID)
	}
	step := fmt.Sprintf("follow-up %d of %d", m.Step, m.Steps)
	out := notify.Message{
		Title: fmt.Sprintf("Follow up: %s", name),
		Facts: []notify.Fact{
			{Label: "Amount", Value: formatAmount(m.Deal.Amount, m.Deal.Currency)},
			{Label: "Stage", Value: m.stage()},
			{Label: "Last touch", Value: m.lastTouch()},
			{Label: "Reminder", Value: strings.ToUpper(step[:1]) + step[1:]},
		},
		Context: fmt.Sprintf("pipewatch follow-up reminders after %s. A reminder is skipped when the deal was touched "+
			"(your outbound email or call, a reply, a meeting) since the previous one.", stageLabel(m.Trigger)),
	}
	if !m.Next.IsZero() {
		out.Facts = append(out.Facts, notify.Fact{Label: "Next follow-up", Value: localTime(m.Next, m.Location)})
	}
	if m.Status != "" {
		out.Summary = m.Status
	} else {
		out.Summary = fmt.Sprintf("%s entered %s on %s and has had no touch since %s. Time for %s.",
			name, stageLabel(m.Trigger), localTime(m.EnteredAt, m.Location), m.since(), step)
	}
	if m.Deal.URL != "" {
		out.Link = &notify.Link{Text: "Open in " + m.Deal.CRM, URL: m.Deal.URL}
	}
	for _, id := range m.Buttons {
		b := buttonLabels[id]
		b.Value = strconv.FormatInt(m.ReminderID, 10)
		out.Actions = append(out.Actions, b)
	}
	return out
}

func (m message) since() string {
	if m.Step <= 1 {
		return "then"
	}
	return fmt.Sprintf("follow-up %d", m.Step-1)
}

func (m message) stage() string {
	d := DealState{Stage: m.Deal.Stage, StageName: m.Deal.StageName}
	if d.Stage == "" {
		return cmp.Or(m.Deal.StageName, "unknown")
	}
	return d.stageLabel()
}

func (m message) lastTouch() string {
	switch {
	case m.Deal.LastTouch != nil:
		return m.Deal.LastTouch.Describe(m.Location)
	case !m.Deal.LastActivityAt.IsZero():
		return "last activity on " + localTime(m.Deal.LastActivityAt, m.Location)
	}
	return "none logged"
}

// formatAmount writes 12500.5 USD as "12,500.50 USD".
func formatAmount(amount decimal.NullDecimal, currency string) string {
	if !amount.Valid {
		return "not set"
	}
	s := amount.Decimal.StringFixed(2)
	s = strings.TrimSuffix(s, ".00")
	sign := ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	whole, frac, hasFrac := strings.Cut(s, ".")
	var b strings.Builder
	for i, r := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	out := sign + b.String()
	if hasFrac {
		out += "." + frac
	}
	if currency != "" {
		out += " " + currency
	}
	return out
}
