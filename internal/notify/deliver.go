package notify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
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
	// Console receives the messages when Slack is nil (nil = os.Stdout).
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
		d.console = os.Stdout
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
// when it failed for good, and any other error when a retry may succeed. enq enqueues
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
	a := &attempt{Deliverer: d, n: n, enq: enq,
		log: d.logger.With("notification_id", n.ID, "kind", n.Kind, "channel", n.Channel, "recipient", n.Recipient)}
	return a.run(ctx)
}

// attempt is one try at delivering a pending notification.
type attempt struct {
	*Deliverer
	n    notification
	enq  Enqueuer
	log  *slog.Logger
	dest destination
	// claimedAt is this attempt's claim on the row (zero until claimed).
	claimedAt time.Time
}

func (a *attempt) run(ctx context.Context) error {
	now := a.now()
	if a.n.NotBefore.After(now) {
		return &WaitError{Until: a.n.NotBefore, Reason: "not before the time the producer asked for"}
	}
	rendered, err := Render(a.n.ID, a.n.Message)
	if err != nil {
		return a.fail(ctx, &slackFailure{method: "rendering", code: "invalid_message", kind: permanent, err: err})
	}

	// A message that already exists is updated: an edit notifies nobody, so it is not
	// held for quiet hours.
	target := &slackMessage{ChannelID: a.n.SlackChannelID, TS: a.n.SlackTS}
	if a.n.SlackTS == "" {
		if target, err = keptMessage(ctx, a.db, a.n); err != nil {
			return err
		}
	}
	if target == nil || a.slack == nil {
		if a.dest, err = a.resolve(ctx, a.n); err != nil {
			return a.settle(ctx, err)
		}
		if at := a.dest.calendar.NextWindow(now); at.After(now) {
			if err := a.postpone(ctx, at); err != nil {
				return err
			}
			a.log.InfoContext(ctx, "notify: outside the recipient's hours, queued", "until", at)
			return &WaitError{Until: at, Reason: "outside the recipient's delivery window"}
		}
	}

	unknown, err := a.claim(ctx)
	if errors.Is(err, errAlreadyDone) {
		return nil
	}
	if err != nil {
		return err
	}
	if a.slack == nil {
		a.print(a.n, target != nil)
		return a.recordSent(ctx, "", "", "console")
	}
	if target != nil {
		_, _, _, err := a.slack.UpdateMessageContext(ctx, target.ChannelID, target.TS,
			slack.MsgOptionText(rendered.Text, false), slack.MsgOptionBlocks(rendered.Blocks...))
		if err == nil {
			return a.recordSent(ctx, target.ChannelID, target.TS, "slack")
		}
		f := classify("chat.update", err)
		if !messageGone(f.code) {
			return a.settle(ctx, f)
		}
		a.log.WarnContext(ctx, "notify: earlier message cannot be updated, posting a new one", "slack_error", f.code)
		a.dest.conversation = target.ChannelID
	}
	if unknown {
		a.log.WarnContext(ctx, "notify: an earlier attempt may have posted this message; posting it again")
	}
	channelID, ts, err := a.slack.PostMessageContext(ctx, a.dest.conversation,
		slack.MsgOptionText(rendered.Text, false), slack.MsgOptionBlocks(rendered.Blocks...),
		slack.MsgOptionDisableLinkUnfurl(), slack.MsgOptionDisableMediaUnfurl())
	if err != nil {
		return a.settle(ctx, classify("chat.postMessage", err))
	}
	return a.recordSent(ctx, channelID, ts, "slack")
}

// messageGone reports a chat.update error that means the message can no longer be edited.
func messageGone(code string) bool {
	return code == "message_not_found" || code == "cant_update_message" || code == "edit_window_closed"
}

