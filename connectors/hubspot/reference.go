package hubspot

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shopspring/decimal"

	"github.com/pipewatch/pipewatch/connectors"
	"github.com/pipewatch/pipewatch/pipeline"
)

// ownerBody is an owner from GET /crm/v3/owners.
type ownerBody struct {
	ID        json.RawMessage `json:"id"`
	Email     string          `json:"email"`
	FirstName string          `json:"firstName"`
	LastName  string          `json:"lastName"`
	Teams     []struct {
		Name    string `json:"name"`
		Primary bool   `json:"primary"`
	} `json:"teams"`
	Archived  bool   `json:"archived"`
	CreatedAt string `json:"createdAt"`
	UpdatedAt string `json:"updatedAt"`
}

// ownersReader lists the active owners, or the archived ones (reps who left, kept with
// Active false so their deals keep their owner).
func (c *Connector) ownersReader(archived bool) streamReader {
	return func(ctx context.Context, req connectors.ReadRequest) (connectors.Page, error) {
		cur, err := decodeListCursor(req.Cursor, false)
		if err != nil {
			return connectors.Page{}, err
		}
		q := url.Values{}
		q.Set("limit", "100")
		q.Set("archived", strconv.FormatBool(archived))
		if cur.After != "" {
			q.Set("after", cur.After)
		}
		var pb pageBody
		if _, err := c.call(ctx, "GET", "/crm/v3/owners", q, nil, &pb); err != nil {
			return connectors.Page{}, fmt.Errorf("listing owners (archived=%t) after %q: %w", archived, cur.After, err)
		}
		var page connectors.Page
		for i, raw := range pb.Results {
			owner, skipped := mapOwner(i, raw)
			if skipped != nil {
				page.Skipped = append(page.Skipped, *skipped)
				continue
			}
			page.Owners = append(page.Owners, owner)
		}
		switch after := pb.next(); {
		case after != "" && after == cur.After:
			return connectors.Page{}, fmt.Errorf("listing owners after %q: the list made no progress", cur.After)
		case after != "":
			page.Next = listCursor{After: after}.encode()
		default:
			page.Done = true
		}
		return page, nil
	}
}

func mapOwner(index int, raw json.RawMessage) (pipeline.Owner, *connectors.SkippedRecord) {
	var b ownerBody
	if err := json.Unmarshal(raw, &b); err != nil {
		return pipeline.Owner{}, &connectors.SkippedRecord{Entity: pipeline.EntityOwners, ExternalID: bestEffortID(raw),
			Reason: fmt.Sprintf("owner #%d is malformed: %v", index, err)}
	}
	id, ok := jsonString(b.ID)
	if !ok || id == "" {
		return pipeline.Owner{}, &connectors.SkippedRecord{Entity: pipeline.EntityOwners,
			Reason: fmt.Sprintf("owner #%d has no id (payload starts %q)", index, start(raw, 120))}
	}
	o := pipeline.Owner{
		Record: pipeline.Record{ExternalID: id, CreatedAt: parseTimeOrZero(b.CreatedAt), UpdatedAt: parseTimeOrZero(b.UpdatedAt), Raw: raw},
		Email:  b.Email, Name: strings.TrimSpace(b.FirstName + " " + b.LastName), Active: !b.Archived,
	}
	for _, t := range b.Teams {
		if t.Primary || o.Team == "" {
			o.Team = t.Name
		}
	}
	return o, nil
}

// pipelineBody is a deal pipeline from GET /crm/v3/pipelines/deals.
type pipelineBody struct {
	ID           string `json:"id"`
	Label        string `json:"label"`
	DisplayOrder int    `json:"displayOrder"`
	Archived     bool   `json:"archived"`
	CreatedAt    string `json:"createdAt"`
	UpdatedAt    string `json:"updatedAt"`
	Stages       []struct {
		ID           string          `json:"id"`
		Label        string          `json:"label"`
		DisplayOrder int             `json:"displayOrder"`
		Archived     bool            `json:"archived"`
		Metadata     json.RawMessage `json:"metadata"`
		CreatedAt    string          `json:"createdAt"`
		UpdatedAt    string          `json:"updatedAt"`
	} `json:"stages"`
}

// defaultStageIDs are the stages of HubSpot's default deal pipeline ("default").
var defaultStageIDs = []string{
	"appointmentscheduled", "qualifiedtobuy", "presentationscheduled", "decisionmakerboughtin",
	"contractsent", "closedwon", "closedlost",
}

// defaultCanonical maps HubSpot's default stage ids to standard stages; other stages are
// left to pipeline.GuessCanonical (and the connection's stage map).
var defaultCanonical = map[string]pipeline.CanonicalStage{
	"appointmentscheduled":  pipeline.StageQualification,
	"qualifiedtobuy":        pipeline.StageNeedsAssessment,
	"presentationscheduled": pipeline.StageProposal,
	"decisionmakerboughtin": pipeline.StageNegotiation,
	"contractsent":          pipeline.StageClosing,
	"closedwon":             pipeline.StageClosedWon,
	"closedlost":            pipeline.StageClosedLost,
}

