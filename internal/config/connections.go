package config

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"go.yaml.in/yaml/v3"

	"github.com/pipewatch/pipewatch/internal/credentials"
	"github.com/pipewatch/pipewatch/internal/secrets"
	"github.com/pipewatch/pipewatch/pipeline"
)

// Kinds are the vendors a connection can be.
var Kinds = []string{"hubspot", "salesforce", "pipedrive", "mailchimp"}

// Connection defaults and limits.
const (
	DefaultSchedule = 15 * time.Minute
	MinSchedule     = time.Minute
	// DefaultFreshnessFactor × schedule is how old the last successful sync may be
	// before alerts computed from the connection's data pause.
	DefaultFreshnessFactor = 3
)

// Connection is one CRM or marketing tool to sync.
type Connection struct {
	Name   string
	Kind   string
	Config ConnectionConfig
	// Credentials are the secret values read from the environment variables that
	// Config.Auth names. They are sealed into connection_credentials and never stored
	// elsewhere; Credentials.String hides them.
	Credentials credentials.Credentials `json:"-"`
}

// ConnectionConfig is stored as connections.config (jsonb). It holds no secret values,
// only the names of the environment variables that hold them.
type ConnectionConfig struct {
	// BaseURL overrides the vendor's API root (sandbox, proxy, test server); "" = default.
	BaseURL  string   `json:"base_url,omitempty"`
	Schedule Duration `json:"schedule"`
	// Freshness is how old the last successful sync may be before alerts pause.
	Freshness Duration          `json:"freshness"`
	Options   map[string]string `json:"options,omitempty"`
	// StageMap overrides the canonical stage of vendor stages by id or name.
	StageMap pipeline.StageMap `json:"stage_map,omitempty"`
	Auth     Auth              `json:"auth"`
}

// Auth names the environment variables holding a connection's secrets. Exactly one of
// TokenEnv and OAuth is set.
type Auth struct {
	TokenEnv string     `json:"token_env,omitempty"`
	OAuth    *OAuthAuth `json:"oauth,omitempty"`
}

// OAuthAuth names the environment variables of an OAuth2 client and its refresh token.
type OAuthAuth struct {
	ClientIDEnv     string `json:"client_id_env"`
	ClientSecretEnv string `json:"client_secret_env"`
	RefreshTokenEnv string `json:"refresh_token_env"`
	// TokenURL overrides the vendor's token endpoint; "" = the vendor default.
	TokenURL string `json:"token_url,omitempty"`
}

var connectionNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

var connectionsSection = Section{
	Key: "connections",
	Decode: func(d *Decoder, n *yaml.Node, path string, f *File) {
		names := map[string]int{}
		for i, item := range d.Sequence(n, path) {
			ipath := Index(path, i)
			c := decodeConnection(d, item, ipath)
			if c.Name != "" {
				if line, dup := names[c.Name]; dup {
					d.Errorf(item, ipath, "duplicate connection name %q (first at line %d)", c.Name, line)
				}
				names[c.Name] = item.Line
			}
			f.Connections = append(f.Connections, c)
		}
	},
	Apply: applyConnections,
}

func decodeConnection(d *Decoder, n *yaml.Node, path string) Connection {
	m := d.Mapping(n, path, "name", "kind", "base_url", "auth", "schedule", "options", "stage_map", "freshness")
	var c Connection
	c.Name = d.String(m.Required("name"))
	if c.Name != "" && !connectionNamePattern.MatchString(c.Name) {
		np, _ := m.Get("name")
		d.Errorf(np, Join(path, "name"), "%q: use letters, digits, '-', '_' and '.' (at most 63), starting with a letter or digit", c.Name)
	}
	kn, kpath := m.Required("kind")
	c.Kind = d.OneOf(kn, kpath, "kind", Kinds...)
	if u, ok := d.URL(m.Get("base_url")); ok {
		c.Config.BaseURL = u
	}
	c.Config.Auth, c.Credentials = decodeAuth(d, m)

	c.Config.Schedule = Duration(DefaultSchedule)
	if sn, spath := m.Get("schedule"); sn != nil {
		v, _ := d.Duration(sn, spath, MinSchedule)
		c.Config.Schedule = Duration(v) // 0 when invalid: freshness is then not judged against it
	}
	c.Config.Freshness = DefaultFreshnessFactor * c.Config.Schedule
	if fn, fpath := m.Get("freshness"); fn != nil {
		if v, ok := d.Duration(fn, fpath, MinSchedule); ok {
			c.Config.Freshness = Duration(v)
			if c.Config.Schedule > 0 && v < time.Duration(c.Config.Schedule) {
				d.Errorf(fn, fpath, "%s is shorter than the schedule (%s): alerts would always be paused", v, c.Config.Schedule)
			}
		}
	}
	c.Config.Options = d.StringMap(m.Get("options"))

	sn, spath := m.Get("stage_map")
	for _, p := range d.Pairs(sn, spath) {
		s, ok := d.scalar(p.Value, Join(spath, p.Key), "a standard stage")
		if !ok {
			continue
		}
		stage, err := pipeline.ParseCanonicalStage(s)
		if err != nil {
			d.Errorf(p.Value, Join(spath, p.Key), "%v", err)
			continue
		}
		if c.Config.StageMap == nil {
			c.Config.StageMap = pipeline.StageMap{}
		}
		c.Config.StageMap[p.Key] = stage
	}
	return c
}

