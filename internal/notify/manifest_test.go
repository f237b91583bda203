package notify_test

import (
	"net/url"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// The manifest at the repository root is what revenue ops paste into Slack: it must ask
// for exactly the scopes delivery uses and point interactivity at the endpoint.
func TestSlackAppManifest(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../../slack-app-manifest.yaml")
	require.NoError(t, err)
	var manifest struct {
		OAuthConfig struct {
			Scopes struct {
				Bot []string `yaml:"bot"`
			} `yaml:"scopes"`
		} `yaml:"oauth_config"`
		Settings struct {
			Interactivity struct {
				IsEnabled  bool   `yaml:"is_enabled"`
				RequestURL string `yaml:"request_url"`
			} `yaml:"interactivity"`
			SocketMode bool `yaml:"socket_mode_enabled"`
		} `yaml:"settings"`
	}
	require.NoError(t, yaml.Unmarshal(data, &manifest))
	require.ElementsMatch(t, []string{"chat:write", "im:write", "users:read", "users:read.email"}, manifest.OAuthConfig.Scopes.Bot)
	require.True(t, manifest.Settings.Interactivity.IsEnabled)
	require.False(t, manifest.Settings.SocketMode, "interactivity comes over HTTPS")
	u, err := url.Parse(manifest.Settings.Interactivity.RequestURL)
	require.NoError(t, err)
	require.Equal(t, "https", u.Scheme)
	require.Equal(t, "/slack/interactions", u.Path)
}
