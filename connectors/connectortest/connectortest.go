// Package connectortest is the conformance suite every connector runs against its fake
// vendor: ordered incremental pages, progress on every page, resuming from any cursor
// without loss, Full reads returning every live record, prompt cancellation, and the
// typed errors for 429 and 401.
//
//	func TestConformance(t *testing.T) {
//		connectortest.Exercise(t, connectortest.Harness{
//			Stream: "deals",
//			New: func(t *testing.T) (connectors.Connector, connectortest.Fake) { … },
//		})
//	}
package connectortest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/connectors"
	"github.com/pipewatch/pipewatch/pipeline"
)

// Fake is what the suite drives in a vendor's fake server.
type Fake interface {
	// Seed adds n live records read by stream, shared of them with one common last-modified
	// time, all old enough for an incremental window ending now, and returns their
	// external ids.
	Seed(t *testing.T, stream string, n, shared int) []string
	// FailNext answers the next n API requests with status: 429 (with Retry-After when
	// retryAfter > 0) or 401 (credentials rejected).
	FailNext(t *testing.T, n, status int, retryAfter time.Duration)
}

// Harness tells the suite how to run one connector.
type Harness struct {
	// New starts a fresh fake and returns a connector reading it through the shared chain
	// (connectors.NewHTTPClient). Use small pages so streams span several, and short retry
	// waits (RetryWaitMin of a few milliseconds).
	New func(t *testing.T) (connectors.Connector, Fake)
	// Stream is an incremental stream the suite seeds and reads (Incremental and Full).
	Stream string
	// Records to seed (default 300), Shared of them with one last-modified time (default 80).
	Records, Shared int
	// RetryMax is the chain's RetryMax, so the suite can exhaust it (default connectors.DefaultRetryMax).
	RetryMax int
}

// maxPages stops a read that never ends.
const maxPages = 10_000

