package notify_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/notify"
	"github.com/pipewatch/pipewatch/internal/notify/slackfake"
)

func TestCheckSlackToken(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fake := slackfake.New(slackfake.Options{})
	t.Cleanup(fake.Close)

	team, err := notify.CheckSlackToken(ctx, notify.NewSlackClient(fake.Token(), strings.TrimSuffix(fake.URL(), "/")))
	require.NoError(t, err, "SLACK_API_URL works without its trailing slash")
	require.Equal(t, "pipewatch fake workspace", team)

	_, err = notify.CheckSlackToken(ctx, notify.NewSlackClient("xoxb-typo", fake.URL()))
	require.EqualError(t, err, "checking SLACK_BOT_TOKEN with Slack's auth.test: invalid_auth")
	require.NotContains(t, err.Error(), "xoxb-typo", "the token never appears in errors")

	require.Nil(t, notify.NewSlackClient("", fake.URL()), "no token: console mode")
}
