package credentials

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/jackc/pgx/v5"
	"golang.org/x/oauth2"
)

// Defaults of OAuthSourceConfig.
const (
	DefaultEarlyExpiry    = time.Minute
	DefaultRefreshTimeout = 30 * time.Second
)

// Beginner starts transactions: a *pgxpool.Pool (or a pgx.Tx, whose Begin is a savepoint).
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// OAuthSourceConfig configures an OAuthTokenSource.
type OAuthSourceConfig struct {
	DB           Beginner
	Store        *Store
	ConnectionID int64
	// Endpoint is the vendor's token endpoint, used when the stored credentials name no
	// TokenURL. Set its AuthStyle: auto-detection costs a second request on every failure.
	Endpoint oauth2.Endpoint
	// HTTPClient sends token requests (default: a pooled client with a 30 s timeout).
	HTTPClient *http.Client
	Logger     *slog.Logger
	// EarlyExpiry refreshes a token this long before it expires (default 1 min).
	EarlyExpiry time.Duration
	// Timeout bounds one refresh, waiting for the row lock included (default 30 s).
	Timeout time.Duration
	NowFunc func() time.Time
}

// OAuthTokenSource is an oauth2.TokenSource over a connection's stored OAuth grant. It
// hands out the stored access token while it is fresh; to refresh it locks the credentials
// row (LoadForUpdate), re-checks (another process may have refreshed meanwhile), refreshes
// through x/oauth2 and saves the rotated tokens sealed before releasing the lock, so two
// processes never spend one refresh token. Refreshes run on a detached context: a job's
// cancellation must not lose a rotated refresh token halfway. It is safe for concurrent use
// and meant to live as long as the connection's HTTP client.
type OAuthTokenSource struct {
	cfg OAuthSourceConfig

	mu  sync.Mutex
	tok *oauth2.Token
}

// NewOAuthTokenSource returns a token source for cfg.ConnectionID.
func NewOAuthTokenSource(cfg OAuthSourceConfig) (*OAuthTokenSource, error) {
	if cfg.DB == nil || cfg.Store == nil {
		return nil, errors.New("creating an OAuth token source: DB and Store are required")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: DefaultRefreshTimeout, Transport: cleanhttp.DefaultPooledTransport()}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.EarlyExpiry <= 0 {
		cfg.EarlyExpiry = DefaultEarlyExpiry
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultRefreshTimeout
	}
	if cfg.NowFunc == nil {
		cfg.NowFunc = time.Now
	}
	return &OAuthTokenSource{cfg: cfg}, nil
}

// Token returns a fresh access token, refreshing the grant when the current one is about
// to expire. A refused refresh returns the *oauth2.RetrieveError of the token endpoint.
func (s *OAuthTokenSource) Token() (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fresh(s.tok) {
		return s.tok, nil
	}
	return s.refreshLocked("")
}

// RefreshRejected replaces rejected, an access token the vendor refused before its expiry.
// When another caller already replaced it, the newer token is returned without a refresh.
func (s *OAuthTokenSource) RefreshRejected(rejected *oauth2.Token) (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fresh(s.tok) && s.tok.AccessToken != rejected.AccessToken {
		return s.tok, nil
	}
	return s.refreshLocked(rejected.AccessToken)
}

func (s *OAuthTokenSource) fresh(tok *oauth2.Token) bool {
	if tok == nil || tok.AccessToken == "" {
		return false
	}
	return tok.Expiry.IsZero() || s.cfg.NowFunc().Add(s.cfg.EarlyExpiry).Before(tok.Expiry)
}

