package reminder

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pipewatch/pipewatch/internal/config"
	"github.com/pipewatch/pipewatch/pipeline"
)

// DealState is what decides whether a deal's cadence goes on.
type DealState struct {
	Deleted bool
	Closed  bool
	Won     bool
	// Stage is the standard stage of the deal's stage ("" = unknown: unmapped, or the
	// stage is not synced yet). StageName is the vendor's name for it.
	Stage     pipeline.CanonicalStage
	StageName string
}

// Starts reports whether the deal may start a cadence for trigger: open, live and in
// the trigger stage.
func (d DealState) Starts(trigger pipeline.CanonicalStage) bool {
	return !d.Deleted && !d.Closed && d.Stage == trigger
}

// Ending says why a cadence started by trigger ends for a deal in state d, or "" when
// it goes on. Deletion and closing always end it; leaving the trigger stage ends it
// with stop_when left_stage, and only moving back to an earlier stage with stop_when
// closed. A stage that is not known yet ends nothing: missing data never stops reminders.
func Ending(d DealState, trigger pipeline.CanonicalStage, stopWhen string) string {
	switch {
	case d.Deleted:
		return "the deal was deleted in the CRM"
	case d.Closed && d.Won, d.Stage == pipeline.StageClosedWon:
		return "the deal was won"
	case d.Closed, d.Stage == pipeline.StageClosedLost:
		return "the deal was lost"
	case d.Stage == "", d.Stage == trigger:
		return ""
	case stopWhen == config.StopClosed && stageIndex(d.Stage) > stageIndex(trigger):
		return ""
	}
	return fmt.Sprintf("the deal left %s: it moved to %s", stageLabel(trigger), d.stageLabel())
}

func (d DealState) stageLabel() string {
	if d.StageName != "" && !strings.EqualFold(d.StageName, stageLabel(d.Stage)) {
		return fmt.Sprintf("%s (%s)", d.StageName, stageLabel(d.Stage))
	}
	return stageLabel(d.Stage)
}

func stageIndex(s pipeline.CanonicalStage) int { return slices.Index(pipeline.CanonicalStages, s) }

// stageLabel is a standard stage for people: "needs assessment".
func stageLabel(s pipeline.CanonicalStage) string { return strings.ReplaceAll(string(s), "_", " ") }

// Entry is what the synced data says about when a deal entered the trigger stage this
// time: the vendor's stage_entered_at, the stage history (vendor or observed), and the
// deal row's own times as the last resort.
type Entry struct {
	// StageEnteredAt is deals.stage_entered_at (zero = unknown).
	StageEnteredAt time.Time
	// LeftAt is the latest entry into another known stage in the history, LeftUntil when
	// that stay ended (zero = no such entry, or it has no end).
	LeftAt, LeftUntil time.Time
	// RunStart is the earliest history entry into the trigger stage after LeftAt.
	RunStart time.Time
	// Fallback is the deal's remote_updated_at (or synced_at) for deals without history.
	Fallback time.Time
}

// EnteredAt is when the deal entered the trigger stage for the current episode: the
// earliest of RunStart and StageEnteredAt that lies after LeftAt (a move between two
// vendor stages of the same standard stage is not a new entry), else the end of the
// stay in the other stage, else StageEnteredAt, else Fallback.
func (e Entry) EnteredAt() time.Time {
	var best time.Time
	for _, t := range []time.Time{e.RunStart, e.StageEnteredAt} {
		if !t.IsZero() && t.After(e.LeftAt) && (best.IsZero() || t.Before(best)) {
			best = t
		}
	}
	for _, t := range []time.Time{best, e.LeftUntil, e.StageEnteredAt, e.Fallback} {
		if !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}