// Exercise runs the conformance suite.
func Exercise(t *testing.T, h Harness) {
	t.Helper()
	if h.Records == 0 {
		h.Records = 300
	}
	if h.Shared == 0 {
		h.Shared = 80
	}
	if h.RetryMax == 0 {
		h.RetryMax = connectors.DefaultRetryMax
	}

	type testBundle struct {
		conn   connectors.Connector
		fake   Fake
		stream connectors.Stream
		entity pipeline.Entity
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		conn, fake := h.New(t)
		stream, ok := connectors.StreamByName(conn, h.Stream)
		require.True(t, ok, "the connector has no stream %q", h.Stream)
		require.True(t, stream.Incremental, "stream %q must be incremental", h.Stream)
		return &testBundle{conn: conn, fake: fake, stream: stream, entity: stream.Entities[0]}
	}

	t.Run("StreamsAreWellFormed", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		seen := make(map[string]bool)
		for _, s := range b.conn.Streams() {
			require.NotEmpty(t, s.Name)
			require.False(t, seen[s.Name], "stream %q is listed twice", s.Name)
			seen[s.Name] = true
			require.NotEmpty(t, s.Entities, "stream %q writes no entity", s.Name)
		}
		_, err := b.conn.Read(t.Context(), connectors.ReadRequest{Stream: "no_such_stream", Mode: connectors.Incremental})
		require.Error(t, err)
	})

	t.Run("IncrementalPagesAreOrderedAndComplete", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		want := b.fake.Seed(t, h.Stream, h.Records, h.Shared)
		pages := readAll(t, b.conn, h.Stream, connectors.Incremental, "", time.Now())
		var last *pipeline.Record
		for i, p := range pages {
			if !p.page.Done {
				require.NotEqual(t, p.cursor, p.page.Next, "page %d: Next equals the cursor but the stream is not done", i)
			}
			for _, r := range records(p.page.Batch, b.entity) {
				if last != nil {
					require.LessOrEqual(t, compareRecords(*last, r), 0,
						"page %d: %s %s (updated %s) comes after %s (updated %s)", i, b.entity, r.ExternalID,
						r.UpdatedAt.Format(time.RFC3339Nano), last.ExternalID, last.UpdatedAt.Format(time.RFC3339Nano))
				}
				last = &r
			}
		}
		requireExactly(t, want, ids(pages, b.entity))
	})

	t.Run("ResumingFromAnyCursorLosesNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		want := b.fake.Seed(t, h.Stream, h.Records, h.Shared)
		syncStart := time.Now()
		pages := readAll(t, b.conn, h.Stream, connectors.Incremental, "", syncStart)
		require.Greater(t, len(pages), 2, "seed enough records for several pages")
		for i := 1; i < len(pages); i++ {
			before := ids(pages[:i], b.entity)
			after := ids(readAll(t, b.conn, h.Stream, connectors.Incremental, pages[i].cursor, syncStart), b.entity)
			requireExactly(t, want, append(before, after...))
		}
	})

	t.Run("FullReadReturnsEveryLiveRecord", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		want := b.fake.Seed(t, h.Stream, h.Records, h.Shared)
		pages := readAll(t, b.conn, h.Stream, connectors.Full, "", time.Now())
		require.True(t, pages[len(pages)-1].page.Done)
		requireExactly(t, want, ids(pages, b.entity))
	})

	t.Run("CancelledContextReturnsCtxErr", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.fake.Seed(t, h.Stream, 10, 0)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := b.conn.Read(ctx, connectors.ReadRequest{Stream: h.Stream, Mode: connectors.Incremental, SyncStart: time.Now()})
		require.ErrorIs(t, err, context.Canceled)
	})

	t.Run("CancellationDuringARetryWaitIsPrompt", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.fake.Seed(t, h.Stream, 10, 0)
		b.fake.FailNext(t, 1, 429, 5*time.Second)
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		began := time.Now()
		_, err := b.conn.Read(ctx, connectors.ReadRequest{Stream: h.Stream, Mode: connectors.Incremental, SyncStart: time.Now()})
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Less(t, time.Since(began), 2*time.Second, "Read kept waiting after its context ended")
	})

	t.Run("LongRetryAfterIsARateLimitError", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.fake.Seed(t, h.Stream, 10, 0)
		b.fake.FailNext(t, 1, 429, 10*time.Minute)
		_, err := b.conn.Read(t.Context(), connectors.ReadRequest{Stream: h.Stream, Mode: connectors.Incremental, SyncStart: time.Now()})
		var rl *connectors.RateLimitError
		require.ErrorAs(t, err, &rl)
		require.InDelta(t, (10 * time.Minute).Seconds(), rl.RetryAfter.Seconds(), 2)
	})

	t.Run("PersistentRateLimitingIsARateLimitError", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.fake.Seed(t, h.Stream, 10, 0)
		b.fake.FailNext(t, h.RetryMax+1, 429, 0)
		_, err := b.conn.Read(t.Context(), connectors.ReadRequest{Stream: h.Stream, Mode: connectors.Incremental, SyncStart: time.Now()})
		var rl *connectors.RateLimitError
		require.ErrorAs(t, err, &rl)
		require.Positive(t, rl.RetryAfter)
	})

	t.Run("RateLimitedThenServedReadsTheSame", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		want := b.fake.Seed(t, h.Stream, 40, 0)
		b.fake.FailNext(t, 2, 429, 0)
		pages := readAll(t, b.conn, h.Stream, connectors.Incremental, "", time.Now())
		requireExactly(t, want, ids(pages, b.entity))
	})

	t.Run("RejectedCredentialsAreErrUnauthorized", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.fake.Seed(t, h.Stream, 10, 0)
		b.fake.FailNext(t, 2, 401, 0)
		_, err := b.conn.Read(t.Context(), connectors.ReadRequest{Stream: h.Stream, Mode: connectors.Incremental, SyncStart: time.Now()})
		require.ErrorIs(t, err, connectors.ErrUnauthorized)
	})
}

// readResult is a page and the cursor it was read from.
type readResult struct {
	cursor connectors.Cursor
	page   connectors.Page
}

// readAll reads stream from cursor until Done.
func readAll(t *testing.T, conn connectors.Connector, stream string, mode connectors.Mode, cursor connectors.Cursor, syncStart time.Time) []readResult {
	t.Helper()
	var out []readResult
	for range maxPages {
		page, err := conn.Read(t.Context(), connectors.ReadRequest{Stream: stream, Mode: mode, Cursor: cursor, SyncStart: syncStart})
		require.NoError(t, err, "reading %s (%s) after %q", stream, mode, cursor)
		require.Empty(t, page.Skipped, "reading %s after %q skipped records", stream, cursor)
		out = append(out, readResult{cursor: cursor, page: page})
		if page.Done {
			return out
		}
		cursor = page.Next
	}
	t.Fatalf("reading %s never finished after %d pages", stream, maxPages)
	return nil
}

