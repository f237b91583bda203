package hubspottest

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strings"
	"time"
)

// Grant is an OAuth installation: the tokens a user's authorization produced.
type Grant struct {
	ClientID     string
	ClientSecret string
	AccessToken  string
	RefreshToken string
	// Expiry is when AccessToken stops working (portal clock).
	Expiry time.Time
}

type tokenKind int

const (
	privateAppToken tokenKind = iota + 1
	oauthToken
)

type grantState struct {
	clientID, clientSecret string
	refreshToken           string
	revoked                bool
}

type accessToken struct {
	grant  *grantState
	expiry time.Time
}

type tokenTable struct {
	private map[string]bool
	clients map[string]string // client id → secret
	access  map[string]accessToken
	refresh map[string]*grantState // current refresh tokens
	retired map[string]*grantState // rotated-away refresh tokens
}

func newTokenTable() tokenTable {
	return tokenTable{
		private: make(map[string]bool),
		clients: make(map[string]string),
		access:  make(map[string]accessToken),
		refresh: make(map[string]*grantState),
		retired: make(map[string]*grantState),
	}
}

type authError struct{ category, message string }

func (t *tokenTable) authenticate(header string, now time.Time) (tokenKind, *authError) {
	tok, ok := strings.CutPrefix(header, "Bearer ")
	if !ok || tok == "" {
		return 0, &authError{"INVALID_AUTHENTICATION", "Authentication credentials not found. This API supports OAuth 2.0 authentication."}
	}
	if t.private[tok] {
		return privateAppToken, nil
	}
	at, ok := t.access[tok]
	switch {
	case !ok || at.grant.revoked:
		return 0, &authError{"INVALID_AUTHENTICATION", "Authentication credentials not found. This API supports OAuth 2.0 authentication."}
	case !now.Before(at.expiry):
		return 0, &authError{"EXPIRED_AUTHENTICATION", "The OAuth token used to make this call expired."}
	}
	return oauthToken, nil
}

func randomToken(prefix string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// AddPrivateAppToken registers and returns a private-app access token (no expiry).
func (s *Server) AddPrivateAppToken() string {
	tok := randomToken("pat-na1-")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens.private[tok] = true
	return tok
}

// AddOAuthGrant registers an OAuth app (client id and secret) and installs it, returning
// the grant: an access token valid for Options.AccessTokenTTL and a refresh token.
func (s *Server) AddOAuthGrant() Grant {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := &grantState{clientID: randomToken("client-"), clientSecret: randomToken("secret-"), refreshToken: randomToken("rt-")}
	s.tokens.clients[g.clientID] = g.clientSecret
	s.tokens.refresh[g.refreshToken] = g
	access, expiry := s.issueAccessToken(g)
	return Grant{ClientID: g.clientID, ClientSecret: g.clientSecret, AccessToken: access, RefreshToken: g.refreshToken, Expiry: expiry}
}

func (s *Server) issueAccessToken(g *grantState) (string, time.Time) {
	tok := randomToken("at-")
	expiry := s.now().Add(s.opts.AccessTokenTTL)
	s.tokens.access[tok] = accessToken{grant: g, expiry: expiry}
	return tok, expiry
}

// ExpireAccessTokens makes every OAuth access token issued so far expire now, as if their
// lifetime had passed, while clients may still think them fresh.
func (s *Server) ExpireAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for k, at := range s.tokens.access {
		at.expiry = now
		s.tokens.access[k] = at
	}
}

// RevokeRefreshToken revokes the grant of refreshToken: its access tokens stop working and
// refreshing is refused (DELETE /oauth/v1/refresh-tokens/{token} does the same).
func (s *Server) RevokeRefreshToken(refreshToken string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g, ok := s.tokens.refresh[refreshToken]; ok {
		g.revoked = true
	}
}

// serveToken is POST /oauth/v1/token with the refresh_token grant (form encoded, client
// credentials in the body as HubSpot documents).
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.TokenRequests++
	if r.Method != http.MethodPost {
		writeError(w, http.StatusMethodNotAllowed, "VALIDATION_ERROR", "use POST")
		return
	}
	if err := r.ParseForm(); err != nil {
		writeTokenError(w, "invalid_request", "the body is not form encoded")
		return
	}
	f := r.PostForm
	if f.Get("grant_type") != "refresh_token" {
		writeTokenError(w, "unsupported_grant_type", "only the refresh_token grant is supported by hubspottest")
		return
	}
	clientID, secret := f.Get("client_id"), f.Get("client_secret")
	if id, sec, ok := r.BasicAuth(); ok {
		clientID, secret = id, sec
	}
	if want, ok := s.tokens.clients[clientID]; !ok || want != secret {
		writeTokenError(w, "invalid_client", "missing or unknown client id or secret")
		return
	}
	g, ok := s.tokens.refresh[f.Get("refresh_token")]
	if !ok || g.revoked || g.clientID != clientID {
		if old, retired := s.tokens.retired[f.Get("refresh_token")]; retired {
			old.revoked = true // reusing a rotated-away token revokes the grant
		}
		writeTokenError(w, "invalid_grant", "missing or unknown refresh token")
		return
	}
	if s.opts.RotateRefreshTokens {
		delete(s.tokens.refresh, g.refreshToken)
		s.tokens.retired[g.refreshToken] = g
		g.refreshToken = randomToken("rt-")
		s.tokens.refresh[g.refreshToken] = g
	}
	access, _ := s.issueAccessToken(g)
	s.stats.TokenRefreshes++
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token":  access,
		"refresh_token": g.refreshToken,
		"expires_in":    int(s.opts.AccessTokenTTL / time.Second),
		"token_type":    "bearer",
		"token_use":     "access_token",
		"hub_id":        s.PortalID,
	})
}

// writeTokenError answers like HubSpot's token endpoint: HTTP 400 with its status/message
// body, plus the RFC 6749 error fields.
func writeTokenError(w http.ResponseWriter, code, description string) {
	status := "BAD_REFRESH_TOKEN"
	if code == "invalid_client" {
		status = "BAD_CLIENT_ID"
	}
	writeJSON(w, http.StatusBadRequest, map[string]string{
		"status": status, "message": description, "correlationId": correlationID(),
		"error": code, "error_description": description,
	})
}