// claim marks the notification as being sent, committed before the Slack call. It reports
// whether an earlier attempt's outcome is unknown.
func (a *attempt) claim(ctx context.Context) (unknown bool, err error) {
	now := a.now()
	err = pgx.BeginFunc(ctx, a.db, func(tx pgx.Tx) error {
		var state string
		var claimedAt *time.Time
		if err := tx.QueryRow(ctx, `SELECT state, claimed_at, outcome_unknown FROM notifications WHERE id = $1 FOR UPDATE`, a.n.ID).
			Scan(&state, &claimedAt, &unknown); err != nil {
			return fmt.Errorf("locking notification %d: %w", a.n.ID, err)
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
			WHERE id = $1`, a.n.ID, now, unknown)
		if err != nil {
			return fmt.Errorf("claiming notification %d: %w", a.n.ID, err)
		}
		return nil
	})
	if err == nil {
		a.claimedAt = now
	}
	return unknown, err
}

// errAlreadyDone means another attempt finished the notification in the meantime.
var errAlreadyDone = errors.New("notification already delivered")

// postpone records the start of the recipient's next window as the notification's
// earliest delivery time, so people can see why it waits.
func (a *attempt) postpone(ctx context.Context, at time.Time) error {
	if _, err := a.db.Exec(ctx, `UPDATE notifications SET not_before = $2, updated_at = $3 WHERE id = $1 AND state = 'pending'`,
		a.n.ID, at, a.now()); err != nil {
		return fmt.Errorf("postponing notification %d: %w", a.n.ID, err)
	}
	return nil
}

func (a *attempt) recordSent(ctx context.Context, channelID, ts, via string) error {
	now := a.now()
	if _, err := a.db.Exec(ctx, `
		UPDATE notifications SET state = 'sent', sent_at = $2, slack_channel_id = NULLIF($3, ''), slack_ts = NULLIF($4, ''),
		       delivered_via = $5, claimed_at = NULL, outcome_unknown = false, error = NULL, updated_at = $2
		WHERE id = $1`, a.n.ID, now, channelID, ts, via); err != nil {
		return fmt.Errorf("recording notification %d as sent: %w", a.n.ID, err)
	}
	return nil
}

// settle records a failed attempt on the row — its error, its claim released, and
// whether a post may have gone through — and says what the job should do: wait, fail for
// good, or retry. Errors that are not Slack's (the database) are returned as they are.
func (a *attempt) settle(ctx context.Context, err error) error {
	var f *slackFailure
	if !errors.As(err, &f) {
		return err
	}
	if f.kind == permanent {
		return a.fail(ctx, f)
	}
	mayHavePosted := f.kind == ambiguous && f.method == "chat.postMessage"
	if _, dbErr := a.db.Exec(ctx, `
		UPDATE notifications SET claimed_at = CASE WHEN claimed_at = $2 THEN NULL ELSE claimed_at END,
		       outcome_unknown = outcome_unknown OR $3, error = $4, updated_at = $5
		WHERE id = $1 AND state = 'pending'`, a.n.ID, a.claimedAt, mayHavePosted, f.Error(), a.now()); dbErr != nil {
		return fmt.Errorf("recording the failed attempt of notification %d: %w (after %w)", a.n.ID, dbErr, err)
	}
	if f.kind == rateLimited {
		return &WaitError{Until: a.now().Add(f.retryAfter), Reason: fmt.Sprintf("Slack rate limit on %s", f.method)}
	}
	return err
}

// fail marks the notification failed with a reason people can act on, tells revenue ops
// (an ops message to the ops channel, once a day per cause, plus an ERROR log line) and
// returns *FailedError.
func (a *attempt) fail(ctx context.Context, f *slackFailure) error {
	n := a.n
	reason := f.reason(n.Recipient)
	if f.code == "invalid_message" {
		reason = fmt.Sprintf("the message to %s cannot be rendered: %v (a bug in what produced it)", n.Recipient, f.err)
	}
	err := pgx.BeginFunc(ctx, a.db, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			UPDATE notifications SET state = 'failed', error = $2, claimed_at = NULL, updated_at = $3
			WHERE id = $1 AND state = 'pending'`, n.ID, reason, a.now())
		if err != nil {
			return fmt.Errorf("marking notification %d failed: %w", n.ID, err)
		}
		if tag.RowsAffected() == 0 {
			return errAlreadyDone
		}
		if a.dest.dmUser != "" && f.method == "chat.postMessage" {
			if err := a.forgetDMChannel(ctx, tx, a.dest.dmUser); err != nil {
				return err
			}
		}
		if a.opsChannel == "" || n.Kind == KindOps {
			return nil
		}
		_, err = insertNotification(ctx, tx, a.enq, a.opsMessage(n, f, reason))
		return err
	})
	if errors.Is(err, errAlreadyDone) {
		return nil
	}
	if err != nil {
		return err
	}
	a.log.ErrorContext(ctx, "notify: delivery failed for good", "slack_error", f.code, "reason", reason)
	return &FailedError{NotificationID: n.ID, Code: f.code, Reason: reason}
}

// opsMessage tells revenue ops about a failed delivery. Its dedupe key makes it once per
// day per cause: per workspace for token problems, else per recipient.
func (d *Deliverer) opsMessage(n notification, f *slackFailure, reason string) outgoing {
	now := d.now()
	recipient := n.Recipient
	if n.Channel == ChannelDM {
		recipient = "the DM to " + n.Recipient
	}
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
