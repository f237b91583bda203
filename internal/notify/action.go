package notify

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// Press is a button press from Slack's interactivity endpoint, already verified.
type Press struct {
	// ActionID and Value are the Action's ID and Value.
	ActionID string
	Value    string
	// NotificationID is the notification whose message held the button.
	NotificationID int64
	// SlackUserID is who pressed it.
	SlackUserID string
}

// ActionHandler applies a button press inside tx. It returns the message that replaces
// the original one (nil leaves the original as it is).
type ActionHandler interface {
	HandleAction(ctx context.Context, tx pgx.Tx, press Press) (*Message, error)
}

// ActionHandlerFunc adapts a function to ActionHandler.
type ActionHandlerFunc func(ctx context.Context, tx pgx.Tx, press Press) (*Message, error)

// HandleAction calls f.
func (f ActionHandlerFunc) HandleAction(ctx context.Context, tx pgx.Tx, press Press) (*Message, error) {
	return f(ctx, tx, press)
}
