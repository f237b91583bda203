package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/slack-go/slack"
)

const (
	// maxInteractionBody bounds what the endpoint reads; Slack's payloads are a few KB.
	maxInteractionBody = 1 << 20
	// replayWindow is how long request signatures are remembered: longer than the five
	// minutes either side of now that the timestamp check lets through.
	replayWindow = 11 * time.Minute
)

// InteractionHandler is Slack's interactivity endpoint: mount it at POST
// /slack/interactions and give that URL to Slack (slack-app-manifest.yaml). It verifies
// the request signature with the signing secret (a forged signature, a timestamp more than
// five minutes from the wall clock, or a replayed request gets 401), hands each button
// press to the ActionHandler registered for its action id, applying it in one transaction,
// and answers 200 at once. When the handler returns a message, the original Slack message
// is updated with it by a delivery job (chat.update; rate limits and outages are handled
// there), enqueued in that same transaction.
type InteractionHandler struct {
	secret  string
	db      DB
	actions *Actions
	enq     Enqueuer
	logger  *slog.Logger
	now     func() time.Time
}

// InteractionConfig configures an InteractionHandler.
type InteractionConfig struct {
	// SigningSecret is the Slack app's signing secret (SLACK_SIGNING_SECRET).
	SigningSecret string
	DB            DB
	Actions       *Actions
	// Enqueuer schedules the update of the pressed message (jobs.NotificationEnqueuer).
	Enqueuer Enqueuer
	Logger   *slog.Logger
	// NowFunc is the clock for the rows written (nil = time.Now). Signature timestamps
	// are always checked against the wall clock, as Slack signs them.
	NowFunc func() time.Time
}

// NewInteractionHandler returns the endpoint, or an error when the signing secret is
// missing: unverifiable requests must never change anything.
func NewInteractionHandler(cfg InteractionConfig) (*InteractionHandler, error) {
	if cfg.SigningSecret == "" {
		return nil, errors.New("SLACK_SIGNING_SECRET is not set: Slack button presses cannot be verified, so the interactivity endpoint stays off")
	}
	h := &InteractionHandler{secret: cfg.SigningSecret, db: cfg.DB, actions: cfg.Actions, enq: cfg.Enqueuer, logger: cfg.Logger, now: cfg.NowFunc}
	if h.now == nil {
		h.now = time.Now
	}
	return h, nil
}

// errReplayed means the same signed request arrived before.
var errReplayed = errors.New("replayed request")

// ServeHTTP handles one interaction request.
func (h *InteractionHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxInteractionBody))
	if err != nil {
		http.Error(w, "reading the request body failed", http.StatusBadRequest)
		return
	}
	verifier, err := slack.NewSecretsVerifier(r.Header, h.secret)
	if err == nil {
		_, _ = verifier.Write(body)
		err = verifier.Ensure()
	}
	if err != nil {
		h.logger.WarnContext(ctx, "notify: rejected a Slack interaction request", "error", err, "remote_addr", r.RemoteAddr)
		http.Error(w, "invalid or stale Slack signature", http.StatusUnauthorized)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	callback, err := slack.InteractionCallbackParse(r)
	if err != nil {
		http.Error(w, "reading the interaction payload failed", http.StatusBadRequest)
		return
	}
	if callback.Type != slack.InteractionTypeBlockActions {
		w.WriteHeader(http.StatusOK)
		return
	}
	var presses []pressed
	for _, action := range callback.ActionCallback.BlockActions {
		handler := h.actions.Handler(action.ActionID)
		if handler == nil {
			if action.ActionID != LinkActionID {
				h.logger.WarnContext(ctx, "notify: no handler for a Slack button", "action_id", action.ActionID)
			}
			continue
		}
		id, value, err := parseButtonValue(action.Value)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		presses = append(presses, pressed{handler: handler, press: Press{
			ActionID: action.ActionID, Value: value, NotificationID: id, SlackUserID: callback.User.ID,
		}})
	}
	if len(presses) > 0 {
		err := h.apply(ctx, r.Header.Get("X-Slack-Signature"), presses, callback.Container)
		if errors.Is(err, errReplayed) {
			h.logger.WarnContext(ctx, "notify: rejected a replayed Slack interaction request", "remote_addr", r.RemoteAddr)
			http.Error(w, "replayed request", http.StatusUnauthorized)
			return
		}
		if err != nil {
			h.logger.ErrorContext(ctx, "notify: applying a Slack button press failed", "error", err)
			http.Error(w, "applying the action failed", http.StatusInternalServerError)
			return
		}
	}
	w.WriteHeader(http.StatusOK)
}

type pressed struct {
	handler ActionHandler
	press   Press
}

// apply runs the presses of one request in one transaction, refusing a request whose
// signature was seen before, and enqueues the update of each message a handler re-rendered.
func (h *InteractionHandler) apply(ctx context.Context, signature string, presses []pressed, container slack.Container) error {
	now := h.now()
	return pgx.BeginFunc(ctx, h.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM slack_request_signatures WHERE received_at < $1`, now.Add(-replayWindow)); err != nil {
			return fmt.Errorf("pruning seen Slack request signatures: %w", err)
		}
		tag, err := tx.Exec(ctx, `INSERT INTO slack_request_signatures (signature, received_at) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
			signature, now)
		if err != nil {
			return fmt.Errorf("recording the Slack request signature: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return errReplayed
		}
		for _, p := range presses {
			if err := h.applyOne(ctx, tx, p, container, now); err != nil {
				return err
			}
		}
		return nil
	})
}

func (h *InteractionHandler) applyOne(ctx context.Context, tx pgx.Tx, p pressed, container slack.Container, now time.Time) error {
	var o outgoing
	err := tx.QueryRow(ctx, `
		SELECT kind, alert_id, reminder_id, channel, recipient, coalesce(slack_channel_id, ''), coalesce(slack_ts, '')
		FROM notifications WHERE id = $1 FOR UPDATE`, p.press.NotificationID,
	).Scan(&o.Kind, &o.AlertID, &o.ReminderID, &o.Channel, &o.Recipient, &o.SlackChannelID, &o.SlackTS)
	if errors.Is(err, pgx.ErrNoRows) {
		h.logger.WarnContext(ctx, "notify: button pressed on a notification that no longer exists",
			"notification_id", p.press.NotificationID, "action_id", p.press.ActionID)
		return nil
	}
	if err != nil {
		return fmt.Errorf("loading notification %d: %w", p.press.NotificationID, err)
	}
	msg, err := p.handler.HandleAction(ctx, tx, p.press)
	if err != nil {
		return fmt.Errorf("handling %s on notification %d: %w", p.press.ActionID, p.press.NotificationID, err)
	}
	h.logger.InfoContext(ctx, "notify: Slack button pressed", "notification_id", p.press.NotificationID,
		"action_id", p.press.ActionID, "slack_user_id", p.press.SlackUserID)
	if msg == nil {
		return nil
	}
	// The pressed message is the one to update: Slack names it in the signed payload.
	if container.ChannelID != "" && container.MessageTs != "" {
		o.SlackChannelID, o.SlackTS = container.ChannelID, container.MessageTs
	}
	if o.SlackTS == "" {
		return fmt.Errorf("notification %d has no Slack message to update", p.press.NotificationID)
	}
	o.Message, o.NotBefore = *msg, now
	_, err = insertNotification(ctx, tx, h.enq, o)
	return err
}
