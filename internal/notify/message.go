// Package notify turns what pipewatch has to say (alerts, digests, reminders, messages for
// revenue ops) into Slack messages and delivers them — or prints them to the console when
// no Slack token is configured.
//
// Producers describe a message with Message (vendor-neutral: a title, facts, a link,
// digest items, buttons); this package renders it as Block Kit with a plain-text fallback.
package notify

// Kind is what a notification is about.
type Kind string

// Notification kinds.
const (
	KindAlert    Kind = "alert"
	KindDigest   Kind = "digest"
	KindReminder Kind = "reminder"
	KindOps      Kind = "ops"
)

// Channel is how a notification reaches its recipient.
type Channel string

// Channels.
const (
	// ChannelDM is a direct message to a person, addressed by email.
	ChannelDM Channel = "dm"
	// ChannelSlack is a Slack channel, addressed by channel id or name.
	ChannelSlack Channel = "channel"
)

// Message is the content of one notification.
type Message struct {
	// Title is the header line ("Stalled deal: Acme renewal").
	Title string `json:"title"`
	// Summary is one or two sentences saying what happened and what to do.
	Summary string `json:"summary,omitempty"`
	// Facts are the evidence, shown as label/value pairs.
	Facts []Fact `json:"facts,omitempty"`
	// Link opens the record in its CRM.
	Link *Link `json:"link,omitempty"`
	// Items are the lines of a digest, shown grouped by Item.Group in order of appearance.
	Items []Item `json:"items,omitempty"`
	// Actions are the buttons.
	Actions []Action `json:"actions,omitempty"`
	// Context is small print at the bottom (rule name, data freshness).
	Context string `json:"context,omitempty"`
}

// Fact is one label/value pair of evidence.
type Fact struct {
	Label string `json:"label"`
	Value string `json:"value"`
}

// Link is a URL with its text.
type Link struct {
	Text string `json:"text"`
	URL  string `json:"url"`
}

// Item is one line of a digest.
type Item struct {
	Group string `json:"group"`
	Text  string `json:"text"`
	URL   string `json:"url,omitempty"`
}

// Action is a button. ID names the handler (see ActionHandler); Value is its argument
// (for example the alert id).
type Action struct {
	ID    string `json:"id"`
	Label string `json:"label"`
	Value string `json:"value"`
	// Style is "", "primary" or "danger".
	Style string `json:"style,omitempty"`
}
