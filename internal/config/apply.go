package config

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pipewatch/pipewatch/internal/secrets"
)

// Beginner starts transactions: a *pgxpool.Pool, or a pgx.Tx (which nests a savepoint).
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Querier reads: a pool, a connection or a transaction.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// applyLockKey serializes concurrent applies so two never interleave their writes.
const applyLockKey = int64(0x70776170706c79) // "pwapply"

// Tx is what a section's Apply works with: the apply transaction, the validated file,
// the key that seals credentials, and the summary of changes.
type Tx struct {
	pgx.Tx
	File    *File
	Box     *secrets.Box
	summary *Summary
}

// Changed records one change for the summary, e.g. Changed("connection", "hubspot-main", "created").
func (t *Tx) Changed(kind, name, what string) {
	t.summary.Changes = append(t.summary.Changes, Change{Kind: kind, Name: name, What: what})
}

// PutSetting stores value (as JSON) under key in the settings table, and records a
// change only when the stored document differs.
func (t *Tx) PutSetting(ctx context.Context, key string, value any) error {
	doc, err := json.Marshal(value)
	if err != nil {
		return fmt.Errorf("encoding setting %s: %w", key, err)
	}
	tag, err := t.Exec(ctx, `
		INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, now())
		ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
		WHERE settings.value IS DISTINCT FROM EXCLUDED.value`, key, doc)
	if err != nil {
		return fmt.Errorf("storing setting %s: %w", key, err)
	}
	if tag.RowsAffected() > 0 {
		t.Changed("settings", key, "updated")
	}
	return nil
}

// ErrSettingNotFound is returned by LoadSetting when no document is stored under a key.
var ErrSettingNotFound = errors.New("setting not found: run `pipewatch apply`")

// LoadSetting decodes the settings document stored under key into v.
func LoadSetting(ctx context.Context, db Querier, key string, v any) error {
	var doc []byte
	err := db.QueryRow(ctx, `SELECT value FROM settings WHERE key = $1`, key).Scan(&doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("loading setting %s: %w", key, ErrSettingNotFound)
	}
	if err != nil {
		return fmt.Errorf("loading setting %s: %w", key, err)
	}
	if err := json.Unmarshal(doc, v); err != nil {
		return fmt.Errorf("decoding setting %s: %w", key, err)
	}
	return nil
}

// Change is one thing Apply changed.
type Change struct {
	Kind string // connection, credentials, target, settings …
	Name string
	What string // created, updated (schedule, options), paused (not in the file) …
}

// Summary lists what Apply changed. It never holds secret values.
type Summary struct {
	Changes []Change
}

// WriteTo prints one line per change and a closing line.
func (s *Summary) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	for _, c := range s.Changes {
		fmt.Fprintf(&b, "%s %s: %s\n", c.Kind, c.Name, c.What)
	}
	switch n := len(s.Changes); n {
	case 0:
		b.WriteString("no changes: the database already matches the file\n")
	case 1:
		b.WriteString("applied 1 change\n")
	default:
		fmt.Fprintf(&b, "applied %d changes\n", n)
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

// Apply writes f to the database in one transaction: every section in order, or
// nothing when any fails. box seals credentials; it may be nil only when the file has
// no connections. Concurrent applies wait for each other.
func Apply(ctx context.Context, db Beginner, f *File, box *secrets.Box) (*Summary, error) {
	if box == nil && len(f.Connections) > 0 {
		return nil, fmt.Errorf("storing the credentials of %d connection(s): %w", len(f.Connections), secrets.ErrNoKey)
	}
	summary := &Summary{}
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, applyLockKey); err != nil {
			return fmt.Errorf("taking the apply lock: %w", err)
		}
		t := &Tx{Tx: tx, File: f, Box: box, summary: summary}
		for _, s := range sections {
			if err := s.Apply(ctx, t); err != nil {
				return fmt.Errorf("applying %s: %w", s.Key, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return summary, nil
}
