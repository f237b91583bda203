package reminder

import (
	"fmt"
	"strings"
	"time"

	"github.com/pipewatch/pipewatch/pipeline"
)

// Touch is a contact with the customer that makes a reminder unnecessary: an outbound
// email or call by the deal's owner, an inbound email or call, a meeting held, or a
// meeting booked for later.
type Touch struct {
	Kind      pipeline.ActivityKind
	Direction pipeline.Direction
	// At is when it happened; for a booked meeting, when the meeting takes place.
	At      time.Time
	Subject string
	// Booked says the meeting was booked since the previous step and lies ahead.
	Booked bool
}

// Describe is the touch for people, in loc: `outbound email "Re: proposal" on Wed 11 Mar
// 10:15 JST`.
func (t Touch) Describe(loc *time.Location) string {
	what := strings.TrimSpace(string(t.Direction) + " " + string(t.Kind))
	if t.Kind == pipeline.ActivityMeeting {
		what = "meeting"
	}
	if subject := strings.TrimSpace(t.Subject); subject != "" {
		if r := []rune(subject); len(r) > 60 {
			subject = string(r[:59]) + "…"
		}
		what += fmt.Sprintf(" %q", subject)
	}
	if t.Booked {
		return what + " booked for " + localTime(t.At, loc)
	}
	return what + " on " + localTime(t.At, loc)
}

// skipReason says why a step was skipped for touches (latest first).
func skipReason(step int, touches []Touch, loc *time.Location) string {
	since := "entering the stage"
	if step > 1 {
		since = fmt.Sprintf("follow-up %d", step-1)
	}
	reason := fmt.Sprintf("touched since %s: %s", since, touches[0].Describe(loc))
	if n := len(touches) - 1; n == 1 {
		reason += " (and 1 more touch)"
	} else if n > 1 {
		reason += fmt.Sprintf(" (and %d more touches)", n)
	}
	return reason
}
