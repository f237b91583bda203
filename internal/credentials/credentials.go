// Package credentials stores each connection's secrets sealed with PIPEWATCH_SECRET_KEY
// in connection_credentials, and serializes OAuth refreshes per connection.
package credentials

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pipewatch/pipewatch/internal/secrets"
)

// Credentials are a connection's secrets. Exactly one of Token and OAuth is set.
type Credentials struct {
	// Token is a static token: a HubSpot private-app token, a Pipedrive API token, a
	// Mailchimp API key.
	Token string `json:"token,omitempty"`
	// OAuth holds the client and the current grant for OAuth2 connections.
	OAuth *OAuth `json:"oauth,omitempty"`
}

// OAuth is an OAuth2 client and its current tokens. Refreshes rotate the tokens; the
// rotated ones are saved before they are used.
type OAuth struct {
	ClientID     string    `json:"client_id"`
	ClientSecret string    `json:"client_secret"`
	TokenURL     string    `json:"token_url,omitempty"`
	RefreshToken string    `json:"refresh_token"`
	AccessToken  string    `json:"access_token,omitempty"`
	Expiry       time.Time `json:"expiry,omitzero"`
	// Extra holds vendor fields of the token response worth keeping (Pipedrive's
	// api_domain, Salesforce's instance_url).
	Extra map[string]string `json:"extra,omitempty"`
}

// String never prints secrets, so credentials can't leak through a log line or an error.
func (c Credentials) String() string {
	switch {
	case c.OAuth != nil:
		return "credentials{oauth}"
	case c.Token != "":
		return "credentials{token}"
	}
	return "credentials{}"
}

// ErrNotFound is returned when a connection has no stored credentials.
var ErrNotFound = errors.New("no credentials stored for this connection: run `pipewatch apply`")

// DB is what the store needs: a pool or a transaction.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Store seals and opens credentials.
type Store struct {
	Box *secrets.Box
}

// Save seals c for connection id and stores it, replacing what was there.
func (s *Store) Save(ctx context.Context, db DB, connectionID int64, c Credentials) error {
	if s.Box == nil {
		return secrets.ErrNoKey
	}
	plain, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encoding credentials: %w", err)
	}
	sealed, err := s.Box.Seal(plain, additionalData(connectionID))
	if err != nil {
		return fmt.Errorf("sealing credentials: %w", err)
	}
	_, err = db.Exec(ctx, `
		INSERT INTO connection_credentials (connection_id, ciphertext, updated_at) VALUES ($1, $2, now())
		ON CONFLICT (connection_id) DO UPDATE SET ciphertext = EXCLUDED.ciphertext, updated_at = now()`,
		connectionID, sealed)
	if err != nil {
		return fmt.Errorf("storing credentials: %w", err)
	}
	return nil
}

// Load opens the credentials of connection id.
func (s *Store) Load(ctx context.Context, db DB, connectionID int64) (Credentials, error) {
	return s.load(ctx, db, connectionID, `SELECT ciphertext FROM connection_credentials WHERE connection_id = $1`)
}

// LoadForUpdate opens the credentials of connection id and locks their row until the
// transaction ends, so that only one process refreshes a connection's OAuth grant at a
// time (vendors that rotate refresh tokens revoke the grant when an old one is reused).
// Callers re-check the loaded tokens: another process may have refreshed meanwhile.
func (s *Store) LoadForUpdate(ctx context.Context, tx pgx.Tx, connectionID int64) (Credentials, error) {
	return s.load(ctx, tx, connectionID, `SELECT ciphertext FROM connection_credentials WHERE connection_id = $1 FOR UPDATE`)
}

func (s *Store) load(ctx context.Context, db DB, connectionID int64, query string) (Credentials, error) {
	if s.Box == nil {
		return Credentials{}, secrets.ErrNoKey
	}
	var sealed []byte
	err := db.QueryRow(ctx, query, connectionID).Scan(&sealed)
	if errors.Is(err, pgx.ErrNoRows) {
		return Credentials{}, ErrNotFound
	}
	if err != nil {
		return Credentials{}, fmt.Errorf("reading credentials: %w", err)
	}
	plain, err := s.Box.Open(sealed, additionalData(connectionID))
	if err != nil {
		return Credentials{}, err
	}
	var c Credentials
	if err := json.Unmarshal(plain, &c); err != nil {
		return Credentials{}, fmt.Errorf("decoding credentials: %w", err)
	}
	return c, nil
}

func additionalData(connectionID int64) []byte {
	return fmt.Appendf(nil, "connection_credentials:%d", connectionID)
}
