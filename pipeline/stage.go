package pipeline

import (
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/shopspring/decimal"
)

// CanonicalStage is one of the standard stages every vendor stage maps to, so metrics and
// rules read the same across CRMs.
type CanonicalStage string

// The standard stages, in funnel order.
const (
	StageLeadGeneration  CanonicalStage = "lead_generation"
	StageQualification   CanonicalStage = "qualification"
	StageNeedsAssessment CanonicalStage = "needs_assessment"
	StageProposal        CanonicalStage = "proposal"
	StageNegotiation     CanonicalStage = "negotiation"
	StageClosing         CanonicalStage = "closing"
	StageClosedWon       CanonicalStage = "closed_won"
	StageClosedLost      CanonicalStage = "closed_lost"
)

// CanonicalStages lists the standard stages in funnel order.
var CanonicalStages = []CanonicalStage{
	StageLeadGeneration, StageQualification, StageNeedsAssessment, StageProposal,
	StageNegotiation, StageClosing, StageClosedWon, StageClosedLost,
}

// ParseCanonicalStage returns the standard stage named s, or an error listing the valid names.
func ParseCanonicalStage(s string) (CanonicalStage, error) {
	for _, c := range CanonicalStages {
		if string(c) == s {
			return c, nil
		}
	}
	names := make([]string, len(CanonicalStages))
	for i, c := range CanonicalStages {
		names[i] = string(c)
	}
	return "", fmt.Errorf("unknown canonical stage %q (want one of %s)", s, strings.Join(names, ", "))
}

// Open reports whether deals in the stage are still being worked.
func (c CanonicalStage) Open() bool { return c != StageClosedWon && c != StageClosedLost && c != "" }

// GuessCanonical maps a vendor stage to a standard stage from its closed/won flags, its
// name and its probability. Closed stages map only from their flags: a stage is never
// guessed as won. It returns "" when nothing is convincing, so the stage is reported as
// unmapped instead of silently misfiled.
func GuessCanonical(name string, probability *decimal.Decimal, isClosed, isWon bool) CanonicalStage {
	if isClosed {
		if isWon {
			return StageClosedWon
		}
		return StageClosedLost
	}
	n := strings.ToLower(name)
	words := strings.FieldsFunc(n, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	for _, w := range words {
		if w == "won" || w == "lost" || w == "closed" || w == "closedwon" || w == "closedlost" {
			return "" // an open stage named like a closed one needs a person to map it
		}
	}
	for _, kw := range nameKeywords {
		for _, w := range kw.words {
			if strings.Contains(n, w) {
				return kw.stage
			}
		}
		for _, w := range kw.wholeWords {
			if slices.Contains(words, w) {
				return kw.stage
			}
		}
	}
	if probability == nil {
		return ""
	}
	p := probability.InexactFloat64()
	switch {
	case p <= 0.1:
		return StageLeadGeneration
	case p <= 0.3:
		return StageQualification
	case p <= 0.5:
		return StageNeedsAssessment
	case p <= 0.7:
		return StageProposal
	case p <= 0.85:
		return StageNegotiation
	case p < 1:
		return StageClosing
	}
	return ""
}

// nameKeywords are checked in order; the first stage one of whose words occurs in the
// name (wholeWords: as a word of its own, so "new" never matches "renewal") wins.
var nameKeywords = []struct {
	stage      CanonicalStage
	words      []string
	wholeWords []string
}{
	{StageNegotiation, []string{"negotiat", "decision maker", "decisionmaker", "bought-in", "bought in"}, nil},
	{StageClosing, []string{"contract", "closing", "signature", "commit"}, nil},
	{StageProposal, []string{"proposal", "quote", "presentation", "demo"}, nil},
	{StageNeedsAssessment, []string{"needs", "discovery", "assessment", "analysis"}, nil},
	{StageQualification, []string{"qualif", "appointment", "meeting scheduled"}, nil},
	{StageLeadGeneration, []string{"lead", "prospect"}, []string{"new"}},
}

// StageMap overrides the canonical stage of vendor stages, keyed by the vendor stage's
// external id or by its name (the id wins when both match). It is the `stage_map` of a
// connection in the config file.
type StageMap map[string]CanonicalStage

// Resolve returns the canonical stage for s: an override from m, else the connector's
// vendor default (s.Canonical), else GuessCanonical. Closed stages keep their won/lost
// meaning: an override can't turn a lost stage into a won one or an open stage into a
// closed one.
func (m StageMap) Resolve(s Stage) CanonicalStage {
	c, ok := m[s.ExternalID]
	if !ok {
		c, ok = m[s.Name]
	}
	if ok && consistent(c, s) {
		return c
	}
	if s.Canonical != "" && consistent(s.Canonical, s) {
		return s.Canonical
	}
	return GuessCanonical(s.Name, s.Probability, s.IsClosed, s.IsWon)
}

func consistent(c CanonicalStage, s Stage) bool {
	switch c {
	case StageClosedWon:
		return s.IsClosed && s.IsWon
	case StageClosedLost:
		return s.IsClosed && !s.IsWon
	}
	return !s.IsClosed
}
