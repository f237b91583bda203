package config

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/pipewatch/pipewatch/pipeline"
)

// Days is an alert threshold in calendar days ("7d") or business days ("5bd": the team's
// business days, holidays excluded). Zero ("off") disables the threshold it sets.
type Days struct {
	N        int
	Business bool
}

// ParseDays reads "7d", "5bd", a bare number of calendar days ("7") or "off" (zero).
func ParseDays(s string) (Days, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if t == "off" {
		return Days{}, nil
	}
	var d Days
	switch {
	case strings.HasSuffix(t, "bd"):
		d.Business, t = true, strings.TrimSuffix(t, "bd")
	case strings.HasSuffix(t, "d"):
		t = strings.TrimSuffix(t, "d")
	}
	n, err := strconv.Atoi(strings.TrimSpace(t))
	if err != nil || n < 0 {
		return Days{}, fmt.Errorf("want days like 7d (calendar days) or 5bd (business days), got %q", s)
	}
	d.N = n
	return d, nil
}

// String writes d the way ParseDays reads it.
func (d Days) String() string {
	if d.Business {
		return strconv.Itoa(d.N) + "bd"
	}
	return strconv.Itoa(d.N) + "d"
}

// Label is the human form used in messages: "5 business days", "1 day".
func (d Days) Label() string {
	unit := " day"
	if d.Business {
		unit = " business day"
	}
	if d.N != 1 {
		unit += "s"
	}
	return strconv.Itoa(d.N) + unit
}

// MarshalJSON writes "7d" or "5bd".
func (d Days) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads what MarshalJSON wrote.
func (d *Days) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("decoding days: %w", err)
	}
	v, err := ParseDays(s)
	if err != nil {
		return fmt.Errorf("decoding days: %w", err)
	}
	*d = v
	return nil
}

// Rules configures the alert rules (settings key "rules"). Every rule works out of the
// box with DefaultRules; the file overrides single keys.
type Rules struct {
	Idle              IdleRule              `json:"idle"`
	StuckInStage      StuckInStageRule      `json:"stuck_in_stage"`
	PastCloseDate     PastCloseDateRule     `json:"past_close_date"`
	CloseDateSlipped  CloseDateSlippedRule  `json:"close_date_slipped"`
	NoNextStep        NoNextStepRule        `json:"no_next_step"`
	CoverageShortfall CoverageShortfallRule `json:"coverage_shortfall"`
	LeadVelocityDrop  LeadVelocityDropRule  `json:"lead_velocity_drop"`
}

// IdleRule flags open deals without a touch (activity, or entering the stage) for too long.
type IdleRule struct {
	Enabled bool `json:"enabled"`
	// Stages is the warning threshold per standard stage; stages not listed use Default.
	Stages map[pipeline.CanonicalStage]Days `json:"stages"`
	// Default is the threshold of stages without their own (and of unmapped stages).
	Default Days `json:"default"`
	// Stalled makes the alert critical (and puts it in the manager's digest).
	Stalled Days `json:"stalled"`
	// SuggestCloseLost adds "consider closing it as lost" to the message.
	SuggestCloseLost Days `json:"suggest_close_lost"`
	// NextActivitySuppresses: a scheduled, not overdue next activity holds the alert off.
	NextActivitySuppresses bool `json:"next_activity_suppresses"`
	// ExcludeZeroAmount skips deals whose amount is zero or empty.
	ExcludeZeroAmount bool `json:"exclude_zero_amount"`
	// HonorRotDays makes a vendor stage's rotting days (Pipedrive) its threshold, with the
	// deal's last update in the CRM counted as a touch, as the vendor counts it.
	HonorRotDays bool `json:"honor_rot_days"`
}

