package pipedrive

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// timeLayouts are the timestamp formats Pipedrive uses: v2 RFC 3339, the v1 leads API's
// ISO 8601 with milliseconds (both covered by RFC3339Nano), and the rest of v1's
// "YYYY-MM-DD HH:MM:SS", which is UTC without a zone.
var timeLayouts = []string{time.RFC3339Nano, time.DateTime}

// parseTime parses any Pipedrive timestamp into UTC.
func parseTime(s string) (time.Time, error) {
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("unrecognized timestamp %q", s)
}

// timestamp is a Pipedrive timestamp in any of its formats; null and "" decode to zero.
type timestamp struct{ time.Time }

// UnmarshalJSON accepts RFC 3339, ISO 8601 with fractions and "YYYY-MM-DD HH:MM:SS" (UTC).
func (t *timestamp) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		*t = timestamp{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("timestamp: %w", err)
	}
	if s == "" {
		*t = timestamp{}
		return nil
	}
	v, err := parseTime(s)
	if err != nil {
		return err
	}
	t.Time = v
	return nil
}

// date is a calendar date ("YYYY-MM-DD"), decoded to UTC midnight; null and "" decode to zero.
type date struct{ time.Time }

// UnmarshalJSON accepts "YYYY-MM-DD".
func (d *date) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		*d = date{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("date: %w", err)
	}
	if s == "" {
		*d = date{}
		return nil
	}
	v, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return fmt.Errorf("unrecognized date %q", s)
	}
	d.Time = v
	return nil
}

// rfc3339 formats t as the v2 updated_since/updated_until parameters expect.
func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }
