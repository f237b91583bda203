// Package slackfake is a fake Slack Web API for tests and the demo, written from Slack's
// documented contract (docs/vendors.md §5 and specs/slack_web_openapi_v2.json) so that
// code passing against it works against Slack:
//
//   - chat.postMessage, chat.update, users.lookupByEmail, conversations.open and auth.test
//     under <URL>/api/, taking JSON bodies (token in the Authorization header) and form
//     bodies (token in the header or the form, as slack-go sends it);
//   - errors as HTTP 200 {"ok":false,"error":"…"}: not_authed, invalid_auth, token_revoked,
//     channel_not_found, not_in_channel, is_archived, users_not_found, message_not_found,
//     no_text, msg_too_long, and invalid_blocks when a message breaks a Block Kit limit;
//   - about one chat.postMessage per second per channel, answering HTTP 429 with
//     Retry-After beyond that;
//   - injectable trouble: an outage (HTTP 5xx for a period), a method failing with a
//     given error code, a revoked token, a response lost after the request took effect.
//
// Every posted and updated message is recorded for assertions, and Press builds the signed
// request Slack sends to the app's interactivity endpoint when someone presses a button.
package slackfake

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"
)

// Defaults for Options.
const (
	DefaultToken         = "xoxb-fake-pipewatch-token"
	DefaultSigningSecret = "fake-signing-secret"
	DefaultPostInterval  = time.Second
	// BotUserID is the fake app's bot user.
	BotUserID = "U0PIPEBOT"
)

// Options configure a Server; the zero value is usable.
type Options struct {
	// Token is the bot token the server accepts (DefaultToken).
	Token string
	// SigningSecret signs the interaction requests Press builds (DefaultSigningSecret).
	SigningSecret string
	// NowFunc is the server's clock, for rate limits, outages and message timestamps.
	NowFunc func() time.Time
	// PostInterval is the gap chat.postMessage enforces per channel (DefaultPostInterval).
	PostInterval time.Duration
}

// User is a Slack workspace member.
type User struct {
	ID      string // assigned when empty
	Name    string
	Email   string
	TZ      string // IANA zone of the profile, e.g. America/Los_Angeles
	Deleted bool
}

// Channel is a Slack channel.
type Channel struct {
	ID   string // assigned when empty
	Name string // without '#'
	// Member says whether the app's bot was invited; posting elsewhere is not_in_channel.
	Member   bool
	Archived bool
}

// Message is one chat.postMessage or chat.update the server accepted.
type Message struct {
	Method  string // chat.postMessage or chat.update
	Channel string // channel id (D… for a DM)
	TS      string
	Text    string
	Blocks  slack.Blocks
	At      time.Time
}

// Server is a running fake. Close it when done.
type Server struct {
	srv           *httptest.Server
	token         string
	signingSecret string
	now           func() time.Time
	interval      time.Duration

	mu           sync.Mutex
	users        []*User
	channels     []*Channel
	dms          map[string]string // user id → D… channel id
	log          []Message
	live         map[string]*Message // channel id + "/" + ts → current content
	lastPost     map[string]time.Time
	calls        map[string]int
	outageUntil  time.Time
	outageStatus int
	failures     map[string]string // method → error code
	drops        map[string]int    // method → responses to lose
	revoked      bool
	seq          int
}