// StuckInStageRule flags open deals that stay in their stage longer than deals usually do.
type StuckInStageRule struct {
	Enabled bool `json:"enabled"`
	// Mode is "learned" (the Percentile of the time the team's won deals spent in the
	// stage) or "fixed" (Days).
	Mode string `json:"mode"`
	// Days is the fixed threshold, and the fallback while a stage has fewer than
	// MinWonDeals won deals to learn from.
	Days Days `json:"days"`
	// Stages are fixed thresholds per standard stage; they win over learned ones.
	Stages      map[pipeline.CanonicalStage]Days `json:"stages"`
	Percentile  float64                          `json:"percentile"`
	MinWonDeals int                              `json:"min_won_deals"`
	// Floor is the lowest learned threshold (stages deals skip through teach nothing).
	Floor Days `json:"floor"`
	// LearnWindow is how far back won deals are learned from (by close time).
	LearnWindow Days `json:"learn_window"`
	// CriticalFactor × threshold makes the alert critical.
	CriticalFactor float64 `json:"critical_factor"`
	// HonorRotDays uses the vendor's per-stage rotting days (Pipedrive) where a stage has them.
	HonorRotDays      bool `json:"honor_rot_days"`
	ExcludeZeroAmount bool `json:"exclude_zero_amount"`
}

// PastCloseDateRule flags open deals whose expected close date has passed.
type PastCloseDateRule struct {
	Enabled bool `json:"enabled"`
	// CriticalAfter days overdue makes the alert critical.
	CriticalAfter Days `json:"critical_after"`
	// IgnoreDefaultCloseDates treats a HubSpot close date that was never edited and equals
	// the last day of the deal's creation month (HubSpot's default) as no date.
	IgnoreDefaultCloseDates bool `json:"ignore_default_close_dates"`
}

// CloseDateSlippedRule flags deals whose close date was pushed out of the current period
// or pushed again and again.
type CloseDateSlippedRule struct {
	Enabled bool `json:"enabled"`
	// Period is "quarter" or "month" (in the org time zone).
	Period string `json:"period"`
	// EscalateAt pushes to a later date make the alert critical (and fire on their own).
	EscalateAt int `json:"escalate_at"`
}

// NoNextStepRule flags open deals with no next activity, an overdue one, or one too far away.
type NoNextStepRule struct {
	Enabled bool `json:"enabled"`
	// Horizon: a next activity further away than this does not count.
	Horizon Days `json:"horizon"`
	// Grace after the deal entered its stage before the rule applies.
	Grace  Days                      `json:"grace"`
	Stages []pipeline.CanonicalStage `json:"stages"`
}

// CoverageShortfallRule flags owners, teams and the org whose open pipeline for a current
// target period is below the coverage they need: 1 ÷ their trailing win rate (the four
// quarters before the period's quarter, as in `pipewatch report`), kept between Floor and
// Cap (Cap while there is no win to learn from).
type CoverageShortfallRule struct {
	Enabled bool    `json:"enabled"`
	Floor   float64 `json:"floor"`
	Cap     float64 `json:"cap"`
	// CriticalBelow: coverage under this fraction of the required ratio is critical.
	CriticalBelow float64 `json:"critical_below"`
}

// LeadVelocityDropRule flags a fall in qualified leads: the last Window against the one before.
type LeadVelocityDropRule struct {
	Enabled bool `json:"enabled"`
	// Stage is what counts as qualified: "sql" (sql_at) or "mql" (mql_at).
	Stage  string `json:"stage"`
	Window Days   `json:"window"`
	// Drop is the fall (0.2 = 20 %) that alerts; CriticalDrop makes it critical.
	Drop         float64 `json:"drop"`
	CriticalDrop float64 `json:"critical_drop"`
	// MinBase qualified leads in the earlier window before a drop means anything.
	MinBase int `json:"min_base"`
}

