package notify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/slack-go/slack"
)

// slackTimeout bounds one Slack API call. claimLease must stay well above it.
const slackTimeout = 15 * time.Second

// NewSlackClient returns a Slack Web API client for the bot token, or nil when token is
// empty (notifications then go to the console). apiURL overrides https://slack.com/api/
// (SLACK_API_URL, e.g. a test server); the trailing slash slack-go needs is added.
// Retries are not done here: the delivery job snoozes on rate limits and River retries
// the rest, so a worker slot is never blocked sleeping.
func NewSlackClient(token, apiURL string) *slack.Client {
	if token == "" {
		return nil
	}
	opts := []slack.Option{slack.OptionHTTPClient(&http.Client{Timeout: slackTimeout})}
	if apiURL != "" {
		if !strings.HasSuffix(apiURL, "/") {
			apiURL += "/"
		}
		opts = append(opts, slack.OptionAPIURL(apiURL))
	}
	return slack.New(token, opts...)
}

// CheckSlackToken asks Slack (auth.test) whether the bot token works, so the worker can
// say at startup what is wrong instead of failing every message. It returns the
// workspace name.
func CheckSlackToken(ctx context.Context, api *slack.Client) (string, error) {
	res, err := api.AuthTestContext(ctx)
	if err != nil {
		return "", fmt.Errorf("checking SLACK_BOT_TOKEN with Slack's auth.test: %w", err)
	}
	return res.Team, nil
}

// failureKind says what a failed Slack call means for the notification.
type failureKind int

const (
	// transient: nothing happened (5xx, connection refused); retry with backoff.
	transient failureKind = iota
	// ambiguous: the request may have taken effect (timeout or connection lost after
	// sending it).
	ambiguous
	// rateLimited: Slack said wait RetryAfter.
	rateLimited
	// permanent: retrying cannot help (bad channel, revoked token, unknown user …).
	permanent
)

// slackFailure is a classified failure of one Slack API call.
type slackFailure struct {
	method     string
	code       string // Slack's error code, or http_<status>
	kind       failureKind
	retryAfter time.Duration
	err        error
}

func (f *slackFailure) Error() string { return fmt.Sprintf("calling Slack %s: %v", f.method, f.err) }
func (f *slackFailure) Unwrap() error { return f.err }

// transientCodes are ok:false answers that mean "try again later".
var transientCodes = map[string]bool{
	"internal_error": true, "fatal_error": true, "service_unavailable": true, "request_timeout": true,
}

// rateLimitFallback is the wait when Slack signals a rate limit without a Retry-After.
const rateLimitFallback = 30 * time.Second

// classify sorts the error of a Slack call by what it means for delivery.
func classify(method string, err error) *slackFailure {
	f := &slackFailure{method: method, err: err, kind: ambiguous}
	var limited *slack.RateLimitedError
	var api slack.SlackErrorResponse
	var status slack.StatusCodeError
	var op *net.OpError
	switch {
	case errors.As(err, &limited):
		f.kind, f.code, f.retryAfter = rateLimited, "ratelimited", max(limited.RetryAfter, time.Second)
	case errors.As(err, &api):
		f.code = api.Err
		switch {
		case api.Err == "ratelimited" || api.Err == "rate_limited":
			f.kind, f.retryAfter = rateLimited, rateLimitFallback
		case transientCodes[api.Err]:
			f.kind = transient
		default:
			f.kind = permanent
		}
	case errors.As(err, &status):
		f.code = fmt.Sprintf("http_%d", status.Code)
		switch {
		case status.Code == http.StatusTooManyRequests:
			f.kind, f.retryAfter = rateLimited, rateLimitFallback
		case status.Code >= 500:
			f.kind = transient
		default:
			f.kind = permanent
		}
	case errors.As(err, &op) && op.Op == "dial":
		f.kind = transient
	}
	return f
}

// slackErrorHelp explains Slack's permanent error codes to people; %s is the recipient.
var slackErrorHelp = map[string]string{
	"channel_not_found": "Slack channel %s was not found: check the channel id or name, and invite the pipewatch app if the channel is private",
	"not_in_channel":    "the pipewatch app is not a member of Slack channel %s: invite it with /invite @pipewatch",
	"is_archived":       "Slack channel %s is archived",
	"invalid_auth":      "Slack rejected the bot token (invalid_auth) while messaging %s: check SLACK_BOT_TOKEN",
	"not_authed":        "no Slack bot token was sent (not_authed) while messaging %s: check SLACK_BOT_TOKEN",
	"token_revoked":     "the Slack bot token was revoked (token_revoked) while messaging %s: reinstall the app and update SLACK_BOT_TOKEN",
	"token_expired":     "the Slack bot token expired (token_expired) while messaging %s: reinstall the app and update SLACK_BOT_TOKEN",
	"account_inactive":  "the pipewatch Slack app's bot was deactivated (account_inactive) while messaging %s: reinstall the app",
	"missing_scope":     "the Slack app lacks a permission needed to message %s (missing_scope): update it from slack-app-manifest.yaml and reinstall",
	"users_not_found":   "no Slack user has the email %s: add the address to their Slack profile or set the owner's Slack user id",
	"user_not_found":    "Slack does not know the user %s",
	"user_disabled":     "the Slack account of %s is deactivated",
	"user_not_visible":  "the pipewatch app cannot see the Slack user %s",
	"cannot_dm_bot":     "%s is a bot; bots cannot be messaged directly",
	"invalid_blocks":    "Slack rejected the layout of the message to %s (invalid_blocks): this is a pipewatch bug, please report it",
	"msg_too_long":      "the message to %s is too long for Slack (msg_too_long): this is a pipewatch bug, please report it",
	"no_text":           "the message to %s is empty (no_text): this is a pipewatch bug, please report it",
}

// workspaceCodes concern the token or app, not one recipient.
var workspaceCodes = map[string]bool{
	"invalid_auth": true, "not_authed": true, "token_revoked": true, "token_expired": true,
	"account_inactive": true, "missing_scope": true,
}

// reason is the failure in words for people, naming the recipient.
func (f *slackFailure) reason(recipient string) string {
	if help, ok := slackErrorHelp[f.code]; ok {
		return fmt.Sprintf(help, recipient)
	}
	if strings.HasPrefix(f.code, "http_") {
		return fmt.Sprintf("Slack answered %s with HTTP %s while messaging %s: check SLACK_API_URL", f.method, strings.TrimPrefix(f.code, "http_"), recipient)
	}
	return fmt.Sprintf("Slack refused %s for %s with %q", f.method, recipient, f.code)
}
