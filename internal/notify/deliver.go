package notify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/slack-go/slack"
)

// claimLease is how long a claim keeps other attempts away from a notification: longer
// than any Slack call (slackTimeout), so a live claim always means a call in flight and a
// stale one an attempt that died mid-call.
const claimLease = 4 * slackTimeout

// Deliverer sends the rows of the notifications outbox to Slack, or prints them to the
// console when no bot token is configured.
//
// Delivery is idempotent. A notification that is no longer pending is left alone, so a
// retried job never posts again after a success. Before each Slack call the row is claimed
// in a committed transaction (claimed_at); the call's outcome is recorded in a second one.
// Failures that certainly posted nothing (rate limits, 5xx, refused connections, error
// answers) clear the claim and the retry posts normally. When the outcome is unknown —
// the process died mid-call, or the connection broke after the request was sent — the
// row is marked outcome_unknown. A retry then updates the earlier message about the same
// alert or reminder in that conversation when there is one (chat.update is idempotent);
// otherwise it posts again and logs a warning. Slack has no idempotency key and the app's
// scopes cannot read conversation history, so in that narrow case pipewatch prefers a
// rare duplicate to a lost message.
type Deliverer struct {
	db         DB
	slack      *slack.Client
	console    io.Writer
	consoleMu  sync.Mutex
	logger     *slog.Logger
	now        func() time.Time
	opsChannel string
}

// DelivererConfig configures a Deliverer.
type DelivererConfig struct {
	DB DB
	// Slack is the Web API client (NewSlackClient); nil prints to Console instead.
	Slack *slack.Client
	// Console receives the messages when Slack is nil (os.Stdout in the binary).
	Console io.Writer
	Logger  *slog.Logger
	// NowFunc is the clock (nil = time.Now).
	NowFunc func() time.Time
	// OpsChannel is the Slack channel told about deliveries that failed for good ("" =
	// only the ERROR log line).
	OpsChannel string
}

// NewDeliverer returns a Deliverer.
func NewDeliverer(cfg DelivererConfig) *Deliverer {
	d := &Deliverer{db: cfg.DB, slack: cfg.Slack, console: cfg.Console, logger: cfg.Logger, now: cfg.NowFunc, opsChannel: cfg.OpsChannel}
	if d.now == nil {
		d.now = time.Now
	}
	if d.console == nil {
		d.console = io.Discard
	}
	return d
}

// WaitError says delivery has to wait until Until — the recipient's quiet hours, a Slack
// rate limit, or another attempt still calling Slack. Nothing was sent.
type WaitError struct {
	Until  time.Time
	Reason string
}

func (e *WaitError) Error() string {
	return fmt.Sprintf("delivery waits until %s: %s", e.Until.UTC().Format(time.RFC3339), e.Reason)
}

// FailedError says the notification was marked failed: retrying cannot help.
type FailedError struct {
	NotificationID int64
	// Code is Slack's error code, or invalid_message for a message that cannot be rendered.
	Code string
	// Reason says what went wrong and what to do, for people.
	Reason string
}

func (e *FailedError) Error() string {
	return fmt.Sprintf("notification %d failed: %s", e.NotificationID, e.Reason)
}