func decodeAuth(d *Decoder, m Fields) (Auth, credentials.Credentials) {
	an, apath := m.Required("auth")
	if an == nil {
		return Auth{}, credentials.Credentials{}
	}
	am := d.Mapping(an, apath, "token_env", "oauth")
	switch {
	case am.Has("token_env") && am.Has("oauth"):
		d.Errorf(an, apath, "set either token_env or oauth, not both")
	case am.Has("token_env"):
		name, value, _ := d.Env(am.Get("token_env"))
		return Auth{TokenEnv: name}, credentials.Credentials{Token: value}
	case am.Has("oauth"):
		on, opath := am.Get("oauth")
		om := d.Mapping(on, opath, "client_id_env", "client_secret_env", "refresh_token_env", "token_url")
		var a OAuthAuth
		var o credentials.OAuth
		a.ClientIDEnv, o.ClientID, _ = d.Env(om.Required("client_id_env"))
		a.ClientSecretEnv, o.ClientSecret, _ = d.Env(om.Required("client_secret_env"))
		a.RefreshTokenEnv, o.RefreshToken, _ = d.Env(om.Required("refresh_token_env"))
		if u, ok := d.URL(om.Get("token_url")); ok {
			a.TokenURL, o.TokenURL = u, u
		}
		return Auth{OAuth: &a}, credentials.Credentials{OAuth: &o}
	default:
		d.Errorf(an, apath, "set token_env (a private-app token or API key) or oauth {client_id_env, client_secret_env, refresh_token_env}")
	}
	return Auth{}, credentials.Credentials{}
}

func applyConnections(ctx context.Context, tx *Tx) error {
	store := &credentials.Store{Box: tx.Box}
	names := make([]string, 0, len(tx.File.Connections))
	for _, c := range tx.File.Connections {
		names = append(names, c.Name)
		id, status, err := upsertConnection(ctx, tx, c)
		if err != nil {
			return err
		}
		changed, err := applyCredentials(ctx, tx, store, id, c.Credentials)
		if err != nil {
			return fmt.Errorf("storing credentials of connection %s: %w", c.Name, err)
		}
		if changed == "" {
			continue
		}
		tx.Changed("credentials", c.Name, changed)
		if status == "needs_reauth" {
			if _, err := tx.Exec(ctx, `UPDATE connections SET status = 'active', status_reason = NULL, updated_at = now() WHERE id = $1`, id); err != nil {
				return fmt.Errorf("reactivating connection %s: %w", c.Name, err)
			}
			tx.Changed("connection", c.Name, "active again (new credentials)")
		}
	}
	rows, err := tx.Query(ctx, `
		UPDATE connections SET status = 'paused', status_reason = 'not in the config file', updated_at = now()
		WHERE NOT (name = ANY($1)) AND status <> 'paused'
		RETURNING name`, names)
	if err != nil {
		return fmt.Errorf("pausing connections that left the file: %w", err)
	}
	paused, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("pausing connections that left the file: %w", err)
	}
	slices.Sort(paused)
	for _, name := range paused {
		tx.Changed("connection", name, "paused (not in the file; its data is kept)")
	}
	return nil
}

