// Package web is pipewatch's HTTP server: health and readiness probes, Prometheus
// metrics, and the routes other parts add (Slack interactivity, the JSON API, the OAuth
// callback, console pages).
//
// # Adding a route
//
// Routes are registered on a *Server before Run, with the patterns of net/http's
// ServeMux ("METHOD /path/{name}"):
//
//	srv.Handle("POST /slack/interactions", slackHandler)      // public (verifies its own signature)
//	srv.HandleAdmin("GET /api/v1/alerts", alertsHandler)     // needs PIPEWATCH_ADMIN_TOKEN
//
// The worker wires them in cmd/pipewatch/worker.go (one line per route); handlers
// live in the package that owns the feature and get what they need as fields.
// Admin routes require "Authorization: Bearer <PIPEWATCH_ADMIN_TOKEN>" and answer 503
// when no token is configured, so an unset token never opens them.
package web

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultAddr is where the server listens when PIPEWATCH_HTTP_ADDR is unset.
const DefaultAddr = "127.0.0.1:8080"

// shutdownTimeout bounds how long in-flight requests may take once Run's context ends.
const shutdownTimeout = 10 * time.Second

// Config configures a Server.
type Config struct {
	// Addr is host:port to listen on (DefaultAddr when empty).
	Addr   string
	Logger *slog.Logger
	// AdminToken guards HandleAdmin routes; empty disables them.
	AdminToken string
	// Ready reports whether the process can do its work (database reachable, schema
	// current); /readyz answers 503 with its error otherwise. Nil means always ready.
	Ready func(ctx context.Context) error
	// Registry is served at /metrics. Nil means a new registry with the Go runtime and
	// process collectors.
	Registry *prometheus.Registry
}

// Server is the HTTP server. Register routes, then Run it.
type Server struct {
	cfg      Config
	mux      *http.ServeMux
	requests *prometheus.CounterVec
}

// New returns a Server with /healthz, /readyz and /metrics.
func New(cfg Config) *Server {
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
		cfg.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	s := &Server{
		cfg: cfg,
		mux: http.NewServeMux(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pipewatch_http_requests_total",
			Help: "HTTP requests served, by route pattern and status code.",
		}, []string{"route", "code"}),
	}
	cfg.Registry.MustRegister(s.requests)
	s.Handle("GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "ok")
	}))
	s.Handle("GET /readyz", http.HandlerFunc(s.ready))
	s.Handle("GET /metrics", promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{Registry: cfg.Registry}))
	return s
}

// Registry is the registry served at /metrics; register collectors on it.
func (s *Server) Registry() *prometheus.Registry { return s.cfg.Registry }

// Handle registers a public route.
func (s *Server) Handle(pattern string, h http.Handler) {
	s.mux.Handle(pattern, s.instrument(pattern, h))
}

// HandleAdmin registers a route that requires the admin bearer token.
func (s *Server) HandleAdmin(pattern string, h http.Handler) {
	s.Handle(pattern, s.requireAdmin(h))
}

// Handler is the server's handler (for tests and for embedding in another server).
func (s *Server) Handler() http.Handler { return s.mux }

// Run listens on the configured address and serves until ctx ends, then shuts down
// gracefully: it stops accepting and waits for in-flight requests (at most 10s).
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listening on %s (set PIPEWATCH_HTTP_ADDR to change it): %w", s.cfg.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve is Run on a listener the caller opened.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.cfg.Logger.InfoContext(ctx, "web: listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("serving HTTP: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutting down HTTP server: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving HTTP: %w", err)
	}
	s.cfg.Logger.InfoContext(ctx, "web: stopped")
	return nil
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Ready == nil {
		writeText(w, http.StatusOK, "ready")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := s.cfg.Ready(ctx); err != nil {
		s.cfg.Logger.WarnContext(ctx, "web: not ready", "error", err)
		writeText(w, http.StatusServiceUnavailable, "not ready: "+err.Error())
		return
	}
	writeText(w, http.StatusOK, "ready")
}

func (s *Server) requireAdmin(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.AdminToken == "" {
			writeText(w, http.StatusServiceUnavailable, "admin API disabled: set PIPEWATCH_ADMIN_TOKEN")
			return
		}
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(token), []byte(s.cfg.AdminToken)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="pipewatch"`)
			writeText(w, http.StatusUnauthorized, "unauthorized: send Authorization: Bearer <PIPEWATCH_ADMIN_TOKEN>")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// instrument counts requests and logs failures and slow ones.
func (s *Server) instrument(pattern string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		s.requests.WithLabelValues(pattern, fmt.Sprint(rec.status)).Inc()
		level := slog.LevelDebug
		if rec.status >= 500 {
			level = slog.LevelWarn
		}
		s.cfg.Logger.Log(r.Context(), level, "web: request", "method", r.Method, "path", r.URL.Path,
			"status", rec.status, "duration", time.Since(start))
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer (flush, deadlines).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func writeText(w http.ResponseWriter, status int, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintln(w, text)
}
