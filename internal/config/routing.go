package config

import (
	"context"
	"errors"
	"regexp"

	"go.yaml.in/yaml/v3"
)

// Routing says who hears about alerts (settings key "routing"). Deal alerts go to the
// deal's owner by DM (to the owner's manager when the owner is deactivated); the
// manager — owners.manager_owner_id, else the team's manager_email, else
// DefaultManagerEmail — gets escalations and critical alerts in a daily digest.
type Routing struct {
	// Channel receives coverage shortfalls and lead-velocity drops (a team's own
	// slack_channel wins for the team's coverage). "" sends them to the managers' digests.
	Channel string `json:"channel,omitempty"`
	// DefaultManagerEmail gets what has no other manager.
	DefaultManagerEmail string `json:"default_manager_email,omitempty"`
	// DigestThreshold alerts or more for one recipient in one run become one digest.
	DigestThreshold int `json:"digest_threshold"`
	// DigestTime is when (HH:MM, the manager's time zone) the daily manager digest is built.
	DigestTime string `json:"digest_time"`
	// Cooldown is how long an alert that stays open stays quiet before it is sent again.
	Cooldown Days `json:"cooldown"`
	// EscalateAfter an owner alert left open goes into the manager's digest.
	EscalateAfter Days `json:"escalate_after"`
}

// DefaultRouting is what works out of the box (docs/pipeline-analytics.md §6).
func DefaultRouting() Routing {
	return Routing{
		DigestThreshold: 5,
		DigestTime:      "08:30",
		Cooldown:        Days{N: 7},
		EscalateAfter:   Days{N: 2, Business: true},
	}
}

// LoadRouting returns the routing stored by the last apply (DefaultRouting before the first).
func LoadRouting(ctx context.Context, db Querier) (Routing, error) {
	r := DefaultRouting()
	if err := LoadSetting(ctx, db, "routing", &r); err != nil && !errors.Is(err, ErrSettingNotFound) {
		return Routing{}, err
	}
	return r, nil
}

var clockPattern = regexp.MustCompile(`^([01]\d|2[0-3]):[0-5]\d$`)

var routingSection = Section{
	Key: "routing",
	Decode: func(d *Decoder, n *yaml.Node, path string, f *File) {
		f.Routing = DefaultRouting()
		m := d.Mapping(n, path, "channel", "default_manager_email", "digest_threshold", "digest_time",
			"cooldown", "escalate_after")
		if m.Has("channel") {
			f.Routing.Channel = d.String(m.Get("channel"))
		}
		if e, ok := d.Email(m.Get("default_manager_email")); ok {
			f.Routing.DefaultManagerEmail = e
		}
		setInt(d, m, "digest_threshold", 2, 1000, &f.Routing.DigestThreshold)
		if tn, tpath := m.Get("digest_time"); tn != nil {
			if s, ok := d.scalar(tn, tpath, "a time like 08:30"); ok {
				if clockPattern.MatchString(s) {
					f.Routing.DigestTime = s
				} else {
					d.Errorf(tn, tpath, "want a time of day like 08:30 (24-hour HH:MM), got %q", s)
				}
			}
		}
		setDays(d, m, "cooldown", 1, &f.Routing.Cooldown)
		setDays(d, m, "escalate_after", 1, &f.Routing.EscalateAfter)
	},
	Apply: func(ctx context.Context, tx *Tx) error {
		return tx.PutSetting(ctx, "routing", tx.File.Routing)
	},
}