// DefaultRules are the recommended defaults (docs/pipeline-analytics.md §6).
func DefaultRules() Rules {
	return Rules{
		Idle: IdleRule{
			Enabled: true,
			Stages: map[pipeline.CanonicalStage]Days{
				pipeline.StageQualification:   {N: 7},
				pipeline.StageNeedsAssessment: {N: 10},
				pipeline.StageProposal:        {N: 5, Business: true},
				pipeline.StageNegotiation:     {N: 3, Business: true},
				pipeline.StageClosing:         {N: 3, Business: true},
			},
			Default:                Days{N: 14},
			Stalled:                Days{N: 30},
			SuggestCloseLost:       Days{N: 60},
			NextActivitySuppresses: true,
			ExcludeZeroAmount:      true,
			HonorRotDays:           true,
		},
		StuckInStage: StuckInStageRule{
			Enabled: true, Mode: "learned", Days: Days{N: 30}, Stages: map[pipeline.CanonicalStage]Days{},
			Percentile: 0.75, MinWonDeals: 30, Floor: Days{N: 3}, LearnWindow: Days{N: 365},
			CriticalFactor: 1.5, HonorRotDays: true, ExcludeZeroAmount: true,
		},
		PastCloseDate:    PastCloseDateRule{Enabled: true, CriticalAfter: Days{N: 30}, IgnoreDefaultCloseDates: true},
		CloseDateSlipped: CloseDateSlippedRule{Enabled: true, Period: "quarter", EscalateAt: 3},
		NoNextStep: NoNextStepRule{
			Enabled: true, Horizon: Days{N: 14}, Grace: Days{N: 1},
			Stages: []pipeline.CanonicalStage{pipeline.StageQualification, pipeline.StageNeedsAssessment,
				pipeline.StageProposal, pipeline.StageNegotiation, pipeline.StageClosing},
		},
		CoverageShortfall: CoverageShortfallRule{Enabled: true, Floor: 2, Cap: 5, CriticalBelow: 0.5},
		LeadVelocityDrop: LeadVelocityDropRule{
			Enabled: true, Stage: "sql", Window: Days{N: 30}, Drop: 0.2, CriticalDrop: 0.4, MinBase: 10,
		},
	}
}

// LoadRules returns the rules stored by the last apply (DefaultRules before the first).
func LoadRules(ctx context.Context, db Querier) (Rules, error) {
	r := DefaultRules()
	if err := LoadSetting(ctx, db, "rules", &r); err != nil && !errors.Is(err, ErrSettingNotFound) {
		return Rules{}, err
	}
	return r, nil
}

var rulesSection = Section{
	Key: "rules",
	Decode: func(d *Decoder, n *yaml.Node, path string, f *File) {
		f.Rules = DefaultRules()
		m := d.Mapping(n, path, "idle", "stuck_in_stage", "past_close_date", "close_date_slipped",
			"no_next_step", "coverage_shortfall", "lead_velocity_drop")
		decodeIdle(d, m, &f.Rules.Idle)
		decodeStuck(d, m, &f.Rules.StuckInStage)
		decodePastCloseDate(d, m, &f.Rules.PastCloseDate)
		decodeSlipped(d, m, &f.Rules.CloseDateSlipped)
		decodeNoNextStep(d, m, &f.Rules.NoNextStep)
		decodeCoverage(d, m, &f.Rules.CoverageShortfall)
		decodeLeadVelocity(d, m, &f.Rules.LeadVelocityDrop)
	},
	Apply: func(ctx context.Context, tx *Tx) error {
		return tx.PutSetting(ctx, "rules", tx.File.Rules)
	},
}

func decodeIdle(d *Decoder, top Fields, r *IdleRule) {
	n, path := top.Get("idle")
	m := d.Mapping(n, path, "enabled", "stages", "default", "stalled", "suggest_close_lost",
		"next_activity_suppresses", "exclude_zero_amount", "honor_rot_days")
	setBool(d, m, "enabled", &r.Enabled)
	r.Stages = decodeStageDays(d, m, "stages", r.Stages)
	setDays(d, m, "default", 1, &r.Default)
	setDays(d, m, "stalled", 1, &r.Stalled)
	setDays(d, m, "suggest_close_lost", 0, &r.SuggestCloseLost)
	setBool(d, m, "next_activity_suppresses", &r.NextActivitySuppresses)
	setBool(d, m, "exclude_zero_amount", &r.ExcludeZeroAmount)
	setBool(d, m, "honor_rot_days", &r.HonorRotDays)
}

