package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pipewatch/pipewatch/pipeline"
)

// Connection statuses (connections.status).
const (
	StatusActive      = "active"
	StatusPaused      = "paused"
	StatusNeedsReauth = "needs_reauth"
	StatusError       = "error"
)

// DefaultSchedule is how often a connection whose config names no schedule syncs.
const DefaultSchedule = 15 * time.Minute

// Connection is a connections row.
type Connection struct {
	ID           int64
	Name         string
	Kind         string
	Status       string
	StatusReason string
	LastSyncedAt time.Time
	Config       ConnectionConfig
}

// ConnectionConfig is connections.config: the connection's entry of the config file
// without its name and kind.
type ConnectionConfig struct {
	// BaseURL overrides the vendor's API root ("" = the vendor default).
	BaseURL string `json:"base_url,omitempty"`
	// Schedule is how often incremental syncs run, as a Go duration ("15m").
	Schedule string `json:"schedule,omitempty"`
	// Options are vendor specific.
	Options map[string]string `json:"options,omitempty"`
	// StageMap overrides canonical stages by vendor stage id or name.
	StageMap pipeline.StageMap `json:"stage_map,omitempty"`
	// Raw is the whole document, for connectors that read keys of their own.
	Raw json.RawMessage `json:"-"`
}

// SyncInterval is the parsed Schedule (DefaultSchedule when unset).
func (c ConnectionConfig) SyncInterval() (time.Duration, error) {
	if c.Schedule == "" {
		return DefaultSchedule, nil
	}
	d, err := time.ParseDuration(c.Schedule)
	if err != nil || d < time.Minute {
		return 0, fmt.Errorf("schedule %q is not a duration of at least one minute (like 15m or 1h)", c.Schedule)
	}
	return d, nil
}

func parseConfig(raw []byte) (ConnectionConfig, error) {
	var c ConnectionConfig
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &c); err != nil {
			return ConnectionConfig{}, fmt.Errorf("decoding connection config: %w", err)
		}
	}
	for key, stage := range c.StageMap {
		if _, err := pipeline.ParseCanonicalStage(string(stage)); err != nil {
			return ConnectionConfig{}, fmt.Errorf("stage_map[%q]: %w", key, err)
		}
	}
	c.Raw = raw
	return c, nil
}

// ErrConnectionNotFound is returned for a connection id or name with no row.
var ErrConnectionNotFound = errors.New("no such connection (add it to the config file and run `pipewatch apply`)")

const connectionColumns = `id, name, kind, status, coalesce(status_reason, ''), last_synced_at, config`

func scanConnection(row pgx.Row) (Connection, error) {
	var (
		c      Connection
		synced *time.Time
		raw    []byte
	)
	if err := row.Scan(&c.ID, &c.Name, &c.Kind, &c.Status, &c.StatusReason, &synced, &raw); err != nil {
		return Connection{}, err
	}
	if synced != nil {
		c.LastSyncedAt = *synced
	}
	cfg, err := parseConfig(raw)
	if err != nil {
		return Connection{}, fmt.Errorf("connection %q: %w", c.Name, err)
	}
	c.Config = cfg
	return c, nil
}

// LoadConnection returns connection id.
func LoadConnection(ctx context.Context, db Querier, id int64) (Connection, error) {
	c, err := scanConnection(db.QueryRow(ctx, `SELECT `+connectionColumns+` FROM connections WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Connection{}, fmt.Errorf("connection %d: %w", id, ErrConnectionNotFound)
	}
	if err != nil {
		return Connection{}, fmt.Errorf("reading connection %d: %w", id, err)
	}
	return c, nil
}

// LoadConnectionByName returns the connection called name.
func LoadConnectionByName(ctx context.Context, db Querier, name string) (Connection, error) {
	c, err := scanConnection(db.QueryRow(ctx, `SELECT `+connectionColumns+` FROM connections WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return Connection{}, fmt.Errorf("connection %q: %w", name, ErrConnectionNotFound)
	}
	if err != nil {
		return Connection{}, fmt.Errorf("reading connection %q: %w", name, err)
	}
	return c, nil
}

// ConnectionsByStatus returns the connections in status, by name.
func ConnectionsByStatus(ctx context.Context, db Querier, status string) ([]Connection, error) {
	rows, err := db.Query(ctx, `SELECT `+connectionColumns+` FROM connections WHERE status = $1 ORDER BY name`, status)
	if err != nil {
		return nil, fmt.Errorf("listing %s connections: %w", status, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Connection, error) { return scanConnection(r) })
	if err != nil {
		return nil, fmt.Errorf("listing %s connections: %w", status, err)
	}
	return out, nil
}

// SetConnectionStatus sets a connection's status and the reason revenue ops read.
func SetConnectionStatus(ctx context.Context, db Querier, id int64, status, reason string, at time.Time) error {
	var r any
	if reason != "" {
		r = reason
	}
	if _, err := db.Exec(ctx, `UPDATE connections SET status = $2, status_reason = $3, updated_at = $4 WHERE id = $1`,
		id, status, r, at); err != nil {
		return fmt.Errorf("setting connection %d to %s: %w", id, status, err)
	}
	return nil
}

// MarkSynced records a successful sync of connection id at at, after the run's end is
// recorded. A connection waiting for re-authorization is active again: the sync just proved
// its credentials. A connection in error is active again once no stream's latest run failed.
func MarkSynced(ctx context.Context, db Querier, id int64, at time.Time) error {
	if _, err := db.Exec(ctx, `WITH latest AS (
			SELECT DISTINCT ON (stream) status FROM sync_runs WHERE connection_id = $1 ORDER BY stream, started_at DESC, id DESC
		), healed AS (
			SELECT c.status = 'needs_reauth'
			       OR (c.status = 'error' AND NOT EXISTS (SELECT 1 FROM latest WHERE latest.status = 'failed')) AS ok
			FROM connections c WHERE c.id = $1
		)
		UPDATE connections SET last_synced_at = $2,
			status = CASE WHEN healed.ok THEN 'active' ELSE status END,
			status_reason = CASE WHEN healed.ok THEN NULL ELSE status_reason END,
			updated_at = CASE WHEN healed.ok THEN $2 ELSE updated_at END
		FROM healed WHERE id = $1`, id, at); err != nil {
		return fmt.Errorf("recording the sync of connection %d: %w", id, err)
	}
	return nil
}
