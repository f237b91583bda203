package notify

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/slack-go/slack"
)

// Block Kit limits (https://docs.slack.dev/reference/block-kit). Slack rejects a message
// that exceeds one with invalid_blocks, so rendering stays inside them.
const (
	maxBlocks           = 50
	maxHeaderText       = 150
	maxSectionText      = 3000
	maxFieldsPerSection = 10
	maxFieldText        = 2000
	maxElementsPerBlock = 25
	maxButtonText       = 75
	maxButtonValue      = 2000
	maxActionValue      = maxButtonValue - 20 // room for the notification id (buttonValue)
	maxActionID         = 255
	maxURL              = 3000
	maxContextText      = 3000
	maxFallbackText     = 3000
	maxItemText         = 1000
)

// LinkActionID is the action id of the button that opens Message.Link. Slack reports
// presses of link buttons too; they need no handler.
const LinkActionID = "notify.open_link"

// Rendered is a Message as Slack takes it.
type Rendered struct {
	// Text is the plain-text fallback Slack shows in notifications and to clients that
	// cannot draw blocks.
	Text   string
	Blocks []slack.Block
}

// Render turns m into Block Kit: a header, the summary, the facts as section fields, the
// digest items grouped (truncated with "…and N more" past the 50-block limit), the CRM
// link and the action buttons, and the context line. Each button's value carries
// notificationID, so a press maps back to the notification (see Press). An error means
// the message itself is unusable (no title, a malformed button) and retrying cannot help.
func Render(notificationID int64, m Message) (Rendered, error) {
	if err := validate(m); err != nil {
		return Rendered{}, err
	}
	var head, tail []slack.Block
	head = append(head, slack.NewHeaderBlock(plain(truncate(m.Title, maxHeaderText))))
	if m.Summary != "" {
		head = append(head, slack.NewSectionBlock(markdown(truncate(escape(m.Summary), maxSectionText)), nil, nil))
	}
	for facts := range slices.Chunk(m.Facts, maxFieldsPerSection) {
		fields := make([]*slack.TextBlockObject, len(facts))
		for i, f := range facts {
			fields[i] = markdown(truncate("*"+escape(f.Label)+"*\n"+escape(f.Value), maxFieldText))
		}
		head = append(head, slack.NewSectionBlock(nil, fields, nil))
	}

	var buttons []slack.BlockElement
	if m.Link != nil {
		buttons = append(buttons, slack.NewButtonBlockElement(LinkActionID, buttonValue(notificationID, ""),
			plain(truncate(linkText(m.Link), maxButtonText))).WithURL(m.Link.URL))
	}
	for _, a := range m.Actions {
		b := slack.NewButtonBlockElement(a.ID, buttonValue(notificationID, a.Value), plain(truncate(a.Label, maxButtonText)))
		if a.Style != "" {
			b = b.WithStyle(slack.Style(a.Style))
		}
		buttons = append(buttons, b)
	}
	i := 0
	for elements := range slices.Chunk(buttons, maxElementsPerBlock) {
		tail = append(tail, slack.NewActionBlock(fmt.Sprintf("notification_%d_actions_%d", notificationID, i), elements...))
		i++
	}
	if m.Context != "" {
		tail = append(tail, slack.NewContextBlock("", markdown(truncate(escape(m.Context), maxContextText))))
	}

	budget := maxBlocks - len(head) - len(tail)
	if budget < 0 || budget == 0 && len(m.Items) > 0 {
		return Rendered{}, fmt.Errorf("rendering message %q: %d facts and %d buttons leave no room within Slack's %d blocks",
			m.Title, len(m.Facts), len(m.Actions), maxBlocks)
	}
	blocks := head
	sections := itemSections(m.Items)
	shown := 0
	for j, s := range sections {
		if len(sections) > budget && j == budget-1 {
			more := fmt.Sprintf("_…and %d more_", len(m.Items)-shown)
			blocks = append(blocks, slack.NewSectionBlock(markdown(more), nil, nil))
			break
		}
		blocks = append(blocks, slack.NewSectionBlock(markdown(s.text), nil, nil))
		shown += s.items
	}
	blocks = append(blocks, tail...)
	return Rendered{Text: fallbackText(m), Blocks: blocks}, nil
}

func validate(m Message) error {
	if strings.TrimSpace(m.Title) == "" {
		return errors.New("message has no title")
	}
	if m.Link != nil && (m.Link.URL == "" || len(m.Link.URL) > maxURL) {
		return fmt.Errorf("message %q: link URL must be 1 to %d characters", m.Title, maxURL)
	}
	seen := map[string]bool{LinkActionID: true}
	for _, a := range m.Actions {
		switch {
		case a.ID == "" || len(a.ID) > maxActionID:
			return fmt.Errorf("message %q: button %q: action id must be 1 to %d characters", m.Title, a.Label, maxActionID)
		case seen[a.ID]:
			return fmt.Errorf("message %q: action id %q is used twice (or is reserved)", m.Title, a.ID)
		case strings.TrimSpace(a.Label) == "":
			return fmt.Errorf("message %q: button %q has no label", m.Title, a.ID)
		case len(a.Value) > maxActionValue:
			return fmt.Errorf("message %q: button %q: value is longer than %d characters", m.Title, a.ID, maxActionValue)
		case a.Style != "" && a.Style != string(slack.StylePrimary) && a.Style != string(slack.StyleDanger):
			return fmt.Errorf("message %q: button %q: style %q is not primary or danger", m.Title, a.ID, a.Style)
		}
		seen[a.ID] = true
	}
	return nil
}