func decodeStuck(d *Decoder, top Fields, r *StuckInStageRule) {
	n, path := top.Get("stuck_in_stage")
	m := d.Mapping(n, path, "enabled", "mode", "days", "stages", "percentile", "min_won_deals", "floor",
		"learn_window", "critical_factor", "honor_rot_days", "exclude_zero_amount")
	setBool(d, m, "enabled", &r.Enabled)
	if mn, mpath := m.Get("mode"); mn != nil {
		if v := d.OneOf(mn, mpath, "mode", "learned", "fixed"); v != "" {
			r.Mode = v
		}
	}
	setDays(d, m, "days", 1, &r.Days)
	r.Stages = decodeStageDays(d, m, "stages", r.Stages)
	setFloat(d, m, "percentile", 0.01, 0.99, &r.Percentile)
	setInt(d, m, "min_won_deals", 1, 100000, &r.MinWonDeals)
	setDays(d, m, "floor", 0, &r.Floor)
	setDays(d, m, "learn_window", 1, &r.LearnWindow)
	setFloat(d, m, "critical_factor", 1, 100, &r.CriticalFactor)
	setBool(d, m, "honor_rot_days", &r.HonorRotDays)
	setBool(d, m, "exclude_zero_amount", &r.ExcludeZeroAmount)
}

func decodePastCloseDate(d *Decoder, top Fields, r *PastCloseDateRule) {
	n, path := top.Get("past_close_date")
	m := d.Mapping(n, path, "enabled", "critical_after", "ignore_default_close_dates")
	setBool(d, m, "enabled", &r.Enabled)
	setDays(d, m, "critical_after", 1, &r.CriticalAfter)
	setBool(d, m, "ignore_default_close_dates", &r.IgnoreDefaultCloseDates)
}

func decodeSlipped(d *Decoder, top Fields, r *CloseDateSlippedRule) {
	n, path := top.Get("close_date_slipped")
	m := d.Mapping(n, path, "enabled", "period", "escalate_at")
	setBool(d, m, "enabled", &r.Enabled)
	if pn, ppath := m.Get("period"); pn != nil {
		if v := d.OneOf(pn, ppath, "period", "quarter", "month"); v != "" {
			r.Period = v
		}
	}
	setInt(d, m, "escalate_at", 1, 100, &r.EscalateAt)
}

func decodeNoNextStep(d *Decoder, top Fields, r *NoNextStepRule) {
	n, path := top.Get("no_next_step")
	m := d.Mapping(n, path, "enabled", "horizon", "grace", "stages")
	setBool(d, m, "enabled", &r.Enabled)
	setDays(d, m, "horizon", 1, &r.Horizon)
	setDays(d, m, "grace", 0, &r.Grace)
	if sn, spath := m.Get("stages"); sn != nil {
		r.Stages = []pipeline.CanonicalStage{}
		for i, item := range d.Sequence(sn, spath) {
			if s, ok := decodeOpenStage(d, item, Index(spath, i)); ok {
				r.Stages = append(r.Stages, s)
			}
		}
	}
}

func decodeCoverage(d *Decoder, top Fields, r *CoverageShortfallRule) {
	n, path := top.Get("coverage_shortfall")
	m := d.Mapping(n, path, "enabled", "floor", "cap", "critical_below")
	setBool(d, m, "enabled", &r.Enabled)
	setFloat(d, m, "floor", 0.1, 100, &r.Floor)
	setFloat(d, m, "cap", 0.1, 100, &r.Cap)
	setFloat(d, m, "critical_below", 0, 1, &r.CriticalBelow)
	if r.Cap < r.Floor {
		d.Errorf(n, path, "cap (%g) is below floor (%g)", r.Cap, r.Floor)
	}
}

