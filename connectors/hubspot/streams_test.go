package hubspot_test

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/connectors"
	"github.com/pipewatch/pipewatch/connectors/connectortest"
	"github.com/pipewatch/pipewatch/connectors/hubspot"
	"github.com/pipewatch/pipewatch/connectors/hubspot/hubspottest"
	"github.com/pipewatch/pipewatch/pipeline"
)

func TestStreams(t *testing.T) {
	t.Parallel()

	t.Run("NamesAreStableAndReferencedEntitiesComeFirst", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOptions{fast: true})
		var names []string
		for _, s := range e.conn.Streams() {
			names = append(names, s.Name)
		}
		require.Equal(t, []string{
			"owners", "archived_owners", "pipelines", "companies", "contacts", "deals",
			"calls", "emails", "meetings", "notes", "tasks",
			"archived_companies", "archived_contacts", "archived_deals",
			"archived_calls", "archived_emails", "archived_meetings", "archived_notes", "archived_tasks",
		}, names)
		deals, _ := connectors.StreamByName(e.conn, "deals")
		require.Equal(t, connectors.Stream{Name: "deals", Entities: []pipeline.Entity{pipeline.EntityDeals}, Incremental: true, Reconcile: true}, deals)
		calls, _ := connectors.StreamByName(e.conn, "calls")
		require.False(t, calls.Reconcile, "engagement streams share the activities table, so none may tombstone the others")
	})

	t.Run("Owners", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOptions{fast: true})
		active := e.fake.AddOwner("ana@example.com", "Ana", "Silva", "East")
		left := e.fake.AddOwner("ben@example.com", "Ben", "Okafor", "West")
		require.NoError(t, e.fake.ArchiveOwner(left))

		b, skipped, _ := e.read(t, hubspot.StreamOwners, connectors.Incremental, "", time.Now())
		require.Empty(t, skipped)
		require.Len(t, b.Owners, 1)
		o := b.Owners[0]
		require.Equal(t, active, o.ExternalID)
		require.Equal(t, "ana@example.com", o.Email)
		require.Equal(t, "Ana Silva", o.Name)
		require.Equal(t, "East", o.Team)
		require.True(t, o.Active)
		require.NotEmpty(t, o.Raw)

		// The rep who left is kept, inactive, by its own stream.
		b, _, _ = e.read(t, hubspot.StreamArchivedOwners, connectors.Full, "", time.Now())
		require.Len(t, b.Owners, 1)
		require.Equal(t, left, b.Owners[0].ExternalID)
		require.False(t, b.Owners[0].Active)
		require.Equal(t, "West", b.Owners[0].Team)
		for _, name := range []string{hubspot.StreamOwners, hubspot.StreamArchivedOwners} {
			s, _ := connectors.StreamByName(e.conn, name)
			require.False(t, s.Reconcile, "%s must not tombstone the other stream's owners", name)
		}
	})

	t.Run("PipelinesAndStages", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOptions{fast: true})
		b, skipped, next := e.read(t, hubspot.StreamPipelines, connectors.Incremental, "", time.Now())
		require.Empty(t, skipped)
		require.Empty(t, next)
		require.Len(t, b.Pipelines, 2)
		require.Equal(t, "Sales Pipeline", b.Pipelines[0].Name)
		require.Len(t, b.Stages, 12)
		stage := func(id string) pipeline.Stage {
			i := slices.IndexFunc(b.Stages, func(s pipeline.Stage) bool { return s.ExternalID == id })
			require.GreaterOrEqual(t, i, 0, id)
			return b.Stages[i]
		}
		want := map[string]struct {
			prob      string
			canonical pipeline.CanonicalStage
			closed    bool
			won       bool
		}{
			"appointmentscheduled":  {"0.2", pipeline.StageQualification, false, false},
			"qualifiedtobuy":        {"0.4", pipeline.StageNeedsAssessment, false, false},
			"presentationscheduled": {"0.6", pipeline.StageProposal, false, false},
			"decisionmakerboughtin": {"0.8", pipeline.StageNegotiation, false, false},
			"contractsent":          {"0.9", pipeline.StageClosing, false, false},
			"closedwon":             {"1", pipeline.StageClosedWon, true, true},
			"closedlost":            {"0", pipeline.StageClosedLost, true, false},
			// A custom pipeline's stages are left to GuessCanonical / the stage map.
			"152446548": {"0.5", "", false, false},
			"152446550": {"1", "", true, true},
			"152446551": {"0", "", true, false},
		}
		for id, w := range want {
			s := stage(id)
			require.True(t, decimal.RequireFromString(w.prob).Equal(*s.Probability), "%s probability %s", id, s.Probability)
			require.Equal(t, w.canonical, s.Canonical, id)
			require.Equal(t, w.closed, s.IsClosed, id)
			require.Equal(t, w.won, s.IsWon, id)
		}
		require.Equal(t, hubspottest.CustomPipeline, stage("152446548").PipelineExternalID)
		require.Equal(t, 1, stage("152446548").Position)
		require.Equal(t, pipeline.StageProposal, pipeline.StageMap(nil).Resolve(stage("152446548")), "guessed from its name")
		require.Equal(t, pipeline.StageClosedWon, pipeline.StageMap(nil).Resolve(stage("152446550")))
	})

	t.Run("CompaniesAreAccounts", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOptions{fast: true})
		e.fake.GenerateOwners(2)
		ids := e.fake.GenerateCompanies(30, hubspottest.GenerateOptions{})
		b, skipped, _ := e.read(t, hubspot.StreamCompanies, connectors.Incremental, "", time.Now())
		require.Empty(t, skipped)
		require.Len(t, b.Accounts, len(ids))
		for _, a := range b.Accounts {
			o, _ := e.fake.Object("companies", a.ExternalID)
			require.Equal(t, o.Properties["name"], a.Name)
			require.Equal(t, o.Properties["domain"], a.Domain)
			require.Equal(t, o.Properties["hubspot_owner_id"], a.OwnerExternalID)
			require.Equal(t, o.Modified, a.UpdatedAt)
		}
	})

	t.Run("ContactsAndTheLeadsAmongThem", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOptions{fast: true})
		e.fake.GenerateOwners(2)
		e.fake.GenerateCompanies(5, hubspottest.GenerateOptions{})
		ids := e.fake.GenerateContacts(200, hubspottest.GenerateOptions{})
		b, skipped, _ := e.read(t, hubspot.StreamContacts, connectors.Incremental, "", time.Now())
		require.Empty(t, skipped)
		require.Len(t, b.Contacts, len(ids))
		leads := make(map[string]pipeline.Lead)
		for _, l := range b.Leads {
			leads[l.ExternalID] = l
		}
		var sawMQL, sawSQL, sawConverted bool
		for _, c := range b.Contacts {
			o, _ := e.fake.Object("contacts", c.ExternalID)
			p := o.Properties
			require.Equal(t, p["email"], c.Email)
			require.Equal(t, p["firstname"]+" "+p["lastname"], c.Name)
			require.Equal(t, p["associatedcompanyid"], c.AccountExternalID)
			require.Equal(t, o.Modified, c.UpdatedAt, "contacts use lastmodifieddate")

			mql, reachedMQL := p["hs_lifecyclestage_marketingqualifiedlead_date"]
			l, isLead := leads[c.ExternalID]
			require.Equal(t, reachedMQL, isLead, "contact %s at %s", c.ExternalID, p["lifecyclestage"])
			if !isLead {
				continue
			}
			wantMQL, _ := time.Parse(time.RFC3339, mql)
			require.Equal(t, wantMQL, l.MQLAt)
			switch p["lifecyclestage"] {
			case "marketingqualifiedlead":
				require.Equal(t, pipeline.LeadMQL, l.Status)
				require.True(t, l.SQLAt.IsZero())
				sawMQL = true
			case "salesqualifiedlead":
				require.Equal(t, pipeline.LeadSQL, l.Status)
				require.False(t, l.SQLAt.IsZero())
				sawSQL = true
			default:
				require.Equal(t, pipeline.LeadConverted, l.Status)
				require.False(t, l.ConvertedAt.IsZero())
				sawConverted = true
			}
		}
		require.True(t, sawMQL && sawSQL && sawConverted)
	})

	t.Run("EngagementsAreActivitiesLinkedToDealsAndContacts", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOptions{fast: true})
		e.fake.GenerateOwners(2)
		e.fake.GenerateContacts(20, hubspottest.GenerateOptions{})
		e.fake.GenerateDeals(20, hubspottest.GenerateOptions{})
		for _, typ := range hubspottest.EngagementTypes {
			_, err := e.fake.GenerateEngagements(typ, 60, hubspottest.GenerateOptions{})
			require.NoError(t, err)
		}
		kinds := map[string]pipeline.ActivityKind{
			"calls": pipeline.ActivityCall, "emails": pipeline.ActivityEmail, "meetings": pipeline.ActivityMeeting,
			"notes": pipeline.ActivityNote, "tasks": pipeline.ActivityTask,
		}
		for _, mode := range []connectors.Mode{connectors.Incremental, connectors.Full} {
			for typ, kind := range kinds {
				b, skipped, _ := e.read(t, typ, mode, "", time.Now())
				require.Empty(t, skipped)
				require.Len(t, b.Activities, 60, "%s %s", mode, typ)
				linkedDeal, linkedContact := 0, 0
				for _, a := range b.Activities {
					o, _ := e.fake.Object(typ, a.ExternalID)
					p := o.Properties
					require.Equal(t, kind, a.Kind)
					require.Equal(t, p["hubspot_owner_id"], a.OwnerExternalID)
					occurred, _ := time.Parse(time.RFC3339, p["hs_timestamp"])
					require.Equal(t, occurred, a.OccurredAt)
					require.Equal(t, first(o.Associations["deals"]), a.DealExternalID, "%s %s %s", mode, typ, a.ExternalID)
					require.Equal(t, first(o.Associations["contacts"]), a.ContactExternalID)
					if a.DealExternalID != "" {
						linkedDeal++
					}
					if a.ContactExternalID != "" {
						linkedContact++
					}
					switch typ {
					case "calls":
						require.Equal(t, map[string]pipeline.Direction{"INBOUND": pipeline.Inbound, "OUTBOUND": pipeline.Outbound}[p["hs_call_direction"]], a.Direction)
						require.Equal(t, p["hs_call_title"], a.Subject)
					case "emails":
						want := pipeline.Outbound
						if p["hs_email_direction"] == "INCOMING_EMAIL" {
							want = pipeline.Inbound
						}
						require.Equal(t, want, a.Direction)
					case "notes":
						require.Regexp(t, `^Note \d+$`, a.Subject, "the first line of the note, without markup")
					case "tasks":
						require.Equal(t, p["hs_task_status"] == "COMPLETED", a.Done)
					case "meetings":
						require.Equal(t, p["hs_meeting_outcome"] == "COMPLETED", a.Done)
					}
				}
				require.Positive(t, linkedDeal)
				require.Positive(t, linkedContact)
			}
		}
	})

	t.Run("ArchivedRecordsAreDeletions", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOptions{fast: true, config: hubspot.Config{PageSize: 10}})
		deals := e.fake.GenerateDeals(40, hubspottest.GenerateOptions{})
		contacts := e.fake.GenerateContacts(10, hubspottest.GenerateOptions{})
		calls, err := e.fake.GenerateEngagements("calls", 5, hubspottest.GenerateOptions{})
		require.NoError(t, err)
		notes, err := e.fake.GenerateEngagements("notes", 5, hubspottest.GenerateOptions{})
		require.NoError(t, err)
		archive := func(typ string, ids ...string) {
			for _, id := range ids {
				require.NoError(t, e.fake.Archive(typ, id))
			}
		}
		archive("deals", deals[:25]...)
		archive("contacts", contacts[0])
		archive("calls", calls[1])
		archive("notes", notes[2])

		b, skipped, _ := e.read(t, hubspot.StreamArchivedDeals, connectors.Incremental, "", time.Now())
		require.Empty(t, skipped)
		require.Len(t, b.Deletions, 25, "paged over several pages")
		for _, d := range b.Deletions {
			require.Equal(t, pipeline.EntityDeals, d.Entity)
			require.False(t, d.DeletedAt.IsZero())
		}

		b, _, _ = e.read(t, hubspot.StreamArchivedContacts, connectors.Incremental, "", time.Now())
		require.ElementsMatch(t, []pipeline.Deletion{
			{Entity: pipeline.EntityContacts, ExternalID: contacts[0], DeletedAt: b.Deletions[0].DeletedAt},
			{Entity: pipeline.EntityLeads, ExternalID: contacts[0], DeletedAt: b.Deletions[0].DeletedAt},
		}, b.Deletions)

		for stream, want := range map[string]string{hubspot.StreamArchivedCalls: calls[1], hubspot.StreamArchivedNotes: notes[2]} {
			b, _, _ = e.read(t, stream, connectors.Full, "", time.Now())
			require.Len(t, b.Deletions, 1, stream)
			require.Equal(t, pipeline.Deletion{Entity: pipeline.EntityActivities, ExternalID: want, DeletedAt: b.Deletions[0].DeletedAt}, b.Deletions[0])
		}
		b, _, _ = e.read(t, hubspot.StreamArchivedEmails, connectors.Full, "", time.Now())
		require.Empty(t, b.Deletions)

		// Archived deals are absent from search and from Full reads.
		live, _, _ := e.read(t, hubspot.StreamDeals, connectors.Incremental, "", time.Now())
		require.Len(t, live.Deals, 15)
		full, _, _ := e.read(t, hubspot.StreamDeals, connectors.Full, "", time.Now())
		require.Len(t, full.Deals, 15)
	})
}

