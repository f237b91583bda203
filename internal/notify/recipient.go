package notify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/slack-go/slack"

	"github.com/pipewatch/pipewatch/internal/config"
)

// Slack directory cache lifetimes: a found user is trusted for a day; "no Slack user has
// this email" only for an hour, so a rep invited to Slack today gets today's messages.
const (
	userCacheTTL = 24 * time.Hour
	userMissTTL  = time.Hour
)

// destination is where and when a notification may be delivered.
type destination struct {
	// conversation is what chat.postMessage gets: a D… id for a DM, the channel id or
	// name for a channel; "" in console mode.
	conversation string
	// dmUser is the Slack user of a DM ("" otherwise).
	dmUser   string
	calendar Calendar
}

// owner is what the synced CRM knows about a recipient.
type owner struct {
	slackUserID string
	timezone    string
	team        string
}

// resolve finds the recipient's conversation and calendar: for a DM the owner's Slack user
// (owners.slack_user_id, else users.lookupByEmail, cached) and its DM channel
// (conversations.open, cached); the time zone is the CRM's, else the Slack profile's, else
// the team's, else the org's, else UTC. A channel uses its team's zone, else the org's.
func (d *Deliverer) resolve(ctx context.Context, n notification) (destination, error) {
	org, err := config.LoadOrg(ctx, d.db)
	if err != nil {
		return destination{}, err
	}
	teams, err := config.LoadTeams(ctx, d.db)
	if err != nil {
		return destination{}, err
	}
	if n.Channel == ChannelSlack {
		team := findTeam(teams, func(t config.Team) bool { return n.AlertTeam != "" && t.Name == n.AlertTeam })
		if team == nil {
			team = findTeam(teams, func(t config.Team) bool {
				return t.SlackChannel != "" && strings.TrimPrefix(t.SlackChannel, "#") == strings.TrimPrefix(n.Recipient, "#")
			})
		}
		return destination{conversation: d.consoleOr(n.Recipient), calendar: d.calendar(team, org, "")}, nil
	}

	email := strings.ToLower(strings.TrimSpace(n.Recipient))
	if !strings.Contains(email, "@") { // a Slack user id
		team := findTeam(teams, func(t config.Team) bool { return n.AlertTeam != "" && t.Name == n.AlertTeam })
		dest := destination{dmUser: n.Recipient, calendar: d.calendar(team, org, "")}
		if d.slack != nil {
			if dest.conversation, err = d.dmChannel(ctx, n.Recipient); err != nil {
				return destination{}, err
			}
		}
		return dest, nil
	}
	o, err := d.owner(ctx, email)
	if err != nil {
		return destination{}, err
	}
	team := findTeam(teams, func(t config.Team) bool { return slices.Contains(t.Members, email) })
	if team == nil {
		team = findTeam(teams, func(t config.Team) bool { return o.team != "" && t.Name == o.team })
	}
	if team == nil {
		team = findTeam(teams, func(t config.Team) bool { return strings.EqualFold(t.ManagerEmail, email) })
	}
	if d.slack == nil {
		return destination{calendar: d.calendar(team, org, o.timezone)}, nil
	}

	userID, zone := o.slackUserID, o.timezone
	if userID == "" || !validZone(zone) {
		u, err := d.lookupUser(ctx, email)
		if err != nil {
			return destination{}, err
		}
		if userID == "" {
			userID = u.ID
		}
		if !validZone(zone) {
			zone = u.TZ
		}
	}
	conversation, err := d.dmChannel(ctx, userID)
	if err != nil {
		return destination{}, err
	}
	return destination{conversation: conversation, dmUser: userID, calendar: d.calendar(team, org, zone)}, nil
}

func (d *Deliverer) consoleOr(conversation string) string {
	if d.slack == nil {
		return ""
	}
	return conversation
}

// calendar is the delivery calendar of a recipient in team (nil = none) whose own zone is
// zone ("" = unknown): the first valid of zone, the team's, the org's, else UTC.
func (d *Deliverer) calendar(team *config.Team, org config.Org, zone string) Calendar {
	var c Calendar
	zones := []string{zone}
	if team != nil {
		c.BusinessDays = team.BusinessDays
		c.Holidays = team.Holidays
		zones = append(zones, team.Timezone)
	}
	zones = append(zones, org.Timezone)
	for _, z := range zones {
		if z == "" {
			continue
		}
		loc, err := time.LoadLocation(z)
		if err != nil {
			d.logger.Warn("notify: ignoring unknown time zone", "time_zone", z, "error", err)
			continue
		}
		c.Location = loc
		break
	}
	return c
}

func validZone(zone string) bool {
	if zone == "" {
		return false
	}
	_, err := time.LoadLocation(zone)
	return err == nil
}

func findTeam(teams []config.Team, match func(config.Team) bool) *config.Team {
	for i := range teams {
		if match(teams[i]) {
			return &teams[i]
		}
	}
	return nil
}