// New starts a fake Slack Web API.
func New(opts Options) *Server {
	s := &Server{
		token:         cmp(opts.Token, DefaultToken),
		signingSecret: cmp(opts.SigningSecret, DefaultSigningSecret),
		now:           opts.NowFunc,
		interval:      opts.PostInterval,
		dms:           map[string]string{},
		live:          map[string]*Message{},
		lastPost:      map[string]time.Time{},
		calls:         map[string]int{},
		failures:      map[string]string{},
		drops:         map[string]int{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.interval == 0 {
		s.interval = DefaultPostInterval
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

func cmp(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}

// URL is the Web API base, ending in "/" as slack.OptionAPIURL and SLACK_API_URL expect.
func (s *Server) URL() string { return s.srv.URL + "/api/" }

// Token is the bot token the server accepts.
func (s *Server) Token() string { return s.token }

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// AddUser adds a workspace member and returns it with its id.
func (s *Server) AddUser(u User) User {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.ID == "" {
		s.seq++
		u.ID = fmt.Sprintf("U%07d", s.seq)
	}
	s.users = append(s.users, &u)
	return u
}

// AddChannel adds a channel and returns it with its id.
func (s *Server) AddChannel(c Channel) Channel {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.ID == "" {
		s.seq++
		c.ID = fmt.Sprintf("C%07d", s.seq)
	}
	c.Name = strings.TrimPrefix(c.Name, "#")
	s.channels = append(s.channels, &c)
	return c
}

// SetOutage makes every method answer HTTP status (e.g. 503) until the server's clock
// reaches until. A zero until ends the outage.
func (s *Server) SetOutage(until time.Time, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outageUntil, s.outageStatus = until, status
}

// FailMethod makes every call of method answer {"ok":false,"error":code}; code "" clears it.
func (s *Server) FailMethod(method, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if code == "" {
		delete(s.failures, method)
		return
	}
	s.failures[method] = code
}

// RevokeToken makes the bot token answer token_revoked from now on.
func (s *Server) RevokeToken() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revoked = true
}

// DropResponses makes the next n calls of method take effect and then lose their response
// (the connection closes), as when a network fails after Slack received a request.
func (s *Server) DropResponses(method string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drops[method] = n
}

// Messages returns every message posted or updated, in order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.log...)
}

// Posts returns the chat.postMessage calls that succeeded, in order.
func (s *Server) Posts() []Message {
	var out []Message
	for _, m := range s.Messages() {
		if m.Method == "chat.postMessage" {
			out = append(out, m)
		}
	}
	return out
}

// Message returns the current content of the message channelID/ts.
func (s *Server) Message(channelID, ts string) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.live[channelID+"/"+ts]
	if !ok {
		return Message{}, false
	}
	return *m, true
}

// Calls returns how many requests method received, failed ones included.
func (s *Server) Calls(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method]
}

// DMChannel returns the DM channel opened with a user ("" when none was opened).
func (s *Server) DMChannel(userID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dms[userID]
}

// response is what a method answers.
type response struct {
	status int
	header http.Header
	body   []byte
}

func jsonResponse(status int, v any) response {
	body, _ := json.Marshal(v)
	return response{status: status, header: http.Header{"Content-Type": {"application/json; charset=utf-8"}}, body: body}
}

func ok(fields map[string]any) response {
	fields["ok"] = true
	return jsonResponse(http.StatusOK, fields)
}

// apiError is Slack's error shape: HTTP 200 with ok false.
func apiError(code string, details ...string) response {
	body := map[string]any{"ok": false, "error": code}
	if len(details) > 0 {
		body["errors"] = details
		msgs := make([]string, len(details))
		for i, d := range details {
			msgs[i] = "[ERROR] " + d
		}
		body["response_metadata"] = map[string]any{"messages": msgs}
	}
	return jsonResponse(http.StatusOK, body)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	method, found := strings.CutPrefix(r.URL.Path, "/api/")
	if !found {
		http.NotFound(w, r)
		return
	}
	s.mu.Lock()
	res := s.handle(method, r)
	drop := s.drops[method] > 0
	if drop {
		s.drops[method]--
	}
	s.mu.Unlock()
	if drop {
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	for k, v := range res.header {
		w.Header()[k] = v
	}
	w.WriteHeader(res.status)
	_, _ = w.Write(res.body)
}

// handle answers one call; s.mu is held.
func (s *Server) handle(method string, r *http.Request) response {
	s.calls[method]++
	now := s.now()
	if now.Before(s.outageUntil) {
		return response{status: s.outageStatus, header: http.Header{"Content-Type": {"text/html"}},
			body: []byte("<html><body><h1>Slack is having trouble</h1></body></html>")}
	}
	params, headerToken, err := readParams(r)
	if err != nil {
		return apiError("invalid_form_data", err.Error())
	}
	token := headerToken
	if token == "" {
		token = params["token"]
	}
	switch {
	case token == "":
		return apiError("not_authed")
	case token != s.token:
		return apiError("invalid_auth")
	case s.revoked:
		return apiError("token_revoked")
	}
	if code, failing := s.failures[method]; failing {
		return apiError(code)
	}
	switch method {
	case "auth.test":
		return ok(map[string]any{"url": "https://pipewatch-fake.slack.com/", "team": "pipewatch fake workspace",
			"user": "pipewatch", "team_id": "T0FAKE", "user_id": BotUserID, "bot_id": "B0PIPEBOT"})
	case "chat.postMessage":
		return s.postMessage(params, now)
	case "chat.update":
		return s.updateMessage(params, now)
	case "users.lookupByEmail":
		return s.lookupByEmail(params, now)
	case "conversations.open":
		return s.openConversation(params)
	default:
		return apiError("unknown_method")
	}
}

// readParams reads a method's arguments from the query (GET), a form body or a JSON body,
// JSON values other than strings kept as their JSON text. It also returns the Bearer
// token of the Authorization header; a JSON body's token only counts from there.
func readParams(r *http.Request) (map[string]string, string, error) {
	params := map[string]string{}
	headerToken, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	for k, v := range r.URL.Query() {
		if k != "token" { // Slack no longer takes tokens in query strings
			params[k] = v[0]
		}
	}
	if r.Method != http.MethodPost {
		return params, headerToken, nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return nil, "", err
	}
	contentType := r.Header.Get("Content-Type")
	switch {
	case strings.HasPrefix(contentType, "application/json"):
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(body, &fields); err != nil {
			return nil, "", fmt.Errorf("decoding JSON body: %w", err)
		}
		for k, raw := range fields {
			var str string
			if k == "token" {
				continue
			}
			if json.Unmarshal(raw, &str) == nil {
				params[k] = str
			} else {
				params[k] = string(raw)
			}
		}
	case strings.HasPrefix(contentType, "application/x-www-form-urlencoded"), len(body) == 0:
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, "", fmt.Errorf("decoding form body: %w", err)
		}
		for k, v := range form {
			params[k] = v[0]
		}
	default:
		return nil, "", fmt.Errorf("unsupported content type %q", contentType)
	}
	return params, headerToken, nil
}