// readPipelines reads the deal pipelines and their stages (one request, not paged) and
// refreshes the stage cache the deals stream uses.
func (c *Connector) readPipelines(ctx context.Context, req connectors.ReadRequest) (connectors.Page, error) {
	if req.Cursor != "" {
		if _, err := decodeListCursor(req.Cursor, req.Mode == connectors.Full); err != nil {
			return connectors.Page{}, err
		}
	}
	page, err := c.fetchPipelines(ctx)
	if err != nil {
		return connectors.Page{}, err
	}
	page.Done = true
	return page, nil
}

func (c *Connector) fetchPipelines(ctx context.Context) (connectors.Page, error) {
	var pb pageBody
	if _, err := c.call(ctx, "GET", "/crm/v3/pipelines/deals", nil, nil, &pb); err != nil {
		return connectors.Page{}, fmt.Errorf("reading deal pipelines: %w", err)
	}
	var page connectors.Page
	for i, raw := range pb.Results {
		var p pipelineBody
		if err := json.Unmarshal(raw, &p); err != nil || p.ID == "" {
			reason := fmt.Sprintf("pipeline #%d has no id", i)
			if err != nil {
				reason = fmt.Sprintf("pipeline #%d is malformed: %v", i, err)
			}
			page.Skipped = append(page.Skipped, connectors.SkippedRecord{Entity: pipeline.EntityPipelines, ExternalID: bestEffortID(raw), Reason: reason})
			continue
		}
		if p.Archived {
			continue
		}
		page.Pipelines = append(page.Pipelines, pipeline.Pipeline{
			Record: pipeline.Record{ExternalID: p.ID, CreatedAt: parseTimeOrZero(p.CreatedAt), UpdatedAt: parseTimeOrZero(p.UpdatedAt), Raw: raw},
			Name:   p.Label, Position: p.DisplayOrder,
		})
		for _, s := range p.Stages {
			if s.Archived || s.ID == "" {
				continue
			}
			stage, err := mapStage(p.ID, s.ID, s.Label, s.DisplayOrder, s.Metadata)
			if err != nil {
				page.Skipped = append(page.Skipped, connectors.SkippedRecord{Entity: pipeline.EntityStages, ExternalID: s.ID,
					Reason: fmt.Sprintf("stage %s of pipeline %s: %v", s.ID, p.ID, err)})
				continue
			}
			stage.CreatedAt, stage.UpdatedAt = parseTimeOrZero(s.CreatedAt), parseTimeOrZero(s.UpdatedAt)
			stage.Raw, _ = json.Marshal(s)
			page.Stages = append(page.Stages, stage)
		}
	}
	c.stages.set(page.Stages)
	return page, nil
}

// mapStage reads a stage's metadata: probability "0.0"–"1.0" and isClosed, both strings.
// A closed stage is won when its probability is 1 (HubSpot's closed-won convention).
func mapStage(pipelineID, id, label string, order int, metadata json.RawMessage) (pipeline.Stage, error) {
	var md map[string]json.RawMessage
	if len(metadata) > 0 {
		if err := json.Unmarshal(metadata, &md); err != nil {
			return pipeline.Stage{}, fmt.Errorf("metadata is not an object: %v", err)
		}
	}
	r := &record{id: id, props: md}
	closed := r.bool("isClosed")
	prob := r.probability("probability")
	if r.err != nil {
		return pipeline.Stage{}, r.err
	}
	won := closed && (id == "closedwon" || (prob != nil && prob.Equal(decimal.NewFromInt(1))))
	return pipeline.Stage{
		Record:             pipeline.Record{ExternalID: id},
		PipelineExternalID: pipelineID, Name: label, Position: order,
		Probability: prob, IsClosed: closed, IsWon: won, Canonical: defaultCanonical[id],
	}, nil
}

// stageCacheTTL is how long the deals stream trusts the pipelines it read.
const stageCacheTTL = 10 * time.Minute

// stageCache keeps the deal stages: their ids name the hs_date_entered_/hs_date_exited_
// properties of stage history, and their flags fill deals that lack hs_is_closed.
type stageCache struct {
	ttl time.Duration
	now func() time.Time

	mu     sync.Mutex
	loaded time.Time
	byID   map[string]pipeline.Stage
	props  []string
}

func (sc *stageCache) set(stages []pipeline.Stage) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.byID = make(map[string]pipeline.Stage, len(stages))
	sc.props = sc.props[:0]
	for _, s := range stages {
		sc.byID[s.ExternalID] = s
		sc.props = append(sc.props, "hs_date_entered_"+s.ExternalID, "hs_date_exited_"+s.ExternalID)
	}
	slices.Sort(sc.props)
	sc.loaded = sc.now()
}

// get returns the cached stages and their history properties, or false when stale.
func (sc *stageCache) get() (map[string]pipeline.Stage, []string, bool) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.byID == nil || sc.now().Sub(sc.loaded) > sc.ttl {
		return nil, nil, false
	}
	return sc.byID, slices.Clone(sc.props), true
}

// stagesFor returns the stages, reading the pipelines when the cache is cold or stale.
func (c *Connector) stagesFor(ctx context.Context) (map[string]pipeline.Stage, []string, error) {
	if byID, props, ok := c.stages.get(); ok {
		return byID, props, nil
	}
	if _, err := c.fetchPipelines(ctx); err != nil {
		return nil, nil, err
	}
	byID, props, _ := c.stages.get()
	return byID, props, nil
}
