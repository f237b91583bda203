package pipedrivetest

import (
	"slices"
	"sync"
)

// row is a record of a v2 list endpoint.
type row interface {
	rowID() int
	rowTimes() (added, updated Time)
}

// sortKey returns the value a list is sorted by, as an int64 (times as Unix seconds).
type sortKey[R row] func(R) int64

// table holds the records of one v2 entity and serves keyset-ordered views of them. Writers
// hold the server's write lock; readers hold its read lock, and the lazily rebuilt sorted
// views are guarded by their own mutex so concurrent readers can share them.
type table[R row] struct {
	rows    map[int]R
	version uint64
	keys    map[string]sortKey[R]

	viewMu sync.Mutex
	views  map[string]view[R]
}

type view[R row] struct {
	version uint64
	rows    []R // ascending by (key, id)
}

func newTable[R row](extra map[string]sortKey[R]) *table[R] {
	keys := map[string]sortKey[R]{
		"id":          func(r R) int64 { return int64(r.rowID()) },
		"add_time":    func(r R) int64 { a, _ := r.rowTimes(); return a.Std().Unix() },
		"update_time": func(r R) int64 { _, u := r.rowTimes(); return u.Std().Unix() },
	}
	for k, f := range extra {
		keys[k] = f
	}
	return &table[R]{rows: make(map[int]R), keys: keys, views: make(map[string]view[R])}
}

// put inserts or replaces r. Callers hold the write lock.
func (t *table[R]) put(r R) {
	t.rows[r.rowID()] = r
	t.version++
}

// changed invalidates the sorted views after an in-place edit. Callers hold the write lock.
func (t *table[R]) changed() { t.version++ }

// remove deletes the record id. Callers hold the write lock.
func (t *table[R]) remove(id int) {
	delete(t.rows, id)
	t.version++
}

// sorted returns the records ascending by (field, id). Callers hold at least the read lock.
func (t *table[R]) sorted(field string) []R {
	t.viewMu.Lock()
	defer t.viewMu.Unlock()
	if v, ok := t.views[field]; ok && v.version == t.version {
		return v.rows
	}
	key := t.keys[field]
	rows := make([]R, 0, len(t.rows))
	for _, r := range t.rows {
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(a, b R) int {
		if c := cmpInt64(key(a), key(b)); c != 0 {
			return c
		}
		return a.rowID() - b.rowID()
	})
	t.views[field] = view[R]{version: t.version, rows: rows}
	return rows
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// position is a keyset position: the sort value and id of a record.
type position struct {
	value int64
	id    int
}

func (p position) cmp(o position) int {
	if c := cmpInt64(p.value, o.value); c != 0 {
		return c
	}
	return p.id - o.id
}

// listQuery selects a page of a table.
type listQuery[R row] struct {
	field string
	desc  bool
	limit int
	// from is the position of the first record of the page (nil = the start).
	from *position
	// since and until bound update_time (Unix seconds): since inclusive, until exclusive.
	since, until *int64
	match        func(R) bool
}

// list returns the page and the position of the first record of the next page (nil at the end).
func (t *table[R]) list(q listQuery[R]) ([]R, *position) {
	rows := t.sorted(q.field)
	key := t.keys[q.field]
	pos := func(r R) position { return position{value: key(r), id: r.rowID()} }
	keep := func(r R) bool {
		_, u := r.rowTimes()
		ut := u.Std().Unix()
		if q.since != nil && ut < *q.since {
			return false
		}
		if q.until != nil && ut >= *q.until {
			return false
		}
		return q.match == nil || q.match(r)
	}

	// Find where the scan starts, with a binary search on the sorted view.
	var start int
	switch {
	case q.from != nil && !q.desc:
		start, _ = slices.BinarySearchFunc(rows, *q.from, func(r R, p position) int { return pos(r).cmp(p) })
	case q.from != nil && q.desc:
		// Descending: the first record at or before from, scanning from the end.
		i, found := slices.BinarySearchFunc(rows, *q.from, func(r R, p position) int { return pos(r).cmp(p) })
		if found {
			start = len(rows) - 1 - i
		} else {
			start = len(rows) - i
		}
	case q.field == "update_time" && q.since != nil && !q.desc:
		start, _ = slices.BinarySearchFunc(rows, position{value: *q.since}, func(r R, p position) int { return pos(r).cmp(p) })
	}

	at := func(i int) R {
		if q.desc {
			return rows[len(rows)-1-i]
		}
		return rows[i]
	}
	var page []R
	for i := start; i < len(rows); i++ {
		r := at(i)
		if !keep(r) {
			// Ascending by update_time, nothing past until can match.
			if q.field == "update_time" && !q.desc && q.until != nil && key(r) >= *q.until {
				break
			}
			continue
		}
		if len(page) == q.limit {
			next := pos(r)
			return page, &next
		}
		page = append(page, r)
	}
	return page, nil
}