// conversation resolves a channel argument: a C…/G…/D… id, a channel name (with or
// without '#'), or a user id (which means the app's DM with that user).
func (s *Server) conversation(ref string) (string, response, bool) {
	name := strings.TrimPrefix(ref, "#")
	for _, c := range s.channels {
		if c.ID == ref || c.Name == name {
			switch {
			case c.Archived:
				return "", apiError("is_archived"), false
			case !c.Member:
				return "", apiError("not_in_channel"), false
			}
			return c.ID, response{}, true
		}
	}
	for user, dm := range s.dms {
		if dm == ref || user == ref {
			return dm, response{}, true
		}
	}
	if u := s.userByID(ref); u != nil && !u.Deleted {
		return s.openDM(u.ID), response{}, true
	}
	return "", apiError("channel_not_found"), false
}

func (s *Server) postMessage(p map[string]string, now time.Time) response {
	channelID, failure, found := s.conversation(p["channel"])
	if !found {
		return failure
	}
	if last, seen := s.lastPost[channelID]; seen && now.Sub(last) < s.interval {
		wait := int(math.Ceil((s.interval - now.Sub(last)).Seconds()))
		res := jsonResponse(http.StatusTooManyRequests, map[string]any{"ok": false, "error": "ratelimited"})
		res.header.Set("Retry-After", strconv.Itoa(max(wait, 1)))
		return res
	}
	blocks, failure, valid := checkMessage(p)
	if !valid {
		return failure
	}
	s.lastPost[channelID] = now
	s.seq++
	m := Message{Method: "chat.postMessage", Channel: channelID, TS: fmt.Sprintf("%d.%06d", now.Unix(), s.seq%1_000_000),
		Text: p["text"], Blocks: blocks, At: now}
	s.log = append(s.log, m)
	s.live[channelID+"/"+m.TS] = &m
	return ok(map[string]any{"channel": channelID, "ts": m.TS, "message": map[string]any{
		"type": "message", "subtype": "bot_message", "text": m.Text, "ts": m.TS, "bot_id": "B0PIPEBOT",
		"blocks": json.RawMessage(orEmpty(p["blocks"])),
	}})
}

func (s *Server) updateMessage(p map[string]string, now time.Time) response {
	channelID, failure, found := s.conversation(p["channel"])
	if !found {
		return failure
	}
	current, exists := s.live[channelID+"/"+p["ts"]]
	if !exists {
		return apiError("message_not_found")
	}
	blocks, failure, valid := checkMessage(p)
	if !valid {
		return failure
	}
	current.Text, current.Blocks = p["text"], blocks
	s.log = append(s.log, Message{Method: "chat.update", Channel: channelID, TS: current.TS, Text: p["text"], Blocks: blocks, At: now})
	return ok(map[string]any{"channel": channelID, "ts": current.TS, "text": current.Text,
		"message": map[string]any{"text": current.Text, "blocks": json.RawMessage(orEmpty(p["blocks"]))}})
}

func orEmpty(blocks string) string {
	if blocks == "" {
		return "[]"
	}
	return blocks
}