// owner merges what every live owner row with the email says (one person may be an owner
// in several CRMs), preferring active and recently synced rows.
func (d *Deliverer) owner(ctx context.Context, email string) (owner, error) {
	var o owner
	err := d.db.QueryRow(ctx, `
		SELECT coalesce((array_agg(slack_user_id ORDER BY active DESC, synced_at DESC) FILTER (WHERE slack_user_id <> ''))[1], ''),
		       coalesce((array_agg(timezone ORDER BY active DESC, synced_at DESC) FILTER (WHERE timezone <> ''))[1], ''),
		       coalesce((array_agg(team ORDER BY active DESC, synced_at DESC) FILTER (WHERE team <> ''))[1], '')
		FROM owners WHERE lower(email) = $1 AND deleted_at IS NULL`, email,
	).Scan(&o.slackUserID, &o.timezone, &o.team)
	if err != nil {
		return o, fmt.Errorf("loading owner %s: %w", email, err)
	}
	return o, nil
}

// slackUser is a cached users.lookupByEmail answer.
type slackUser struct {
	ID string
	TZ string
}

// lookupUser maps an email to a Slack user through the slack_users cache, asking
// users.lookupByEmail on a miss. "No such user" is cached too, for a shorter time.
func (d *Deliverer) lookupUser(ctx context.Context, email string) (slackUser, error) {
	now := d.now()
	var id, tz *string
	var expires time.Time
	err := d.db.QueryRow(ctx, `SELECT slack_user_id, timezone, expires_at FROM slack_users WHERE email = $1`, email).
		Scan(&id, &tz, &expires)
	switch {
	case err == nil && expires.After(now) && id == nil:
		return slackUser{}, &slackFailure{method: "users.lookupByEmail", code: "users_not_found", kind: permanent,
			err: errors.New("users_not_found (cached)")}
	case err == nil && expires.After(now):
		return slackUser{ID: *id, TZ: deref(tz)}, nil
	case err != nil && !errors.Is(err, pgx.ErrNoRows):
		return slackUser{}, fmt.Errorf("reading the Slack user cache: %w", err)
	}

	u, err := d.slack.GetUserByEmailContext(ctx, email)
	if err != nil {
		f := classify("users.lookupByEmail", err)
		if f.code == "users_not_found" {
			if err := d.cacheUser(ctx, email, nil, now.Add(userMissTTL)); err != nil {
				return slackUser{}, err
			}
		}
		return slackUser{}, f
	}
	if u.Deleted {
		return slackUser{}, &slackFailure{method: "users.lookupByEmail", code: "user_disabled", kind: permanent,
			err: fmt.Errorf("the Slack account %s is deactivated", u.ID)}
	}
	found := slackUser{ID: u.ID, TZ: u.TZ}
	if err := d.cacheUser(ctx, email, &found, now.Add(userCacheTTL)); err != nil {
		return slackUser{}, err
	}
	return found, nil
}

func (d *Deliverer) cacheUser(ctx context.Context, email string, u *slackUser, expires time.Time) error {
	var id, tz *string
	if u != nil {
		id, tz = &u.ID, &u.TZ
	}
	_, err := d.db.Exec(ctx, `
		INSERT INTO slack_users (email, slack_user_id, timezone, looked_up_at, expires_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (email) DO UPDATE SET slack_user_id = EXCLUDED.slack_user_id, timezone = EXCLUDED.timezone,
		                                  looked_up_at = EXCLUDED.looked_up_at, expires_at = EXCLUDED.expires_at`,
		email, id, tz, d.now(), expires)
	if err != nil {
		return fmt.Errorf("caching the Slack user of %s: %w", email, err)
	}
	return nil
}

// dmChannel returns the bot's DM conversation with a Slack user, opening it once.
func (d *Deliverer) dmChannel(ctx context.Context, userID string) (string, error) {
	var channelID string
	err := d.db.QueryRow(ctx, `SELECT channel_id FROM slack_dm_channels WHERE slack_user_id = $1`, userID).Scan(&channelID)
	if err == nil {
		return channelID, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("reading the DM channel cache: %w", err)
	}
	ch, _, _, err := d.slack.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{userID}, ReturnIM: true})
	if err != nil {
		return "", classify("conversations.open", err)
	}
	if _, err := d.db.Exec(ctx, `
		INSERT INTO slack_dm_channels (slack_user_id, channel_id, opened_at) VALUES ($1, $2, $3)
		ON CONFLICT (slack_user_id) DO UPDATE SET channel_id = EXCLUDED.channel_id, opened_at = EXCLUDED.opened_at`,
		userID, ch.ID, d.now()); err != nil {
		return "", fmt.Errorf("caching the DM channel of %s: %w", userID, err)
	}
	return ch.ID, nil
}

// forgetDMChannel drops a cached DM channel that Slack refused, so the next message opens
// the conversation again.
func (d *Deliverer) forgetDMChannel(ctx context.Context, tx pgx.Tx, userID string) error {
	if _, err := tx.Exec(ctx, `DELETE FROM slack_dm_channels WHERE slack_user_id = $1`, userID); err != nil {
		return fmt.Errorf("forgetting the DM channel of %s: %w", userID, err)
	}
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
