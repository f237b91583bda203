package pipedrive

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/pipewatch/pipewatch/connectors"
)

// cursorVersion is bumped when the cursor encoding changes.
const cursorVersion = 1

// maxSeen bounds the ids a cursor remembers from the overlap of its last window. Beyond it
// the oldest are forgotten; they are then read again next run, which is harmless.
const maxSeen = 500

// state is the decoded cursor of a stream: one typed cursor for v2 (RFC 3339) and v1
// ("YYYY-MM-DD HH:MM:SS" or ISO) times alike.
type state struct {
	V    int    `json:"v"`
	Mode string `json:"mode"` // "incremental" or "full"
	// HW is the high-water mark: the greatest update_time read by the finished windows
	// (the vendor's value, never our clock).
	HW time.Time `json:"hw,omitzero"`
	// Seen maps the ids read with update_time at or after HW − lookback to that update_time
	// (Unix milliseconds). The next window re-reads that overlap to catch late commits; the
	// records in Seen with an unchanged update_time are not emitted again.
	Seen map[string]int64 `json:"seen,omitempty"`
	// Win is the window being read (incremental); nil between runs.
	Win *window `json:"win,omitempty"`
	// Phase is the source a multi-source Full read is on (an index into its endpoints).
	Phase int `json:"phase,omitempty"`
	// Vendor is the v2 next_cursor of the next page (Full and reference reads).
	Vendor string `json:"vendor,omitempty"`
	// Scan is the progress of a v1 offset scan (Full leads).
	Scan *scan `json:"scan,omitempty"`
}

// window is one incremental read: update_time in [Lo, Hi).
type window struct {
	Lo time.Time `json:"lo,omitzero"` // zero: from the beginning
	Hi time.Time `json:"hi"`
	// Vendor is the v2 next_cursor of the window's next page.
	Vendor string `json:"vendor,omitempty"`
	// Scan is the progress of a v1 offset scan of the window.
	Scan *scan `json:"scan,omitempty"`
	// Max is the greatest update_time read in the window so far.
	Max time.Time `json:"max,omitzero"`
	// Seen collects what the next Seen will hold.
	Seen map[string]int64 `json:"seen,omitempty"`
}

// scan is the progress of a v1 offset-paged read kept in a fixed order: Offset items of the
// listing are behind us, the last of them being Last. Offsets shift when records are
// deleted or move during the scan; Last lets the next page detect and repair that.
type scan struct {
	Offset int      `json:"offset"`
	Last   *scanKey `json:"last,omitempty"`
}

// scanKey is a record's place in the scan order: its sort time, then its id.
type scanKey struct {
	T  time.Time `json:"t"`
	ID string    `json:"id"`
}

func decodeState(c connectors.Cursor, mode connectors.Mode) (state, error) {
	if c == "" {
		return state{V: cursorVersion, Mode: string(mode)}, nil
	}
	var s state
	if err := json.Unmarshal([]byte(c), &s); err != nil {
		return state{}, connectors.Permanent(fmt.Errorf("decoding cursor %.80q: %w", c, err))
	}
	if s.V != cursorVersion {
		return state{}, connectors.Permanent(fmt.Errorf("the cursor has version %d; this connector reads version %d", s.V, cursorVersion))
	}
	if s.Mode != string(mode) {
		return state{}, connectors.Permanent(fmt.Errorf("the cursor belongs to a read in %s mode, not %s", s.Mode, mode))
	}
	return s, nil
}

func (s state) encode() connectors.Cursor {
	b, err := json.Marshal(s)
	if err != nil {
		// state holds only strings, ints, times and maps of them.
		panic(fmt.Sprintf("pipedrive: encoding cursor: %v", err))
	}
	return connectors.Cursor(b)
}

// seenAt reports whether id was read before with update time t.
func (s state) seenAt(id string, t time.Time) bool {
	v, ok := s.Seen[id]
	return ok && v == t.UnixMilli()
}

// note records that id was read with update time t in the window.
func (w *window) note(id string, t time.Time) {
	if w.Seen == nil {
		w.Seen = make(map[string]int64)
	}
	w.Seen[id] = t.UnixMilli()
	if t.After(w.Max) {
		w.Max = t
	}
}

// prune keeps the entries at or after from, at most maxSeen of them (the most recent).
func prune(seen map[string]int64, from time.Time) map[string]int64 {
	floor := from.UnixMilli()
	type entry struct {
		id string
		t  int64
	}
	var keep []entry
	for id, t := range seen {
		if t >= floor {
			keep = append(keep, entry{id, t})
		}
	}
	if len(keep) > maxSeen {
		slices.SortFunc(keep, func(a, b entry) int { return cmp.Or(cmp.Compare(b.t, a.t), cmp.Compare(a.id, b.id)) })
		keep = keep[:maxSeen]
	}
	if len(keep) == 0 {
		return nil
	}
	out := make(map[string]int64, len(keep))
	for _, e := range keep {
		out[e.id] = e.t
	}
	return out
}

// finish closes the window: the high-water mark moves to the greatest update_time read and
// the overlap the next window re-reads is remembered.
func (s state) finish(lookback time.Duration) state {
	w := s.Win
	s.Win = nil
	if w.Max.After(s.HW) {
		s.HW = w.Max
	}
	merged := maps.Clone(w.Seen)
	if merged == nil {
		merged = map[string]int64{}
	}
	// Entries of the last Seen that this window did not re-read stay relevant while they
	// are inside the next overlap (a window that read nothing moves nothing).
	for id, t := range s.Seen {
		if _, ok := merged[id]; !ok {
			merged[id] = t
		}
	}
	s.Seen = prune(merged, s.HW.Add(-lookback))
	return s
}
