package hubspottest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"time"
)

// owner is a CRM user who owns records (GET /crm/v3/owners).
type owner struct {
	ID        string      `json:"id"`
	Email     string      `json:"email"`
	FirstName string      `json:"firstName"`
	LastName  string      `json:"lastName"`
	UserID    int64       `json:"userId"`
	Type      string      `json:"type"`
	Teams     []ownerTeam `json:"teams,omitempty"`
	Archived  bool        `json:"archived"`
	CreatedAt string      `json:"createdAt"`
	UpdatedAt string      `json:"updatedAt"`
}

type ownerTeam struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Primary bool   `json:"primary"`
}

// pipelineDef is a deal pipeline (GET /crm/v3/pipelines/deals).
type pipelineDef struct {
	ID           string     `json:"id"`
	Label        string     `json:"label"`
	DisplayOrder int        `json:"displayOrder"`
	Archived     bool       `json:"archived"`
	CreatedAt    string     `json:"createdAt"`
	UpdatedAt    string     `json:"updatedAt"`
	Stages       []stageDef `json:"stages"`
}

type stageDef struct {
	ID               string        `json:"id"`
	Label            string        `json:"label"`
	DisplayOrder     int           `json:"displayOrder"`
	Archived         bool          `json:"archived"`
	Metadata         stageMetadata `json:"metadata"`
	WritePermissions string        `json:"writePermissions"`
	CreatedAt        string        `json:"createdAt"`
	UpdatedAt        string        `json:"updatedAt"`
}

// stageMetadata carries strings, as HubSpot sends them.
type stageMetadata struct {
	IsClosed    string `json:"isClosed"`
	Probability string `json:"probability"`
}

// DefaultStages are the stage ids of HubSpot's default sales pipeline, in order.
var DefaultStages = []string{
	"appointmentscheduled", "qualifiedtobuy", "presentationscheduled", "decisionmakerboughtin",
	"contractsent", "closedwon", "closedlost",
}

// CustomPipeline and CustomStages are a second pipeline with numeric stage ids, as portals
// that add pipelines have.
const CustomPipeline = "87654321"

// CustomStages are the stage ids of CustomPipeline, in order.
var CustomStages = []string{"152446547", "152446548", "152446549", "152446550", "152446551"}

func defaultPipelines(now time.Time) []*pipelineDef {
	ts := formatTime(now.Add(-365 * 24 * time.Hour))
	stage := func(id, label string, order int, closed bool, prob string) stageDef {
		return stageDef{
			ID: id, Label: label, DisplayOrder: order, WritePermissions: "CRM_PERMISSIONS_ENFORCEMENT",
			Metadata:  stageMetadata{IsClosed: strconv.FormatBool(closed), Probability: prob},
			CreatedAt: ts, UpdatedAt: ts,
		}
	}
	return []*pipelineDef{
		{ID: "default", Label: "Sales Pipeline", DisplayOrder: 0, CreatedAt: ts, UpdatedAt: ts, Stages: []stageDef{
			stage("appointmentscheduled", "Appointment Scheduled", 0, false, "0.2"),
			stage("qualifiedtobuy", "Qualified To Buy", 1, false, "0.4"),
			stage("presentationscheduled", "Presentation Scheduled", 2, false, "0.6"),
			stage("decisionmakerboughtin", "Decision Maker Bought-In", 3, false, "0.8"),
			stage("contractsent", "Contract Sent", 4, false, "0.9"),
			stage("closedwon", "Closed Won", 5, true, "1.0"),
			stage("closedlost", "Closed Lost", 6, true, "0.0"),
		}},
		{ID: CustomPipeline, Label: "Renewals", DisplayOrder: 1, CreatedAt: ts, UpdatedAt: ts, Stages: []stageDef{
			stage("152446547", "Discovery", 0, false, "0.1"),
			stage("152446548", "Renewal Proposal", 1, false, "0.5"),
			stage("152446549", "Verbal Commit", 2, false, "0.9"),
			stage("152446550", "Renewed", 3, true, "1.0"),
			stage("152446551", "Churned", 4, true, "0.0"),
		}},
	}
}

func (s *Server) stageOf(pipeline, stageID string) (stageDef, bool) {
	for _, p := range s.pipes {
		if p.ID != pipeline {
			continue
		}
		for _, st := range p.Stages {
			if st.ID == stageID {
				return st, true
			}
		}
	}
	return stageDef{}, false
}

func (s *Server) servePipelines(w http.ResponseWriter) {
	s.mu.Lock()
	var live []*pipelineDef
	for _, p := range s.pipes {
		if !p.Archived {
			live = append(live, p)
		}
	}
	body, err := json.Marshal(map[string]any{"results": live})
	s.mu.Unlock()
	if err != nil {
		writeError(w, http.StatusInternalServerError, "INTERNAL_ERROR", err.Error())
		return
	}
	writeRaw(w, http.StatusOK, body)
}

// serveOwners is GET /crm/v3/owners?limit=&after=&archived=.
func (s *Server) serveOwners(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", fmt.Sprintf("limit must be between 1 and 500, got %q", v))
			return
		}
		limit = n
	}
	offset := 0
	if v := q.Get("after"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", fmt.Sprintf("invalid after %q", v))
			return
		}
		offset = n
	}
	archived := q.Get("archived") == "true"
	s.mu.Lock()
	var matching []*owner
	for _, o := range s.owners {
		if o.Archived == archived {
			matching = append(matching, o)
		}
	}
	end := min(offset+limit, len(matching))
	body := map[string]any{"results": matching[min(offset, len(matching)):end]}
	if end < len(matching) {
		body["paging"] = map[string]any{"next": map[string]string{"after": strconv.Itoa(end), "link": "?after=" + strconv.Itoa(end)}}
	}
	raw, err := json.Marshal(body)
	s.mu.Unlock()
	if err != nil {
		writeError(w, http.StatusInternalServerError, "INTERNAL_ERROR", err.Error())
		return
	}
	writeRaw(w, http.StatusOK, raw)
}

// AddOwner adds an active owner and returns its id.
func (s *Server) AddOwner(email, firstName, lastName, team string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addOwnerLocked(email, firstName, lastName, team)
}

func (s *Server) addOwnerLocked(email, firstName, lastName, team string) string {
	s.nextID++
	id := strconv.FormatInt(s.nextID, 10)
	ts := formatTime(s.now())
	o := &owner{ID: id, Email: email, FirstName: firstName, LastName: lastName, UserID: s.nextID + 9_000_000,
		Type: "PERSON", CreatedAt: ts, UpdatedAt: ts}
	if team != "" {
		o.Teams = []ownerTeam{{ID: "team-" + team, Name: team, Primary: true}}
	}
	s.owners = append(s.owners, o)
	return id
}

// ArchiveOwner deactivates an owner (a rep who left): it moves to the archived=true list.
func (s *Server) ArchiveOwner(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, o := range s.owners {
		if o.ID == id {
			c := *o
			c.Archived, c.UpdatedAt = true, formatTime(s.now())
			s.owners[i] = &c
			return nil
		}
	}
	return fmt.Errorf("hubspottest: no owner %s", id)
}

// OwnerIDs returns the ids of the active (or archived) owners.
func (s *Server) OwnerIDs(archived bool) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for _, o := range s.owners {
		if o.Archived == archived {
			ids = append(ids, o.ID)
		}
	}
	sort.Strings(ids)
	return ids
}