// records returns the records of entity in b.
func records(b pipeline.Batch, e pipeline.Entity) []pipeline.Record {
	var out []pipeline.Record
	add := func(r pipeline.Record) { out = append(out, r) }
	switch e {
	case pipeline.EntityOwners:
		for _, x := range b.Owners {
			add(x.Record)
		}
	case pipeline.EntityPipelines:
		for _, x := range b.Pipelines {
			add(x.Record)
		}
	case pipeline.EntityStages:
		for _, x := range b.Stages {
			add(x.Record)
		}
	case pipeline.EntityAccounts:
		for _, x := range b.Accounts {
			add(x.Record)
		}
	case pipeline.EntityContacts:
		for _, x := range b.Contacts {
			add(x.Record)
		}
	case pipeline.EntityLeads:
		for _, x := range b.Leads {
			add(x.Record)
		}
	case pipeline.EntityDeals:
		for _, x := range b.Deals {
			add(x.Record)
		}
	case pipeline.EntityActivities:
		for _, x := range b.Activities {
			add(x.Record)
		}
	}
	return out
}

func ids(pages []readResult, e pipeline.Entity) []string {
	var out []string
	for _, p := range pages {
		for _, r := range records(p.page.Batch, e) {
			out = append(out, r.ExternalID)
		}
	}
	return out
}

// requireExactly checks that got holds every id of want once and nothing else.
func requireExactly(t *testing.T, want, got []string) {
	t.Helper()
	counts := make(map[string]int, len(got))
	for _, id := range got {
		counts[id]++
	}
	var dups, missing, extra []string
	for id, n := range counts {
		if n > 1 {
			dups = append(dups, fmt.Sprintf("%s×%d", id, n))
		}
	}
	wanted := make(map[string]bool, len(want))
	for _, id := range want {
		wanted[id] = true
		if counts[id] == 0 {
			missing = append(missing, id)
		}
	}
	for id := range counts {
		if !wanted[id] {
			extra = append(extra, id)
		}
	}
	slices.Sort(dups)
	slices.Sort(missing)
	slices.Sort(extra)
	if len(dups)+len(missing)+len(extra) > 0 {
		t.Fatalf("read %d records for %d wanted: %d duplicated %v, %d missing %v, %d unexpected %v",
			len(got), len(want), len(dups), head(dups), len(missing), head(missing), len(extra), head(extra))
	}
}

func head(s []string) []string { return s[:min(len(s), 10)] }

// compareRecords orders records by (UpdatedAt, ExternalID), ids compared as numbers when
// both are numeric.
func compareRecords(a, b pipeline.Record) int {
	return cmp.Or(a.UpdatedAt.Compare(b.UpdatedAt), CompareIDs(a.ExternalID, b.ExternalID))
}

// CompareIDs compares external ids: numerically when both are integers, else as strings.
func CompareIDs(a, b string) int {
	x, errA := strconv.ParseInt(a, 10, 64)
	y, errB := strconv.ParseInt(b, 10, 64)
	if errA == nil && errB == nil {
		return cmp.Compare(x, y)
	}
	return cmp.Compare(a, b)
}

// ErrNotDone is returned by ReadAll when a stream does not finish within maxPages.
var ErrNotDone = errors.New("connectortest: the stream did not finish")

// ReadAll reads stream from cursor until Done and returns the pages, for tests that
// check a connector's output. It stops at the first error.
func ReadAll(ctx context.Context, conn connectors.Connector, req connectors.ReadRequest) ([]connectors.Page, error) {
	var out []connectors.Page
	for range maxPages {
		page, err := conn.Read(ctx, req)
		if err != nil {
			return out, fmt.Errorf("reading %s after %q: %w", req.Stream, req.Cursor, err)
		}
		out = append(out, page)
		if page.Done {
			return out, nil
		}
		req.Cursor = page.Next
	}
	return out, ErrNotDone
}