func decodeLeadVelocity(d *Decoder, top Fields, r *LeadVelocityDropRule) {
	n, path := top.Get("lead_velocity_drop")
	m := d.Mapping(n, path, "enabled", "stage", "window", "drop", "critical_drop", "min_base")
	setBool(d, m, "enabled", &r.Enabled)
	if sn, spath := m.Get("stage"); sn != nil {
		if v := d.OneOf(sn, spath, "stage", "sql", "mql"); v != "" {
			r.Stage = v
		}
	}
	setDays(d, m, "window", 1, &r.Window)
	setFloat(d, m, "drop", 0.01, 1, &r.Drop)
	setFloat(d, m, "critical_drop", 0.01, 1, &r.CriticalDrop)
	setInt(d, m, "min_base", 1, 1000000, &r.MinBase)
	if r.CriticalDrop < r.Drop {
		d.Errorf(n, path, "critical_drop (%g) is smaller than drop (%g)", r.CriticalDrop, r.Drop)
	}
}

// decodeStageDays overrides entries of base (a copy is returned) with a mapping of
// standard stage → days.
func decodeStageDays(d *Decoder, m Fields, key string, base map[pipeline.CanonicalStage]Days) map[pipeline.CanonicalStage]Days {
	n, path := m.Get(key)
	out := maps.Clone(base)
	if out == nil {
		out = map[pipeline.CanonicalStage]Days{}
	}
	for _, p := range d.Pairs(n, path) {
		stage, ok := decodeOpenStage(d, p.KeyNode, Join(path, p.Key))
		if !ok {
			continue
		}
		if v, ok := decodeDays(d, p.Value, Join(path, p.Key), 0); ok {
			out[stage] = v
		}
	}
	return out
}

func decodeOpenStage(d *Decoder, n *yaml.Node, path string) (pipeline.CanonicalStage, bool) {
	s, ok := d.scalar(n, path, "a standard stage")
	if !ok {
		return "", false
	}
	stage, err := pipeline.ParseCanonicalStage(s)
	if err != nil {
		d.Errorf(n, path, "%v", err)
		return "", false
	}
	if !stage.Open() {
		d.Errorf(n, path, "%s is a closed stage: alert rules watch open deals only", s)
		return "", false
	}
	return stage, true
}

// decodeDays reads days of at least minimum (0 allows "off").
func decodeDays(d *Decoder, n *yaml.Node, path string, minimum int) (Days, bool) {
	s, ok := d.scalar(n, path, "days like 7d or 5bd")
	if !ok {
		return Days{}, false
	}
	v, err := ParseDays(s)
	if err != nil {
		d.Errorf(n, path, "%v", err)
		return Days{}, false
	}
	if v.N < minimum {
		d.Errorf(n, path, "%s is too short (minimum %s)", s, Days{N: minimum, Business: v.Business})
		return Days{}, false
	}
	return v, true
}

func setDays(d *Decoder, m Fields, key string, minimum int, dst *Days) {
	if n, path := m.Get(key); n != nil {
		if v, ok := decodeDays(d, n, path, minimum); ok {
			*dst = v
		}
	}
}

func setBool(d *Decoder, m Fields, key string, dst *bool) {
	if n, path := m.Get(key); n != nil {
		if v, ok := d.Bool(n, path); ok {
			*dst = v
		}
	}
}

func setInt(d *Decoder, m Fields, key string, lo, hi int, dst *int) {
	if n, path := m.Get(key); n != nil {
		if v, ok := d.Int(n, path, lo, hi); ok {
			*dst = v
		}
	}
}

func setFloat(d *Decoder, m Fields, key string, lo, hi float64, dst *float64) {
	n, path := m.Get(key)
	if n == nil {
		return
	}
	v, ok := d.Decimal(n, path)
	if !ok {
		return
	}
	f := v.InexactFloat64()
	if f < lo || f > hi {
		d.Errorf(n, path, "%s is out of range (want %g to %g)", v, lo, hi)
		return
	}
	*dst = f
}