// Deliver delivers notification id. It returns nil when the notification was sent now or
// earlier (or is failed, cancelled or gone), *WaitError when it must wait, *FailedError
// when it failed for good, and any other error when a retry may succeed. enq schedules
// the message for revenue ops that a permanent failure produces.
func (d *Deliverer) Deliver(ctx context.Context, id int64, enq Enqueuer) error {
	n, err := loadNotification(ctx, d.db, id)
	if errors.Is(err, errNotificationGone) {
		d.logger.InfoContext(ctx, "notify: notification no longer exists", "notification_id", id)
		return nil
	}
	if err != nil {
		return err
	}
	if n.State != statePending {
		return nil
	}
	log := d.logger.With("notification_id", n.ID, "kind", n.Kind, "channel", n.Channel, "recipient", n.Recipient)
	now := d.now()
	if n.NotBefore.After(now) {
		return &WaitError{Until: n.NotBefore, Reason: "not before the time the producer asked for"}
	}
	rendered, err := Render(n.ID, n.Message)
	if err != nil {
		return d.fail(ctx, n, "", &slackFailure{method: "rendering", code: "invalid_message", kind: permanent, err: err}, enq)
	}

	// A message that already exists is updated: an edit does not notify anyone, so it is
	// not held for quiet hours.
	target := &slackMessage{ChannelID: n.SlackChannelID, TS: n.SlackTS}
	if n.SlackTS == "" {
		if target, err = keptMessage(ctx, d.db, n); err != nil {
			return err
		}
	}
	var dest destination
	if target == nil || d.slack == nil {
		if dest, err = d.resolve(ctx, n); err != nil {
			return d.settle(ctx, n, dest, err, enq)
		}
		if at := dest.calendar.NextWindow(now); at.After(now) {
			if err := d.postpone(ctx, n.ID, at); err != nil {
				return err
			}
			log.InfoContext(ctx, "notify: outside the recipient's hours, queued", "until", at)
			return &WaitError{Until: at, Reason: "outside the recipient's delivery window"}
		}
	}

	unknown, err := d.claim(ctx, n.ID)
	if errors.Is(err, errAlreadyDone) {
		return nil
	}
	if err != nil {
		return err
	}
	if d.slack == nil {
		d.print(n, target != nil)
		return d.recordSent(ctx, n.ID, "", "", "console")
	}
	if target != nil {
		err := d.update(ctx, *target, rendered)
		if err == nil {
			return d.recordSent(ctx, n.ID, target.ChannelID, target.TS, "slack")
		}
		f := classify("chat.update", err)
		if !messageGone(f.code) {
			return d.settle(ctx, n, dest, f, enq)
		}
		log.WarnContext(ctx, "notify: earlier message cannot be updated, posting a new one", "slack_error", f.code)
		dest.conversation = target.ChannelID
	}
	if unknown {
		log.WarnContext(ctx, "notify: an earlier attempt may have posted this message; posting it again")
	}
	channelID, ts, err := d.slack.PostMessageContext(ctx, dest.conversation,
		slack.MsgOptionText(rendered.Text, false), slack.MsgOptionBlocks(rendered.Blocks...),
		slack.MsgOptionDisableLinkUnfurl(), slack.MsgOptionDisableMediaUnfurl())
	if err != nil {
		return d.settle(ctx, n, dest, classify("chat.postMessage", err), enq)
	}
	return d.recordSent(ctx, n.ID, channelID, ts, "slack")
}

func (d *Deliverer) update(ctx context.Context, m slackMessage, r Rendered) error {
	_, _, _, err := d.slack.UpdateMessageContext(ctx, m.ChannelID, m.TS,
		slack.MsgOptionText(r.Text, false), slack.MsgOptionBlocks(r.Blocks...))
	return err
}

// messageGone reports a chat.update error that means the message can no longer be edited.
func messageGone(code string) bool {
	return code == "message_not_found" || code == "cant_update_message" || code == "edit_window_closed"
}

// claim marks the notification as being sent (committed before the Slack call). It
// reports whether an earlier attempt's outcome is unknown.
func (d *Deliverer) claim(ctx context.Context, id int64) (unknown bool, err error) {
	now := d.now()
	err = pgx.BeginFunc(ctx, d.db, func(tx pgx.Tx) error {
		var state string
		var claimedAt *time.Time
		if err := tx.QueryRow(ctx, `SELECT state, claimed_at, outcome_unknown FROM notifications WHERE id = $1 FOR UPDATE`, id).
			Scan(&state, &claimedAt, &unknown); err != nil {
			return fmt.Errorf("locking notification %d: %w", id, err)
		}
		if state != statePending {
			return errAlreadyDone
		}
		if claimedAt != nil && now.Sub(*claimedAt) < claimLease {
			return &WaitError{Until: claimedAt.Add(claimLease), Reason: "another attempt is sending this notification"}
		}
		unknown = unknown || claimedAt != nil
		_, err := tx.Exec(ctx, `
			UPDATE notifications SET claimed_at = $2, outcome_unknown = $3, attempts = attempts + 1, updated_at = $2
			WHERE id = $1`, id, now, unknown)
		if err != nil {
			return fmt.Errorf("claiming notification %d: %w", id, err)
		}
		return nil
	})
	return unknown, err
}

// errAlreadyDone means another attempt finished the notification in the meantime.
var errAlreadyDone = errors.New("notification already delivered")

// postpone records the start of the recipient's next window as the notification's
// earliest delivery time, so people can see why it waits.
func (d *Deliverer) postpone(ctx context.Context, id int64, at time.Time) error {
	if _, err := d.db.Exec(ctx, `UPDATE notifications SET not_before = $2, updated_at = $3 WHERE id = $1 AND state = 'pending'`,
		id, at, d.now()); err != nil {
		return fmt.Errorf("postponing notification %d: %w", id, err)
	}
	return nil
}

func (d *Deliverer) recordSent(ctx context.Context, id int64, channelID, ts, via string) error {
	now := d.now()
	if _, err := d.db.Exec(ctx, `
		UPDATE notifications SET state = 'sent', sent_at = $2, slack_channel_id = NULLIF($3, ''), slack_ts = NULLIF($4, ''),
		       delivered_via = $5, claimed_at = NULL, outcome_unknown = false, error = NULL, updated_at = $2
		WHERE id = $1`, id, now, channelID, ts, via); err != nil {
		return fmt.Errorf("recording notification %d as sent: %w", id, err)
	}
	return nil
}

