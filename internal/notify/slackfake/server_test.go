package slackfake_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/pipewatch/pipewatch/internal/notify/slackfake"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type testBundle struct {
	fake  *slackfake.Server
	api   *slack.Client
	clock *clock
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	c := &clock{now: time.Date(2026, 11, 10, 15, 0, 0, 0, time.UTC)}
	fake := slackfake.New(slackfake.Options{NowFunc: c.Now})
	t.Cleanup(fake.Close)
	return &testBundle{fake: fake, api: slack.New(fake.Token(), slack.OptionAPIURL(fake.URL())), clock: c}
}

func slackCode(t *testing.T, err error) string {
	t.Helper()
	var api slack.SlackErrorResponse
	require.True(t, errors.As(err, &api), "want an ok:false answer, got %v", err)
	return api.Err
}

func TestServer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	text := slack.MsgOptionText("hello", false)

	t.Run("AuthTest", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		res, err := b.api.AuthTestContext(ctx)
		require.NoError(t, err)
		require.Equal(t, slackfake.BotUserID, res.UserID)

		_, err = slack.New("xoxb-wrong", slack.OptionAPIURL(b.fake.URL())).AuthTestContext(ctx)
		require.Equal(t, "invalid_auth", slackCode(t, err))
		b.fake.RevokeToken()
		_, err = b.api.AuthTestContext(ctx)
		require.Equal(t, "token_revoked", slackCode(t, err))
	})

	t.Run("TokenOnlyFromHeaderForJSON", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c := b.fake.AddChannel(slackfake.Channel{Name: "deals", Member: true})
		post := func(body string, header bool) map[string]any {
			req, err := http.NewRequest(http.MethodPost, b.fake.URL()+"chat.postMessage", strings.NewReader(body))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/json; charset=utf-8")
			if header {
				req.Header.Set("Authorization", "Bearer "+b.fake.Token())
			}
			res, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer res.Body.Close()
			require.Equal(t, http.StatusOK, res.StatusCode)
			var out map[string]any
			require.NoError(t, json.NewDecoder(res.Body).Decode(&out))
			return out
		}
		out := post(`{"channel":"`+c.ID+`","text":"hi","blocks":[{"type":"section","text":{"type":"mrkdwn","text":"*hi*"}}]}`, true)
		require.Equal(t, true, out["ok"])
		require.Equal(t, c.ID, out["channel"])
		out = post(`{"channel":"`+c.ID+`","text":"hi","token":"`+b.fake.Token()+`"}`, false)
		require.Equal(t, map[string]any{"ok": false, "error": "not_authed"}, out)
	})

	t.Run("PostAndUpdate", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c := b.fake.AddChannel(slackfake.Channel{Name: "deals", Member: true})
		blocks := slack.MsgOptionBlocks(slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, "Deal won", false, false)))

		channelID, ts, err := b.api.PostMessageContext(ctx, "#deals", text, blocks)
		require.NoError(t, err)
		require.Equal(t, c.ID, channelID)
		_, _, _, err = b.api.UpdateMessageContext(ctx, channelID, ts, slack.MsgOptionText("edited", false))
		require.NoError(t, err)

		m, found := b.fake.Message(channelID, ts)
		require.True(t, found)
		require.Equal(t, "edited", m.Text)
		log := b.fake.Messages()
		require.Len(t, log, 2)
		require.Equal(t, "chat.postMessage", log[0].Method)
		require.Equal(t, "hello", log[0].Text)
		require.Equal(t, slack.MBTHeader, log[0].Blocks.BlockSet[0].BlockType())
		require.Equal(t, "chat.update", log[1].Method)
		require.Len(t, b.fake.Posts(), 1)

		_, _, _, err = b.api.UpdateMessageContext(ctx, channelID, "1.000001", text)
		require.Equal(t, "message_not_found", slackCode(t, err))
	})

	t.Run("RateLimitPerChannel", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.fake.AddChannel(slackfake.Channel{Name: "a", Member: true})
		b.fake.AddChannel(slackfake.Channel{Name: "b", Member: true})

		_, _, err := b.api.PostMessageContext(ctx, "a", text)
		require.NoError(t, err)
		_, _, err = b.api.PostMessageContext(ctx, "a", text)
		var limited *slack.RateLimitedError
		require.ErrorAs(t, err, &limited)
		require.Equal(t, time.Second, limited.RetryAfter)
		_, _, err = b.api.PostMessageContext(ctx, "b", text)
		require.NoError(t, err, "the limit is per channel")

		b.clock.Advance(time.Second)
		_, _, err = b.api.PostMessageContext(ctx, "a", text)
		require.NoError(t, err)
		require.Len(t, b.fake.Posts(), 3)
	})

	t.Run("ChannelErrors", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.fake.AddChannel(slackfake.Channel{Name: "private", Member: false})
		b.fake.AddChannel(slackfake.Channel{Name: "old", Member: true, Archived: true})
		for channel, code := range map[string]string{"#nowhere": "channel_not_found", "#private": "not_in_channel", "old": "is_archived"} {
			_, _, err := b.api.PostMessageContext(ctx, channel, text)
			require.Equal(t, code, slackCode(t, err), channel)
		}
		require.Empty(t, b.fake.Messages())
	})

	t.Run("InvalidMessages", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.fake.AddChannel(slackfake.Channel{Name: "deals", Member: true})
		var tooMany []slack.Block
		for range 51 {
			tooMany = append(tooMany, slack.NewDividerBlock())
		}
		_, _, err := b.api.PostMessageContext(ctx, "deals", text, slack.MsgOptionBlocks(tooMany...))
		require.Equal(t, "invalid_blocks", slackCode(t, err))

		long := slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, strings.Repeat("x", 3001), false, false), nil, nil)
		_, _, err = b.api.PostMessageContext(ctx, "deals", text, slack.MsgOptionBlocks(long))
		require.Equal(t, "invalid_blocks", slackCode(t, err))
		var api slack.SlackErrorResponse
		require.ErrorAs(t, err, &api)
		require.Equal(t, []string{"[ERROR] must be less than 3001 characters [json-pointer:/blocks/0/text/text]"}, api.ResponseMetadata.Messages)

		_, _, err = b.api.PostMessageContext(ctx, "deals", slack.MsgOptionText("", false))
		require.Equal(t, "no_text", slackCode(t, err))
		require.Empty(t, b.fake.Messages())
	})

	t.Run("UsersAndDMs", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ana := b.fake.AddUser(slackfake.User{Name: "Ana", Email: "Ana@Example.com", TZ: "America/Los_Angeles"})

		u, err := b.api.GetUserByEmailContext(ctx, "ana@example.com")
		require.NoError(t, err)
		require.Equal(t, ana.ID, u.ID)
		require.Equal(t, "America/Los_Angeles", u.TZ)
		require.Equal(t, -8*3600, u.TZOffset)
		_, err = b.api.GetUserByEmailContext(ctx, "nobody@example.com")
		require.Equal(t, "users_not_found", slackCode(t, err))

		ch, noOp, _, err := b.api.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{ana.ID}, ReturnIM: true})
		require.NoError(t, err)
		require.False(t, noOp)
		require.True(t, strings.HasPrefix(ch.ID, "D"))
		again, noOp, _, err := b.api.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{ana.ID}})
		require.NoError(t, err)
		require.True(t, noOp)
		require.Equal(t, ch.ID, again.ID)
		_, _, _, err = b.api.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{"U404"}})
		require.Equal(t, "user_not_found", slackCode(t, err))

		_, _, err = b.api.PostMessageContext(ctx, ch.ID, text)
		require.NoError(t, err)
		require.Equal(t, ch.ID, b.fake.Posts()[0].Channel)
	})

	t.Run("Outage", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.fake.AddChannel(slackfake.Channel{Name: "deals", Member: true})
		b.fake.SetOutage(b.clock.Now().Add(3*time.Minute), http.StatusServiceUnavailable)

		_, _, err := b.api.PostMessageContext(ctx, "deals", text)
		var status slack.StatusCodeError
		require.ErrorAs(t, err, &status)
		require.Equal(t, http.StatusServiceUnavailable, status.Code)
		b.clock.Advance(3 * time.Minute)
		_, _, err = b.api.PostMessageContext(ctx, "deals", text)
		require.NoError(t, err)
		require.Equal(t, 2, b.fake.Calls("chat.postMessage"))
	})

	t.Run("FailMethod", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.fake.FailMethod("users.lookupByEmail", "account_inactive")
		_, err := b.api.GetUserByEmailContext(ctx, "ana@example.com")
		require.Equal(t, "account_inactive", slackCode(t, err))
		b.fake.FailMethod("users.lookupByEmail", "")
		_, err = b.api.GetUserByEmailContext(ctx, "ana@example.com")
		require.Equal(t, "users_not_found", slackCode(t, err))
	})

	t.Run("DroppedResponseStillPosts", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.fake.AddChannel(slackfake.Channel{Name: "deals", Member: true})
		b.fake.DropResponses("chat.postMessage", 1)
		_, _, err := b.api.PostMessageContext(ctx, "deals", text)
		require.Error(t, err)
		require.Len(t, b.fake.Posts(), 1, "Slack received and posted it")
	})

	t.Run("PressIsSignedLikeSlack", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.fake.AddChannel(slackfake.Channel{Name: "deals", Member: true})
		button := slack.NewButtonBlockElement("alert.ack", "7:77", slack.NewTextBlockObject(slack.PlainTextType, "Ack", false, false))
		channelID, ts, err := b.api.PostMessageContext(ctx, "deals", text, slack.MsgOptionBlocks(slack.NewActionBlock("acts", button)))
		require.NoError(t, err)
		m, _ := b.fake.Message(channelID, ts)

		req, err := b.fake.Press("http://pipewatch.test/slack/interactions", m, "alert.ack", "U0ANA", time.Now())
		require.NoError(t, err)
		body, err := io.ReadAll(req.Body)
		require.NoError(t, err)
		verifier, err := slack.NewSecretsVerifier(req.Header, b.fake.SigningSecret())
		require.NoError(t, err)
		_, _ = verifier.Write(body)
		require.NoError(t, verifier.Ensure())

		req.Body = io.NopCloser(bytes.NewReader(body))
		callback, err := slack.InteractionCallbackParse(req)
		require.NoError(t, err)
		require.Equal(t, slack.InteractionTypeBlockActions, callback.Type)
		require.Equal(t, "U0ANA", callback.User.ID)
		require.Equal(t, ts, callback.Container.MessageTs)
		require.Equal(t, channelID, callback.Container.ChannelID)
		require.Equal(t, "alert.ack", callback.ActionCallback.BlockActions[0].ActionID)
		require.Equal(t, "7:77", callback.ActionCallback.BlockActions[0].Value)

		_, err = b.fake.Press("http://pipewatch.test/slack/interactions", m, "alert.snooze", "U0ANA", time.Now())
		require.Error(t, err)
	})
}