func (s *Server) lookupByEmail(p map[string]string, now time.Time) response {
	email := p["email"]
	if email == "" {
		return apiError("invalid_arguments", "missing required field: email")
	}
	for _, u := range s.users {
		if strings.EqualFold(u.Email, email) {
			user := map[string]any{"id": u.ID, "team_id": "T0FAKE", "name": u.Name, "real_name": u.Name,
				"deleted": u.Deleted, "is_bot": false,
				"profile": map[string]any{"email": u.Email, "real_name": u.Name, "display_name": u.Name}}
			if loc, err := time.LoadLocation(u.TZ); u.TZ != "" && err == nil {
				name, offset := now.In(loc).Zone()
				user["tz"], user["tz_label"], user["tz_offset"] = u.TZ, name, offset
			}
			return ok(map[string]any{"user": user})
		}
	}
	return apiError("users_not_found")
}

func (s *Server) openConversation(p map[string]string) response {
	if p["users"] == "" {
		if p["channel"] != "" {
			if id, _, found := s.conversation(p["channel"]); found {
				return ok(map[string]any{"channel": map[string]any{"id": id}, "no_op": true, "already_open": true})
			}
			return apiError("channel_not_found")
		}
		return apiError("users_list_not_supplied")
	}
	users := strings.Split(p["users"], ",")
	if len(users) > 1 {
		return apiError("invalid_arguments", "this fake opens one-to-one DMs only")
	}
	u := s.userByID(strings.TrimSpace(users[0]))
	switch {
	case u == nil:
		return apiError("user_not_found")
	case u.Deleted:
		return apiError("user_disabled")
	}
	_, existed := s.dms[u.ID]
	return ok(map[string]any{"channel": map[string]any{"id": s.openDM(u.ID)}, "no_op": existed, "already_open": existed})
}

func (s *Server) openDM(userID string) string {
	if dm, open := s.dms[userID]; open {
		return dm
	}
	dm := "D" + strings.TrimLeft(userID, "UW")
	s.dms[userID] = dm
	return dm
}

func (s *Server) userByID(id string) *User {
	for _, u := range s.users {
		if u.ID == id {
			return u
		}
	}
	return nil
}

// Press builds the request Slack sends to the app's interactivity endpoint at target when
// userID presses the button actionID on message m: a form body with the block_actions
// payload, signed with the signing secret at time at. It fails when m has no such button.
func (s *Server) Press(target string, m Message, actionID, userID string, at time.Time) (*http.Request, error) {
	var button *slack.ButtonBlockElement
	var blockID string
	for _, b := range m.Blocks.BlockSet {
		actions, isActions := b.(*slack.ActionBlock)
		if !isActions || actions.Elements == nil {
			continue
		}
		for _, e := range actions.Elements.ElementSet {
			if btn, isButton := e.(*slack.ButtonBlockElement); isButton && btn.ActionID == actionID {
				button, blockID = btn, actions.BlockID
			}
		}
	}
	if button == nil {
		return nil, fmt.Errorf("message %s/%s has no button %q", m.Channel, m.TS, actionID)
	}
	payload, err := json.Marshal(map[string]any{
		"type":         "block_actions",
		"user":         map[string]any{"id": userID, "team_id": "T0FAKE"},
		"api_app_id":   "A0PIPEWATCH",
		"team":         map[string]any{"id": "T0FAKE"},
		"container":    map[string]any{"type": "message", "message_ts": m.TS, "channel_id": m.Channel, "is_ephemeral": false},
		"channel":      map[string]any{"id": m.Channel},
		"message":      map[string]any{"type": "message", "ts": m.TS, "text": m.Text},
		"trigger_id":   "1.2.3",
		"response_url": s.srv.URL + "/response_url",
		"actions": []map[string]any{{
			"type": "button", "action_id": button.ActionID, "block_id": blockID, "value": button.Value,
			"text": button.Text, "action_ts": fmt.Sprintf("%d.000001", at.Unix()),
		}},
	})
	if err != nil {
		return nil, fmt.Errorf("encoding interaction payload: %w", err)
	}
	return SignedRequest(target, s.signingSecret, []byte(url.Values{"payload": {string(payload)}}.Encode()), at)
}

// SignedRequest builds a POST of a form body to target signed the way Slack signs
// requests to apps (v0 HMAC-SHA256 of "v0:<timestamp>:<body>" with the signing secret).
func SignedRequest(target, signingSecret string, body []byte, at time.Time) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("building interaction request: %w", err)
	}
	ts := strconv.FormatInt(at.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(signingSecret))
	fmt.Fprintf(mac, "v0:%s:%s", ts, body)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Slack-Request-Timestamp", ts)
	req.Header.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac.Sum(nil)))
	return req, nil
}

// SigningSecret is the secret Press signs with (configure the endpoint with it).
func (s *Server) SigningSecret() string { return s.signingSecret }
