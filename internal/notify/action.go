package notify

import (
	"context"
	"fmt"
	"strings"
	"sync"

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

// Actions routes button presses to handlers by action id: a handler registered for a
// prefix gets every press whose action id starts with it (the longest prefix wins), so
// "alert." takes "alert.snooze_3d" and "alert.ack". Register everything before serving.
type Actions struct {
	mu       sync.RWMutex
	handlers map[string]ActionHandler
}

// NewActions returns an empty registry.
func NewActions() *Actions {
	return &Actions{handlers: map[string]ActionHandler{}}
}

// Register routes the action ids starting with prefix to h. It panics when prefix is
// empty or already registered (a wiring mistake, like river.AddWorker).
func (a *Actions) Register(prefix string, h ActionHandler) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if prefix == "" {
		panic("notify: registering an action handler for an empty prefix")
	}
	if _, dup := a.handlers[prefix]; dup {
		panic(fmt.Sprintf("notify: action prefix %q registered twice", prefix))
	}
	a.handlers[prefix] = h
}

// Handler returns the handler of actionID, or nil when none is registered.
func (a *Actions) Handler(actionID string) ActionHandler {
	a.mu.RLock()
	defer a.mu.RUnlock()
	best := ""
	for prefix := range a.handlers {
		if strings.HasPrefix(actionID, prefix) && len(prefix) > len(best) {
			best = prefix
		}
	}
	return a.handlers[best]
}
