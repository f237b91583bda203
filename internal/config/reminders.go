package config

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/pipewatch/pipewatch/pipeline"
)

// Reminders configures the follow-up reminders reps get after a deal enters a stage
// (settings key "reminders"). The business days and holidays of a rep's cadence are
// their team's (teams:), the send time is read in the rep's own time zone.
type Reminders struct {
	Enabled bool `json:"enabled"`
	// Trigger is the standard stage whose entry starts a cadence.
	Trigger pipeline.CanonicalStage `json:"trigger"`
	// Steps are the follow-ups, as business days after the deal entered Trigger; strictly
	// increasing.
	Steps []int `json:"steps"`
	// SendAt is the time of day (HH:MM, the rep's time zone) reminders are sent at.
	SendAt string `json:"send_at"`
	// StopWhen says when a cadence ends besides the deal closing or being deleted (which
	// always end it): StopLeftStage when the deal leaves Trigger, StopClosed when it moves
	// back to an earlier stage (it goes on through later open stages).
	StopWhen string `json:"stop_when"`
}

// Values of Reminders.StopWhen.
const (
	StopLeftStage = "left_stage"
	StopClosed    = "closed"
)

// Limits of a cadence.
const (
	MaxReminderSteps = 20
	// MaxReminderOffset is about a year of business days.
	MaxReminderOffset = 260
)

// DefaultReminders is the recommended cadence (docs/pipeline-analytics.md §6): five
// follow-ups 2, 5, 9, 14 and 21 business days after the proposal, at 09:00.
func DefaultReminders() Reminders {
	return Reminders{
		Enabled:  true,
		Trigger:  pipeline.StageProposal,
		Steps:    []int{2, 5, 9, 14, 21},
		SendAt:   "09:00",
		StopWhen: StopLeftStage,
	}
}

// SendClock is SendAt as the time since local midnight.
func (r Reminders) SendClock() (time.Duration, error) {
	h, m, ok := strings.Cut(r.SendAt, ":")
	if !ok || !clockPattern.MatchString(r.SendAt) {
		return 0, fmt.Errorf("reminders.send_at %q is not a time of day like 09:00", r.SendAt)
	}
	hour, _ := strconv.Atoi(h)
	minute, _ := strconv.Atoi(m)
	return time.Duration(hour)*time.Hour + time.Duration(minute)*time.Minute, nil
}

// Validate checks a stored document (what Decode already guarantees for a file).
func (r Reminders) Validate() error {
	if _, err := r.SendClock(); err != nil {
		return err
	}
	if !r.Trigger.Open() {
		return fmt.Errorf("reminders.trigger %q is not an open standard stage", r.Trigger)
	}
	if r.StopWhen != StopLeftStage && r.StopWhen != StopClosed {
		return fmt.Errorf("reminders.stop_when %q is not %s or %s", r.StopWhen, StopLeftStage, StopClosed)
	}
	if msg := stepsProblem(r.Steps); msg != "" {
		return fmt.Errorf("reminders.steps: %s", msg)
	}
	return nil
}

// stepsProblem says what is wrong with a list of offsets ("" = nothing).
func stepsProblem(steps []int) string {
	switch {
	case len(steps) == 0:
		return "list at least one step (or set enabled: false)"
	case len(steps) > MaxReminderSteps:
		return fmt.Sprintf("%d steps is too many (at most %d)", len(steps), MaxReminderSteps)
	}
	for i, s := range steps {
		if s < 1 || s > MaxReminderOffset {
			return fmt.Sprintf("step %d is %d business days (want 1 to %d)", i+1, s, MaxReminderOffset)
		}
		if i > 0 && s <= steps[i-1] {
			return fmt.Sprintf("steps must increase: step %d (%d) is not after step %d (%d)", i+1, s, i, steps[i-1])
		}
	}
	return ""
}

// LoadReminders returns the cadence stored by the last apply (DefaultReminders before the
// first).
func LoadReminders(ctx context.Context, db Querier) (Reminders, error) {
	r := DefaultReminders()
	if err := LoadSetting(ctx, db, "reminders", &r); err != nil && !errors.Is(err, ErrSettingNotFound) {
		return Reminders{}, err
	}
	if err := r.Validate(); err != nil {
		return Reminders{}, fmt.Errorf("loading setting reminders: %w (run `pipewatch apply` again)", err)
	}
	return r, nil
}

var remindersSection = Section{
	Key: "reminders",
	Decode: func(d *Decoder, n *yaml.Node, path string, f *File) {
		f.Reminders = DefaultReminders()
		m := d.Mapping(n, path, "enabled", "trigger", "steps", "send_at", "stop_when")
		r := &f.Reminders
		setBool(d, m, "enabled", &r.Enabled)
		if tn, tpath := m.Get("trigger"); tn != nil {
			if s, ok := d.scalar(tn, tpath, "a standard stage"); ok {
				stage, err := pipeline.ParseCanonicalStage(s)
				switch {
				case err != nil:
					d.Errorf(tn, tpath, "%v", err)
				case !stage.Open():
					d.Errorf(tn, tpath, "%s is a closed stage: reminders follow up open deals", s)
				default:
					r.Trigger = stage
				}
			}
		}
		if sn, spath := m.Get("steps"); sn != nil {
			r.Steps = decodeSteps(d, sn, spath)
		}
		if tn, tpath := m.Get("send_at"); tn != nil {
			if s, ok := d.scalar(tn, tpath, "a time like 09:00"); ok {
				if clockPattern.MatchString(s) {
					r.SendAt = s
				} else {
					d.Errorf(tn, tpath, "want a time of day like 09:00 (24-hour HH:MM, the rep's time zone), got %q", s)
				}
			}
		}
		if sn, spath := m.Get("stop_when"); sn != nil {
			if v := d.OneOf(sn, spath, "stop condition", StopLeftStage, StopClosed); v != "" {
				r.StopWhen = v
			}
		}
	},
	Apply: func(ctx context.Context, tx *Tx) error {
		return tx.PutSetting(ctx, "reminders", tx.File.Reminders)
	},
}

// decodeSteps reads business-day offsets written as 2 or +2.
func decodeSteps(d *Decoder, n *yaml.Node, path string) []int {
	items := d.Sequence(n, path)
	steps := make([]int, 0, len(items))
	for i, item := range items {
		if v, ok := d.Int(item, Index(path, i), 1, MaxReminderOffset); ok {
			steps = append(steps, v)
		}
	}
	if len(steps) != len(items) {
		return steps // the bad items are reported already
	}
	if msg := stepsProblem(steps); msg != "" {
		d.Errorf(n, path, "%s", msg)
	}
	return steps
}