// refreshLocked loads the stored grant under its row lock and refreshes it unless the
// stored access token is fresh and is not the rejected one.
func (s *OAuthTokenSource) refreshLocked(rejected string) (*oauth2.Token, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
	defer cancel()
	log := s.cfg.Logger.With("connection_id", s.cfg.ConnectionID)

	tx, err := s.cfg.DB.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("beginning the credentials transaction: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	creds, err := s.cfg.Store.LoadForUpdate(ctx, tx, s.cfg.ConnectionID)
	if err != nil {
		return nil, fmt.Errorf("loading the OAuth grant of connection %d: %w", s.cfg.ConnectionID, err)
	}
	grant := creds.OAuth
	if grant == nil {
		return nil, fmt.Errorf("connection %d has a static token, not an OAuth grant", s.cfg.ConnectionID)
	}
	stored := &oauth2.Token{AccessToken: grant.AccessToken, TokenType: "Bearer", RefreshToken: grant.RefreshToken, Expiry: grant.Expiry}
	if len(grant.Extra) > 0 {
		extra := make(map[string]any, len(grant.Extra))
		for k, v := range grant.Extra {
			extra[k] = v
		}
		stored = stored.WithExtra(extra)
	}
	if stored.AccessToken != rejected && s.fresh(stored) {
		if err := tx.Commit(ctx); err != nil {
			return nil, fmt.Errorf("committing the credentials transaction: %w", err)
		}
		s.tok = stored
		return stored, nil
	}

	endpoint := s.cfg.Endpoint
	if grant.TokenURL != "" {
		endpoint.TokenURL = grant.TokenURL
	}
	conf := oauth2.Config{ClientID: grant.ClientID, ClientSecret: grant.ClientSecret, Endpoint: endpoint}
	refreshCtx := context.WithValue(ctx, oauth2.HTTPClient, s.cfg.HTTPClient)
	tok, err := conf.TokenSource(refreshCtx, &oauth2.Token{RefreshToken: grant.RefreshToken}).Token()
	if err != nil {
		log.WarnContext(ctx, "credentials: OAuth refresh refused", "error", describeRefreshError(err))
		return nil, err
	}
	grant.AccessToken, grant.Expiry = tok.AccessToken, tok.Expiry
	for _, k := range keptTokenFields {
		if v, ok := tok.Extra(k).(string); ok && v != "" {
			if grant.Extra == nil {
				grant.Extra = make(map[string]string)
			}
			grant.Extra[k] = v
		}
	}
	if tok.RefreshToken != "" {
		grant.RefreshToken = tok.RefreshToken
	}
	tok.RefreshToken = grant.RefreshToken

	if err := s.save(ctx, tx, creds); err != nil {
		// The vendor may have rotated the refresh token: try once more outside the lock
		// rather than lose it, and keep using the new token in this process either way.
		log.ErrorContext(ctx, "credentials: saving refreshed OAuth tokens", "error", err)
		_ = tx.Rollback(ctx) // release the row lock, or the second attempt waits on it
		if err := s.saveAgain(ctx, creds); err != nil {
			log.ErrorContext(ctx, "credentials: saving refreshed OAuth tokens failed twice; the connection may need re-authorization", "error", err)
		}
	}
	log.InfoContext(ctx, "credentials: refreshed OAuth token", "expiry", tok.Expiry)
	s.tok = tok
	return tok, nil
}

func (s *OAuthTokenSource) save(ctx context.Context, tx pgx.Tx, creds Credentials) error {
	if err := s.cfg.Store.Save(ctx, tx, s.cfg.ConnectionID, creds); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("committing refreshed credentials: %w", err)
	}
	return nil
}

func (s *OAuthTokenSource) saveAgain(ctx context.Context, creds Credentials) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.Timeout)
	defer cancel()
	tx, err := s.cfg.DB.Begin(ctx)
	if err != nil {
		return fmt.Errorf("beginning the credentials transaction: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	return s.save(ctx, tx, creds)
}

// keptTokenFields are the vendor fields of token responses saved with the grant (and set on
// the tokens handed out, see oauth2.Token.Extra): where the account's API lives.
var keptTokenFields = []string{"api_domain", "instance_url"} // Pipedrive, Salesforce

// describeRefreshError names a refresh failure without the token endpoint's body.
func describeRefreshError(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		if re.ErrorCode != "" {
			return fmt.Sprintf("HTTP %d %s", re.Response.StatusCode, re.ErrorCode)
		}
		return fmt.Sprintf("HTTP %d", re.Response.StatusCode)
	}
	return err.Error()
}
