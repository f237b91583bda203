package alerting

import (
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/pipewatch/pipewatch/internal/config"
	"github.com/pipewatch/pipewatch/pipeline"
)

// idleThreshold is the idle rule for deals of one calendar (a team, or "" for the org)
// in one standard stage ("" = unmapped), as cutoffs: a deal whose last touch is before
// Warn is idle; before Stalled it is critical.
type idleThreshold struct {
	Calendar  string
	Stage     pipeline.CanonicalStage
	Threshold config.Days
	// Warn is zero when the stage's threshold is off.
	Warn, Stalled time.Time
	// CloseLost is when the message suggests closing the deal as lost (zero = never).
	CloseLost time.Time
}

// idleThresholds computes the idle cutoffs of every open standard stage (and of unmapped
// stages) for every calendar, as of now.
func idleThresholds(r config.IdleRule, cals calendars, now time.Time) []idleThreshold {
	stages := []pipeline.CanonicalStage{""}
	for _, s := range pipeline.CanonicalStages {
		if s.Open() {
			stages = append(stages, s)
		}
	}
	keys := make([]string, 0, len(cals))
	for k := range cals {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out []idleThreshold
	for _, k := range keys {
		cal := cals[k]
		for _, s := range stages {
			th, ok := r.Stages[s]
			if !ok {
				th = r.Default
			}
			t := idleThreshold{Calendar: k, Stage: s, Threshold: th, Stalled: cal.Before(now, r.Stalled)}
			if th.N > 0 {
				t.Warn = cal.Before(now, th)
			}
			if r.SuggestCloseLost.N > 0 {
				t.CloseLost = cal.Before(now, r.SuggestCloseLost)
			}
			out = append(out, t)
		}
	}
	return out
}

// stageHistory is what the team's won deals teach about one vendor stage.
type stageHistory struct {
	StageID   int64
	Canonical pipeline.CanonicalStage
	// RotDays is the vendor's rotting threshold (Pipedrive; 0 = none).
	RotDays int
	// WonDeals is how many won deals (closed in the learning window) left the stage.
	WonDeals int
	// PercentileDays is the configured percentile of their time in the stage, in days
	// (NaN when there are none).
	PercentileDays float64
}

// Threshold sources, as shown in the evidence.
const (
	SourceRotDays      = "rot_days"      // the vendor's per-stage rotting days
	SourceStageSetting = "stage_setting" // rules.stuck_in_stage.stages
	SourceLearned      = "learned"       // percentile of won deals' time in the stage
	SourceFixed        = "fixed"         // rules.stuck_in_stage.days in fixed mode
	SourceFallback     = "fallback"      // rules.stuck_in_stage.days while history is thin
)

// stuckThreshold is the stuck-in-stage threshold of one vendor stage.
type stuckThreshold struct {
	StageID  int64
	Days     float64
	Label    string
	Source   string
	WonDeals int
	// Cutoff: a deal that entered the stage before it is stuck; before Critical, critical.
	Cutoff, Critical time.Time
}

// stuckThresholdFor decides the threshold of one stage, in this order: the vendor's
// rotting days (when honoured), a fixed days setting for the stage, the learned
// percentile of won deals (at least Floor) once MinWonDeals exist, else Days. ok is
// false when the stage's setting is off.
func stuckThresholdFor(r config.StuckInStageRule, h stageHistory, cal *Calendar, now time.Time) (stuckThreshold, bool) {
	t := stuckThreshold{StageID: h.StageID, WonDeals: h.WonDeals}
	fixed := func(d config.Days, source string) (stuckThreshold, bool) {
		if d.N == 0 {
			return stuckThreshold{}, false
		}
		t.Source, t.Label, t.Cutoff = source, d.Label(), cal.Before(now, d)
		t.Days = now.Sub(t.Cutoff).Hours() / 24
		if d.Business {
			t.Days = float64(d.N)
		}
		t.Critical = now.Add(-time.Duration(float64(now.Sub(t.Cutoff)) * r.CriticalFactor))
		return t, true
	}
	if r.HonorRotDays && h.RotDays > 0 {
		return fixed(config.Days{N: h.RotDays}, SourceRotDays)
	}
	if d, ok := r.Stages[h.Canonical]; ok {
		return fixed(d, SourceStageSetting)
	}
	if r.Mode == "learned" && h.WonDeals >= r.MinWonDeals && !math.IsNaN(h.PercentileDays) {
		days := math.Max(h.PercentileDays, float64(r.Floor.N))
		days = math.Round(days*10) / 10
		t.Days, t.Source = days, SourceLearned
		t.Label = strconv.FormatFloat(days, 'f', -1, 64) + " days"
		span := time.Duration(days * float64(day))
		t.Cutoff = now.Add(-span)
		t.Critical = now.Add(-time.Duration(float64(span) * r.CriticalFactor))
		return t, true
	}
	if r.Mode == "fixed" {
		return fixed(r.Days, SourceFixed)
	}
	return fixed(r.Days, SourceFallback)
}

// rotting is t for a vendor stage with its own rotting days (Pipedrive): they replace the
// stage's threshold (the deal's last update in the CRM then counts as a touch, as it
// resets the vendor's rotting clock).
func (t idleThreshold) rotting(days int, cal *Calendar, now time.Time) idleThreshold {
	t.Threshold = config.Days{N: days}
	t.Warn = cal.Before(now, t.Threshold)
	return t
}
