package alerting

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pipewatch/pipewatch/internal/config"
	"github.com/pipewatch/pipewatch/internal/notify"
)

// Person is a CRM owner as routing sees it.
type Person struct {
	ID    int64
	Email string // lower case; "" when the CRM has none
	Name  string
	// Team is the owner's team: the teams config's membership wins over the CRM's field.
	Team      string
	ManagerID int64 // 0 = none
	Timezone  string
	// Active is false for owners deactivated or deleted in the CRM.
	Active bool
}

// Recipient is who a notification goes to.
type Recipient struct {
	Channel notify.Channel
	// Address is an email (DM) or a Slack channel.
	Address string
	// Timezone is the recipient's IANA zone when known ("" = unknown).
	Timezone string
}

// key identifies the recipient for grouping.
func (r Recipient) key() string { return string(r.Channel) + ":" + r.Address }

// Directory answers routing questions: who owns, who manages, where team news goes.
type Directory struct {
	people  map[int64]*Person
	byEmail map[string]*Person
	teams   map[string]config.Team
	routing config.Routing
	orgTZ   string
}

// NewDirectory builds a directory of people under settings s.
func NewDirectory(people []Person, s Settings) *Directory {
	d := &Directory{
		people: make(map[int64]*Person, len(people)), byEmail: make(map[string]*Person, len(people)),
		teams: make(map[string]config.Team, len(s.Teams)), routing: s.Routing, orgTZ: s.Org.Timezone,
	}
	memberOf := map[string]string{}
	for _, t := range s.Teams {
		d.teams[t.Name] = t
		for _, m := range t.Members {
			memberOf[strings.ToLower(m)] = t.Name
		}
	}
	for i := range people {
		p := people[i]
		p.Email = strings.ToLower(p.Email)
		if team, ok := memberOf[p.Email]; ok && p.Email != "" {
			p.Team = team
		}
		d.people[p.ID] = &p
		if prev, dup := d.byEmail[p.Email]; p.Email != "" && (!dup || (!prev.Active && p.Active)) {
			d.byEmail[p.Email] = &p
		}
	}
	return d
}

// loadDirectory reads every owner.
func loadDirectory(ctx context.Context, tx pgx.Tx, s Settings) (*Directory, error) {
	rows, err := tx.Query(ctx, `
		SELECT id, coalesce(lower(email), ''), coalesce(name, ''), coalesce(team, ''), coalesce(manager_owner_id, 0),
		       coalesce(timezone, ''), active AND deleted_at IS NULL
		FROM owners`)
	if err != nil {
		return nil, fmt.Errorf("reading owners: %w", err)
	}
	var people []Person
	var p Person
	if _, err := pgx.ForEachRow(rows, []any{&p.ID, &p.Email, &p.Name, &p.Team, &p.ManagerID, &p.Timezone, &p.Active}, func() error {
		people = append(people, p)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("reading owners: %w", err)
	}
	return NewDirectory(people, s), nil
}

// Person returns the owner with id.
func (d *Directory) Person(id int64) (*Person, bool) {
	p, ok := d.people[id]
	return p, ok
}

// Team returns the owner's team name ("" = none).
func (d *Directory) Team(ownerID int64) string {
	if p, ok := d.people[ownerID]; ok {
		return p.Team
	}
	return ""
}

// OwnerRecipient is who hears about an alert on a deal of ownerID: the owner by DM, or
// their manager when the owner is deactivated, deleted, unknown or has no email. The
// bool says whether the owner themself is the recipient.
func (d *Directory) OwnerRecipient(ownerID int64) (Recipient, bool, bool) {
	if p, ok := d.people[ownerID]; ok && p.Active && p.Email != "" {
		return Recipient{Channel: notify.ChannelDM, Address: p.Email, Timezone: d.timezoneOf(p)}, true, true
	}
	r, ok := d.ManagerOf(ownerID)
	return r, false, ok
}

// ManagerOf is the manager of ownerID: the CRM manager (when active), else the manager of
// the owner's team, else routing.default_manager_email.
func (d *Directory) ManagerOf(ownerID int64) (Recipient, bool) {
	if p, ok := d.people[ownerID]; ok {
		if m, ok := d.people[p.ManagerID]; ok && m.Active && m.Email != "" && m.ID != p.ID {
			return Recipient{Channel: notify.ChannelDM, Address: m.Email, Timezone: d.timezoneOf(m)}, true
		}
		if r, ok := d.teamManager(p.Team); ok && r.Address != p.Email {
			return r, true
		}
	}
	return d.defaultManager()
}

// TeamManager is the manager of team (else the default manager).
func (d *Directory) TeamManager(team string) (Recipient, bool) {
	if r, ok := d.teamManager(team); ok {
		return r, true
	}
	return d.defaultManager()
}

func (d *Directory) teamManager(team string) (Recipient, bool) {
	t, ok := d.teams[team]
	if !ok || t.ManagerEmail == "" {
		return Recipient{}, false
	}
	tz := t.Timezone
	if p, ok := d.byEmail[t.ManagerEmail]; ok && p.Timezone != "" {
		tz = p.Timezone
	}
	return Recipient{Channel: notify.ChannelDM, Address: t.ManagerEmail, Timezone: tz}, true
}

func (d *Directory) defaultManager() (Recipient, bool) {
	e := strings.ToLower(d.routing.DefaultManagerEmail)
	if e == "" {
		return Recipient{}, false
	}
	tz := d.orgTZ
	if p, ok := d.byEmail[e]; ok && p.Timezone != "" {
		tz = p.Timezone
	}
	return Recipient{Channel: notify.ChannelDM, Address: e, Timezone: tz}, true
}

// GroupRecipient is where an alert about a team or the org goes (coverage shortfall, lead
// velocity drop): the team's Slack channel, else routing.channel, else the manager of the
// scope (the owner's manager for an owner, the team's manager for a team, the default
// manager for the org).
func (d *Directory) GroupRecipient(ownerEmail, team string) (Recipient, bool) {
	if t, ok := d.teams[team]; ok && t.SlackChannel != "" {
		return Recipient{Channel: notify.ChannelSlack, Address: t.SlackChannel, Timezone: t.Timezone}, true
	}
	if d.routing.Channel != "" {
		return Recipient{Channel: notify.ChannelSlack, Address: d.routing.Channel, Timezone: d.orgTZ}, true
	}
	switch {
	case ownerEmail != "":
		if p, ok := d.byEmail[strings.ToLower(ownerEmail)]; ok {
			return d.ManagerOf(p.ID)
		}
		return d.defaultManager()
	case team != "":
		return d.TeamManager(team)
	}
	return d.defaultManager()
}

// timezoneOf is the person's zone, else their team's, else the org's.
func (d *Directory) timezoneOf(p *Person) string {
	if p.Timezone != "" {
		return p.Timezone
	}
	if t, ok := d.teams[p.Team]; ok && t.Timezone != "" {
		return t.Timezone
	}
	return d.orgTZ
}

// teamOfEmail is the team an email belongs to ("" = none).
func (d *Directory) teamOfEmail(email string) string {
	if p, ok := d.byEmail[strings.ToLower(email)]; ok {
		return p.Team
	}
	for _, t := range d.teams {
		for _, m := range t.Members {
			if strings.EqualFold(m, email) {
				return t.Name
			}
		}
	}
	return ""
}

// ownerIDByEmail is an owner with that email (0 = none).
func (d *Directory) ownerIDByEmail(email string) int64 {
	if p, ok := d.byEmail[strings.ToLower(email)]; ok && email != "" {
		return p.ID
	}
	return 0
}
