package web

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/pipewatch/pipewatch/pipeline/analytics"
)

// ReportHandler serves the pipeline report as JSON: GET ?period=2026-Q4&scope=team:east
// (both optional: the current quarter, the whole org). Bad parameters get 400, an unknown
// team, owner, pipeline or connection 404, each with {"error": "..."}; the document is
// analytics.Report's JSON.
type ReportHandler struct {
	db      analytics.DB
	logger  *slog.Logger
	nowFunc func() time.Time
}

// NewReportHandler returns the report handler; nowFunc is the clock (nil = time.Now).
func NewReportHandler(db analytics.DB, logger *slog.Logger, nowFunc func() time.Time) *ReportHandler {
	if nowFunc == nil {
		nowFunc = time.Now
	}
	return &ReportHandler{db: db, logger: logger, nowFunc: nowFunc}
}

func (h *ReportHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method not allowed: use GET"})
		return
	}
	now := h.nowFunc()
	period := analytics.QuarterOf(now)
	if s := r.URL.Query().Get("period"); s != "" {
		p, err := analytics.ParsePeriod(s)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		period = p
	}
	scope, err := analytics.ParseScope(r.URL.Query().Get("scope"))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	report, err := analytics.BuildReport(r.Context(), h.db, analytics.Request{Period: period, Scope: scope, Now: now})
	switch {
	case errors.Is(err, analytics.ErrUnknownScope):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
		return
	case err != nil:
		h.logger.ErrorContext(r.Context(), "report: building report", "period", period.Label, "scope", scope.String(), "error", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "building the report failed; see the server log"})
		return
	}
	writeJSON(w, http.StatusOK, report)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