// first is the lowest id, the one an activity links to when several are associated.
func first(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	return slices.MinFunc(ids, connectortest.CompareIDs)
}

func TestRawIsTheSameForSearchAndList(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{fast: true, config: hubspot.Config{Lag: -time.Second}})
	e.fake.GenerateOwners(2)
	e.fake.GenerateDeals(40, hubspottest.GenerateOptions{})

	searched, skipped, _ := e.read(t, hubspot.StreamDeals, connectors.Incremental, "", time.Now().Add(time.Hour))
	require.Empty(t, skipped)
	listed, skipped, _ := e.read(t, hubspot.StreamDeals, connectors.Full, "", time.Now().Add(time.Hour))
	require.Empty(t, skipped)
	require.Len(t, searched.Deals, 40)
	require.Len(t, listed.Deals, 40)

	byID := map[string]json.RawMessage{}
	for _, d := range listed.Deals {
		byID[d.ExternalID] = d.Raw
	}
	for _, d := range searched.Deals {
		var fromSearch, fromList map[string]any
		require.NoError(t, json.Unmarshal(d.Raw, &fromSearch))
		require.NoError(t, json.Unmarshal(byID[d.ExternalID], &fromList))
		require.Equal(t, fromList["properties"], fromSearch["properties"],
			"deal %s: an unchanged deal must be stored the same whichever endpoint read it", d.ExternalID)
	}
}
