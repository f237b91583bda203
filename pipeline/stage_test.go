package pipeline

import (
	"testing"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"
)

func p(s string) *decimal.Decimal {
	d := decimal.RequireFromString(s)
	return &d
}

func TestGuessCanonical(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		stage       string
		probability *decimal.Decimal
		closed, won bool
		want        CanonicalStage
	}{
		// Closed stages map from their flags only, whatever the name says.
		{"ClosedWonFlags", "Deal done", nil, true, true, StageClosedWon},
		{"ClosedLostFlags", "Closed Won (old)", p("1"), true, false, StageClosedLost},
		// Vendor default names.
		{"HubSpotAppointment", "Appointment Scheduled", p("0.2"), false, false, StageQualification},
		{"HubSpotQualifiedToBuy", "Qualified To Buy", p("0.4"), false, false, StageQualification},
		{"HubSpotPresentation", "Presentation Scheduled", p("0.6"), false, false, StageProposal},
		{"HubSpotDecisionMaker", "Decision Maker Bought-In", p("0.8"), false, false, StageNegotiation},
		{"HubSpotContractSent", "Contract Sent", p("0.9"), false, false, StageClosing},
		{"PipedriveLeadIn", "Lead In", nil, false, false, StageLeadGeneration},
		{"PipedriveDemo", "Demo Scheduled", nil, false, false, StageProposal},
		{"PipedriveNegotiations", "Negotiations Started", nil, false, false, StageNegotiation},
		{"SalesforceProspecting", "Prospecting", p("0.1"), false, false, StageLeadGeneration},
		{"SalesforceNeedsAnalysis", "Needs Analysis", p("0.2"), false, false, StageNeedsAssessment},
		{"SalesforceProposalQuote", "Proposal/Price Quote", p("0.75"), false, false, StageProposal},
		{"NewAsWord", "New", nil, false, false, StageLeadGeneration},
		// "new" only as a word: a renewal stage falls back to its probability.
		{"RenewalIsNotNew", "Renewal", p("0.6"), false, false, StageProposal},
		{"RenewalWithoutProbability", "Renewal", nil, false, false, ""},
		// Probability bands when the name says nothing.
		{"ProbabilityLow", "Stage A", p("0.05"), false, false, StageLeadGeneration},
		{"ProbabilityQualification", "Stage B", p("0.3"), false, false, StageQualification},
		{"ProbabilityNeeds", "Stage C", p("0.5"), false, false, StageNeedsAssessment},
		{"ProbabilityProposal", "Stage D", p("0.7"), false, false, StageProposal},
		{"ProbabilityNegotiation", "Stage E", p("0.85"), false, false, StageNegotiation},
		{"ProbabilityClosing", "Stage F", p("0.95"), false, false, StageClosing},
		// Never guessed as won: an open stage at 100% or named like a closed one stays unmapped.
		{"OpenAtCertainty", "Stage G", p("1"), false, false, ""},
		{"OpenNamedWon", "Closed Won", p("1"), false, false, ""},
		{"OpenNamedLost", "Closed Lost", p("0"), false, false, ""},
		{"OpenNamedWonWithKeyword", "Won - contract signed", p("1"), false, false, ""},
		{"NothingToGoOn", "Stage H", nil, false, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := GuessCanonical(tt.stage, tt.probability, tt.closed, tt.won)
			require.Equal(t, tt.want, got)
			require.False(t, got == StageClosedWon && !tt.won, "guessed won for a stage the vendor doesn't mark won")
		})
	}
}

func TestStageMapResolve(t *testing.T) {
	t.Parallel()
	stage := func(ext, name string, closed, won bool, canonical CanonicalStage) Stage {
		return Stage{Record: Record{ExternalID: ext}, Name: name, IsClosed: closed, IsWon: won, Canonical: canonical, Probability: p("0.5")}
	}
	m := StageMap{
		"s1":            StageProposal,
		"Discovery":     StageQualification,
		"s2":            StageNegotiation,
		"Custom review": StageClosedWon, // invalid for an open stage
		"lost-1":        StageClosedWon, // can't turn a lost stage into a won one
		"won-1":         StageClosedLost,
	}
	tests := []struct {
		name  string
		stage Stage
		want  CanonicalStage
	}{
		{"OverrideByID", stage("s1", "Anything", false, false, StageQualification), StageProposal},
		{"OverrideByName", stage("x", "Discovery", false, false, ""), StageQualification},
		{"IDWinsOverName", stage("s2", "Discovery", false, false, ""), StageNegotiation},
		{"VendorDefault", stage("x", "Stage Q", false, false, StageClosing), StageClosing},
		{"GuessWhenNothingElse", stage("x", "Demo booked", false, false, ""), StageProposal},
		{"OverrideCannotCloseAnOpenStage", stage("x", "Custom review", false, false, ""), StageNeedsAssessment},
		{"OverrideCannotTurnLostIntoWon", stage("lost-1", "Lost", true, false, ""), StageClosedLost},
		{"OverrideCannotTurnWonIntoLost", stage("won-1", "Won", true, true, ""), StageClosedWon},
		{"InconsistentVendorDefaultIgnored", stage("x", "Stage Z", false, false, StageClosedWon), StageNeedsAssessment},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, m.Resolve(tt.stage))
		})
	}
}

func TestParseCanonicalStage(t *testing.T) {
	t.Parallel()
	for _, c := range CanonicalStages {
		got, err := ParseCanonicalStage(string(c))
		require.NoError(t, err)
		require.Equal(t, c, got)
	}
	_, err := ParseCanonicalStage("won")
	require.ErrorContains(t, err, `unknown canonical stage "won" (want one of lead_generation, qualification,`)
}
