package web_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/dbtest"
	"github.com/pipewatch/pipewatch/internal/web"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

func get(t *testing.T, h http.Handler, path, token string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func TestServer(t *testing.T) {
	t.Parallel()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))

	type testBundle struct {
		srv   *web.Server
		ready error
	}
	setup := func(t *testing.T, adminToken string) *testBundle {
		t.Helper()
		b := &testBundle{}
		b.srv = web.New(web.Config{Logger: logger, AdminToken: adminToken, Ready: func(context.Context) error { return b.ready }})
		b.srv.HandleAdmin("GET /api/v1/secret-things", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "admin only")
		}))
		return b
	}

	t.Run("HealthAndReadiness", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "")
		code, body := get(t, b.srv.Handler(), "/healthz", "")
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, "ok\n", body)

		code, body = get(t, b.srv.Handler(), "/readyz", "")
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, "ready\n", body)

		b.ready = errors.New("database migrations are pending: run `pipewatch migrate`")
		code, body = get(t, b.srv.Handler(), "/readyz", "")
		require.Equal(t, http.StatusServiceUnavailable, code)
		require.Equal(t, "not ready: database migrations are pending: run `pipewatch migrate`\n", body)
		code, _ = get(t, b.srv.Handler(), "/healthz", "")
		require.Equal(t, http.StatusOK, code, "liveness doesn't depend on the database")
	})

	t.Run("Metrics", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "")
		get(t, b.srv.Handler(), "/healthz", "")
		code, body := get(t, b.srv.Handler(), "/metrics", "")
		require.Equal(t, http.StatusOK, code)
		require.Contains(t, body, "go_goroutines ")
		require.Contains(t, body, `pipewatch_http_requests_total{code="200",route="GET /healthz"} 1`)
	})

	t.Run("AdminRoutesNeedTheToken", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "admin-s3cret")
		code, body := get(t, b.srv.Handler(), "/api/v1/secret-things", "")
		require.Equal(t, http.StatusUnauthorized, code)
		require.Equal(t, "unauthorized: send Authorization: Bearer <PIPEWATCH_ADMIN_TOKEN>\n", body)
		code, _ = get(t, b.srv.Handler(), "/api/v1/secret-things", "wrong")
		require.Equal(t, http.StatusUnauthorized, code)
		code, body = get(t, b.srv.Handler(), "/api/v1/secret-things", "admin-s3cret")
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, "admin only", body)
	})

	t.Run("AdminRoutesClosedWithoutAToken", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "")
		code, body := get(t, b.srv.Handler(), "/api/v1/secret-things", "")
		require.Equal(t, http.StatusServiceUnavailable, code)
		require.Equal(t, "admin API disabled: set PIPEWATCH_ADMIN_TOKEN\n", body)
	})

	t.Run("ServeStopsGracefully", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "")
		slow := make(chan struct{})
		b.srv.Handle("GET /slow", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			close(slow)
			time.Sleep(200 * time.Millisecond)
			_, _ = io.WriteString(w, "finished")
		}))
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- b.srv.Serve(ctx, ln) }()

		resp := make(chan string, 1)
		go func() {
			r, err := http.Get("http://" + ln.Addr().String() + "/slow")
			if err != nil {
				resp <- err.Error()
				return
			}
			defer r.Body.Close()
			body, _ := io.ReadAll(r.Body)
			resp <- string(body)
		}()
		<-slow
		cancel()
		require.Equal(t, "finished", <-resp, "an in-flight request completes during shutdown")
		require.NoError(t, <-done)
		_, err = http.Get("http://" + ln.Addr().String() + "/healthz")
		require.Error(t, err)
		http.DefaultClient.CloseIdleConnections()
	})

	t.Run("AddressInUse", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		srv := web.New(web.Config{Addr: ln.Addr().String(), Logger: logger})
		err = srv.Run(context.Background())
		require.Error(t, err)
		require.True(t, strings.HasPrefix(err.Error(), "listening on "+ln.Addr().String()+" (set PIPEWATCH_HTTP_ADDR to change it): "), err.Error())
	})
}