// upsertConnection creates or updates the connection named c.Name and returns its id
// and its status before the update. A connection that the file brings back is resumed.
func upsertConnection(ctx context.Context, tx *Tx, c Connection) (int64, string, error) {
	doc, err := json.Marshal(c.Config)
	if err != nil {
		return 0, "", fmt.Errorf("encoding the config of connection %s: %w", c.Name, err)
	}
	var (
		id           int64
		kind, status string
		oldDoc       []byte
	)
	err = tx.QueryRow(ctx, `SELECT id, kind, status, config FROM connections WHERE name = $1 FOR UPDATE`, c.Name).
		Scan(&id, &kind, &status, &oldDoc)
	if errors.Is(err, pgx.ErrNoRows) {
		err = tx.QueryRow(ctx, `INSERT INTO connections (name, kind, config) VALUES ($1, $2, $3) RETURNING id`,
			c.Name, c.Kind, doc).Scan(&id)
		if err != nil {
			return 0, "", fmt.Errorf("creating connection %s: %w", c.Name, err)
		}
		tx.Changed("connection", c.Name, fmt.Sprintf("created (%s, every %s)", c.Kind, c.Config.Schedule))
		return id, "active", nil
	}
	if err != nil {
		return 0, "", fmt.Errorf("reading connection %s: %w", c.Name, err)
	}
	if kind != c.Kind {
		return 0, "", fmt.Errorf("connection %s is a %s connection in the database and its synced data comes from %s; "+
			"a connection's kind can't change: give the %s connection a new name", c.Name, kind, kind, c.Kind)
	}
	var what []string
	if fields := changedFields(oldDoc, doc); len(fields) > 0 {
		what = append(what, "updated ("+strings.Join(fields, ", ")+")")
		if _, err := tx.Exec(ctx, `UPDATE connections SET config = $2, updated_at = now() WHERE id = $1`, id, doc); err != nil {
			return 0, "", fmt.Errorf("updating connection %s: %w", c.Name, err)
		}
		if slices.Contains(fields, "stage_map") {
			n, err := remapStages(ctx, tx, id, c.Config.StageMap)
			if err != nil {
				return 0, "", fmt.Errorf("remapping the stages of connection %s: %w", c.Name, err)
			}
			what = append(what, fmt.Sprintf("%d synced stages remapped now (an override removed from stage_map "+
				"gives way to the vendor default at the next full sync)", n))
		}
	}
	if status == "paused" {
		what = append(what, "resumed")
		if _, err := tx.Exec(ctx, `UPDATE connections SET status = 'active', status_reason = NULL, updated_at = now() WHERE id = $1`, id); err != nil {
			return 0, "", fmt.Errorf("resuming connection %s: %w", c.Name, err)
		}
	}
	if len(what) > 0 {
		tx.Changed("connection", c.Name, strings.Join(what, ", "))
	}
	return id, status, nil
}

// changedFields names the top-level keys whose values differ between two JSON objects.
func changedFields(oldDoc, newDoc []byte) []string {
	var o, n map[string]any
	if json.Unmarshal(oldDoc, &o) != nil || json.Unmarshal(newDoc, &n) != nil {
		return []string{"config"}
	}
	var fields []string
	for _, k := range slices.Sorted(maps.Keys(union(o, n))) {
		if !reflect.DeepEqual(o[k], n[k]) {
			fields = append(fields, k)
		}
	}
	return fields
}

func union(a, b map[string]any) map[string]any {
	u := maps.Clone(a)
	if u == nil {
		u = map[string]any{}
	}
	maps.Copy(u, b)
	return u
}

// applyCredentials seals want (read from the environment) for connection id unless the
// stored credentials already hold it, and returns what changed ("" for nothing).
//
// OAuth refresh tokens rotate: the worker saves each rotated grant over the one apply
// stored. So apply remembers (sealed, in applied_refresh_token) the refresh token it last
// read from the environment and replaces the stored grant only when the environment's
// token differs from that one, i.e. when a person put a new grant in the environment.
// Re-applying with the same environment keeps the rotated grant. Client id, secret and
// token URL never rotate and are compared with the stored values directly.
func applyCredentials(ctx context.Context, tx *Tx, store *credentials.Store, id int64, want credentials.Credentials) (string, error) {
	stored, err := store.Load(ctx, tx, id)
	switch {
	case errors.Is(err, credentials.ErrNotFound):
		return "stored", saveCredentials(ctx, tx, store, id, want)
	case errors.Is(err, secrets.ErrWrongKey):
		return "re-sealed with the current " + secrets.EnvKey + " (the stored ones could not be opened with it)",
			saveCredentials(ctx, tx, store, id, want)
	case err != nil:
		return "", err
	}
	if want.OAuth == nil {
		if stored.OAuth == nil && stored.Token == want.Token {
			return "", nil
		}
		return "updated (token)", saveCredentials(ctx, tx, store, id, want)
	}
	if stored.OAuth == nil {
		return "updated (now oauth)", saveCredentials(ctx, tx, store, id, want)
	}
	applied, err := appliedRefreshToken(ctx, tx, store.Box, id)
	if err != nil {
		return "", err
	}
	next := *stored.OAuth
	var fields []string
	if next.ClientID != want.OAuth.ClientID {
		next.ClientID = want.OAuth.ClientID
		fields = append(fields, "client_id")
	}
	if next.ClientSecret != want.OAuth.ClientSecret {
		next.ClientSecret = want.OAuth.ClientSecret
		fields = append(fields, "client_secret")
	}
	if next.TokenURL != want.OAuth.TokenURL {
		next.TokenURL = want.OAuth.TokenURL
		fields = append(fields, "token_url")
	}
	envChanged := applied != want.OAuth.RefreshToken
	if envChanged && next.RefreshToken != want.OAuth.RefreshToken {
		next.RefreshToken = want.OAuth.RefreshToken
		next.AccessToken, next.Expiry, next.Extra = "", time.Time{}, nil
		fields = append(fields, "refresh_token")
	}
	if len(fields) > 0 {
		if err := store.Save(ctx, tx, id, credentials.Credentials{OAuth: &next}); err != nil {
			return "", err
		}
	}
	if envChanged {
		if err := saveAppliedRefreshToken(ctx, tx, store.Box, id, want.OAuth.RefreshToken); err != nil {
			return "", err
		}
	}
	if len(fields) == 0 {
		return "", nil
	}
	return "updated (" + strings.Join(fields, ", ") + ")", nil
}