// itemSection is one section of digest lines and how many items it holds.
type itemSection struct {
	text  string
	items int
}

// itemSections lays out digest items grouped by Item.Group in order of first appearance,
// each group headed by its name and count, packed into sections of at most 3000 characters.
func itemSections(items []Item) []itemSection {
	counts := map[string]int{}
	for _, it := range items {
		counts[it.Group]++
	}
	var out []itemSection
	var cur itemSection
	grouped := groupedItems(items)
	for i, it := range grouped {
		line := "• " + escape(truncate(it.Text, maxItemText))
		if it.URL != "" {
			line = "• " + link(it.URL, truncate(it.Text, maxItemText))
		}
		newGroup := i == 0 || it.Group != grouped[i-1].Group
		switch {
		case newGroup && it.Group != "":
			line = fmt.Sprintf("*%s* (%d)\n%s", escape(it.Group), counts[it.Group], line)
			fallthrough
		case newGroup, len([]rune(cur.text))+1+len([]rune(line)) > maxSectionText:
			if cur.items > 0 {
				out = append(out, cur)
			}
			cur = itemSection{text: line, items: 1}
		default:
			cur.text += "\n" + line
			cur.items++
		}
	}
	if cur.items > 0 {
		out = append(out, cur)
	}
	return out
}

// fallbackText is the notification text: title, summary and facts.
func fallbackText(m Message) string {
	var b strings.Builder
	b.WriteString(escape(m.Title))
	if m.Summary != "" {
		b.WriteString("\n" + escape(m.Summary))
	}
	for _, f := range m.Facts {
		b.WriteString("\n" + escape(f.Label) + ": " + escape(f.Value))
	}
	if len(m.Items) > 0 {
		fmt.Fprintf(&b, "\n%d items", len(m.Items))
	}
	return truncate(b.String(), maxFallbackText)
}

// PlainText is the whole message as readable plain text, buttons listed: what the console
// shows when no Slack token is configured.
func PlainText(m Message) string {
	var b strings.Builder
	b.WriteString(m.Title + "\n")
	if m.Summary != "" {
		b.WriteString(m.Summary + "\n")
	}
	for _, f := range m.Facts {
		// A value of several lines is indented under its label.
		fmt.Fprintf(&b, "  %s: %s\n", f.Label, strings.ReplaceAll(f.Value, "\n", "\n    "))
	}
	if m.Link != nil {
		fmt.Fprintf(&b, "%s: %s\n", linkText(m.Link), m.Link.URL)
	}
	var group *string
	for _, it := range groupedItems(m.Items) {
		if group == nil || *group != it.Group {
			group = &it.Group
			if it.Group != "" {
				b.WriteString(it.Group + "\n")
			}
		}
		if it.URL != "" {
			fmt.Fprintf(&b, "  • %s — %s\n", it.Text, it.URL)
		} else {
			fmt.Fprintf(&b, "  • %s\n", it.Text)
		}
	}
	if len(m.Actions) > 0 {
		labels := make([]string, len(m.Actions))
		for i, a := range m.Actions {
			labels[i] = fmt.Sprintf("[%s] (%s)", a.Label, a.ID)
		}
		b.WriteString("Buttons: " + strings.Join(labels, "  ") + "\n")
	}
	if m.Context != "" {
		b.WriteString(m.Context + "\n")
	}
	return b.String()
}

// groupedItems orders items by group, groups in order of first appearance.
func groupedItems(items []Item) []Item {
	var order []string
	groups := map[string][]Item{}
	for _, it := range items {
		if _, ok := groups[it.Group]; !ok {
			order = append(order, it.Group)
		}
		groups[it.Group] = append(groups[it.Group], it)
	}
	out := make([]Item, 0, len(items))
	for _, g := range order {
		out = append(out, groups[g]...)
	}
	return out
}

// buttonValue is what a button sends back: the notification id, a colon, the action's value.
func buttonValue(notificationID int64, value string) string {
	return strconv.FormatInt(notificationID, 10) + ":" + value
}

// parseButtonValue splits what buttonValue made.
func parseButtonValue(s string) (notificationID int64, value string, err error) {
	id, value, ok := strings.Cut(s, ":")
	if !ok {
		return 0, "", fmt.Errorf("button value %q has no notification id", s)
	}
	notificationID, err = strconv.ParseInt(id, 10, 64)
	if err != nil || notificationID <= 0 {
		return 0, "", fmt.Errorf("button value %q has no notification id", s)
	}
	return notificationID, value, nil
}

func linkText(l *Link) string {
	if l.Text != "" {
		return l.Text
	}
	return "Open in CRM"
}

func plain(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.PlainTextType, s, true, false)
}

func markdown(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.MarkdownType, s, false, false)
}

// escape makes s literal in Slack mrkdwn: &, < and > are control characters there.
func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// link is a mrkdwn link; the text is escaped and the URL may not close the link early.
func link(url, text string) string {
	url = strings.NewReplacer("|", "%7C", ">", "%3E", "<", "%3C").Replace(url)
	return "<" + url + "|" + strings.ReplaceAll(escape(text), "|", "¦") + ">"
}

// truncate cuts s to n characters, ending with "…" when it cut.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