// settle records a failed attempt and says what the job should do: wait, fail for good,
// or retry. Errors that are not Slack's (the database) are retried as they are.
func (d *Deliverer) settle(ctx context.Context, n notification, dest destination, err error, enq Enqueuer) error {
	var f *slackFailure
	if !errors.As(err, &f) {
		return err
	}
	if f.kind == permanent {
		return d.fail(ctx, n, dest.dmUser, f, enq)
	}
	if _, dbErr := d.db.Exec(ctx, `
		UPDATE notifications SET claimed_at = NULL, outcome_unknown = outcome_unknown OR $2, error = $3, updated_at = $4
		WHERE id = $1 AND state = 'pending'`, n.ID, f.kind == ambiguous, f.Error(), d.now()); dbErr != nil {
		return fmt.Errorf("recording the failed attempt of notification %d: %w (after %w)", n.ID, dbErr, err)
	}
	if f.kind == rateLimited {
		return &WaitError{Until: d.now().Add(f.retryAfter), Reason: fmt.Sprintf("Slack rate limit on %s", f.method)}
	}
	return err
}

// fail marks the notification failed with a reason people can act on, tells revenue ops
// (an ops message to the ops channel, once a day per cause, plus an ERROR log line) and
// returns *FailedError.
func (d *Deliverer) fail(ctx context.Context, n notification, dmUser string, f *slackFailure, enq Enqueuer) error {
	recipient := n.Recipient
	if n.Channel == ChannelDM {
		recipient = "the DM to " + n.Recipient
	}
	reason := f.reason(n.Recipient)
	if f.code == "invalid_message" {
		reason = fmt.Sprintf("the message to %s cannot be rendered: %v (a bug in what produced it)", n.Recipient, f.err)
	}
	failed := &FailedError{NotificationID: n.ID, Code: f.code, Reason: reason}
	err := pgx.BeginFunc(ctx, d.db, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			UPDATE notifications SET state = 'failed', error = $2, claimed_at = NULL, updated_at = $3
			WHERE id = $1 AND state = 'pending'`, n.ID, reason, d.now())
		if err != nil {
			return fmt.Errorf("marking notification %d failed: %w", n.ID, err)
		}
		if tag.RowsAffected() == 0 {
			return errAlreadyDone
		}
		if dmUser != "" && f.method == "chat.postMessage" {
			if err := d.forgetDMChannel(ctx, tx, dmUser); err != nil {
				return err
			}
		}
		if d.opsChannel == "" || n.Kind == KindOps {
			return nil
		}
		_, err = insertNotification(ctx, tx, enq, d.opsMessage(n, recipient, f, reason))
		return err
	})
	if errors.Is(err, errAlreadyDone) {
		return nil
	}
	if err != nil {
		return err
	}
	d.logger.ErrorContext(ctx, "notify: delivery failed for good", "notification_id", n.ID, "kind", n.Kind,
		"channel", n.Channel, "recipient", n.Recipient, "slack_error", f.code, "reason", reason)
	return failed
}

// opsMessage tells revenue ops about a failed delivery. Its dedupe key makes it once per
// day per cause: per workspace for token problems, else per recipient.
func (d *Deliverer) opsMessage(n notification, recipient string, f *slackFailure, reason string) outgoing {
	now := d.now()
	scope := string(n.Channel) + ":" + strings.ToLower(n.Recipient)
	if workspaceCodes[f.code] {
		scope = "workspace"
	}
	return outgoing{
		Kind:      KindOps,
		Channel:   ChannelSlack,
		Recipient: d.opsChannel,
		NotBefore: now,
		DedupeKey: fmt.Sprintf("ops:slack-delivery:%s:%s:%s", f.code, scope, now.UTC().Format(time.DateOnly)),
		Message: Message{
			Title:   "A Slack message could not be delivered",
			Summary: reason + ".",
			Facts: []Fact{
				{Label: "Message", Value: fmt.Sprintf("%s #%d: %s", n.Kind, n.ID, n.Message.Title)},
				{Label: "Recipient", Value: recipient},
				{Label: "Slack error", Value: f.code},
			},
			Context: "pipewatch marked the message failed and will not retry it. Later messages to the same place fail the same way until the cause is fixed; this notice repeats at most once a day.",
		},
	}
}

// print writes a notification to the console.
func (d *Deliverer) print(n notification, update bool) {
	to := "DM to " + n.Recipient
	if n.Channel == ChannelSlack {
		to = "channel " + n.Recipient
	}
	what := "message"
	if update {
		what = "update"
	}
	d.consoleMu.Lock()
	defer d.consoleMu.Unlock()
	fmt.Fprintf(d.console, "── Slack %s · %s · %s #%d ──\n%s\n", what, to, n.Kind, n.ID, PlainText(n.Message))
}