func saveCredentials(ctx context.Context, tx *Tx, store *credentials.Store, id int64, c credentials.Credentials) error {
	if err := store.Save(ctx, tx, id, c); err != nil {
		return err
	}
	refresh := ""
	if c.OAuth != nil {
		refresh = c.OAuth.RefreshToken
	}
	return saveAppliedRefreshToken(ctx, tx, store.Box, id, refresh)
}

func appliedAdditionalData(id int64) []byte { return fmt.Appendf(nil, "applied_refresh_token:%d", id) }

// appliedRefreshToken opens the refresh token apply last read from the environment
// ("" when none was recorded or it can't be opened).
func appliedRefreshToken(ctx context.Context, tx *Tx, box *secrets.Box, id int64) (string, error) {
	var sealed []byte
	err := tx.QueryRow(ctx, `SELECT applied_refresh_token FROM connection_credentials WHERE connection_id = $1`, id).Scan(&sealed)
	if err != nil {
		return "", fmt.Errorf("reading the applied refresh token: %w", err)
	}
	if sealed == nil {
		return "", nil
	}
	plain, err := box.Open(sealed, appliedAdditionalData(id))
	if err != nil {
		return "", nil // unreadable means unknown: the environment wins
	}
	return string(plain), nil
}

func saveAppliedRefreshToken(ctx context.Context, tx *Tx, box *secrets.Box, id int64, token string) error {
	var sealed []byte
	if token != "" {
		var err error
		if sealed, err = box.Seal([]byte(token), appliedAdditionalData(id)); err != nil {
			return fmt.Errorf("sealing the applied refresh token: %w", err)
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE connection_credentials SET applied_refresh_token = $2 WHERE connection_id = $1`, id, sealed); err != nil {
		return fmt.Errorf("recording the applied refresh token: %w", err)
	}
	return nil
}

// remapStages applies m to the stages already synced for connection id, so a stage_map
// change shows in reports and rules at once instead of at the next sync. It returns how
// many stages changed.
func remapStages(ctx context.Context, tx *Tx, id int64, m pipeline.StageMap) (int, error) {
	rows, err := tx.Query(ctx, `SELECT id, external_id, coalesce(name, ''), is_closed, is_won, coalesce(canonical_stage, '')
		FROM stages WHERE connection_id = $1`, id)
	if err != nil {
		return 0, err
	}
	type remap struct {
		id        int64
		canonical pipeline.CanonicalStage
	}
	var changes []remap
	var (
		stageID int64
		s       pipeline.Stage
	)
	_, err = pgx.ForEachRow(rows, []any{&stageID, &s.ExternalID, &s.Name, &s.IsClosed, &s.IsWon, &s.Canonical}, func() error {
		if c := m.Resolve(s); c != s.Canonical {
			changes = append(changes, remap{stageID, c})
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, ch := range changes {
		if _, err := tx.Exec(ctx, `UPDATE stages SET canonical_stage = NULLIF($2, '') WHERE id = $1`, ch.id, string(ch.canonical)); err != nil {
			return 0, err
		}
	}
	return len(changes), nil
}
