package pipedrive_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/connectors"
	"github.com/pipewatch/pipewatch/connectors/connectortest"
	"github.com/pipewatch/pipewatch/connectors/pipedrive"
	"github.com/pipewatch/pipewatch/connectors/pipedrive/pipedrivetest"
)

// conformanceFake adapts the fake Pipedrive to the conformance suite.
type conformanceFake struct{ fake *pipedrivetest.Server }

// Seed adds n records, shared of them updated in the same second, all an hour or more old.
func (f conformanceFake) Seed(t *testing.T, stream string, n, shared int) []string {
	t.Helper()
	base := time.Now().UTC().Truncate(time.Second).Add(-2 * time.Hour)
	updated := func(i int) pipedrivetest.Time {
		if i < shared {
			return pipedrivetest.T(base.Add(30 * time.Minute))
		}
		return pipedrivetest.T(base.Add(time.Duration(i) * time.Second))
	}
	owner := f.fake.AddUser(pipedrivetest.User{Name: "Owner", Email: "owner@example.com", Active: true})
	var ids []string
	for i := range n {
		added, up := pipedrivetest.T(base.Add(-time.Hour)), updated(i)
		var id int
		switch stream {
		case pipedrive.StreamDeals:
			id = f.fake.AddDeal(pipedrivetest.Deal{Title: fmt.Sprintf("Deal %d", i), OwnerID: owner.ID, PipelineID: 1, StageID: 1,
				Value: "100.50", Currency: "USD", AddTime: added, UpdateTime: up}).ID
		case pipedrive.StreamContacts:
			id = f.fake.AddPerson(pipedrivetest.Person{Name: fmt.Sprintf("Person %d", i), OwnerID: owner.ID, AddTime: added, UpdateTime: up}).ID
		case pipedrive.StreamAccounts:
			id = f.fake.AddOrganization(pipedrivetest.Organization{Name: fmt.Sprintf("Org %d", i), OwnerID: owner.ID, AddTime: added, UpdateTime: up}).ID
		case pipedrive.StreamActivities:
			id = f.fake.AddActivity(pipedrivetest.Activity{Subject: fmt.Sprintf("Call %d", i), Type: "call", OwnerID: owner.ID,
				DueDate: base.Format(time.DateOnly), Done: true, AddTime: added, UpdateTime: up}).ID
		default:
			t.Fatalf("the conformance fake cannot seed stream %q", stream)
		}
		ids = append(ids, itoa(id))
	}
	return ids
}

func (f conformanceFake) FailNext(_ *testing.T, n, status int, retryAfter time.Duration) {
	f.fake.FailNextWithRetryAfter(n, status, retryAfter)
}

// TestConformance runs the shared connector suite on every v2 incremental stream. Leads
// are scanned newest first (v1 has no time filter), which the suite's ordering rule does
// not allow; TestLeadsScan covers their resumption and exactness.
func TestConformance(t *testing.T) {
	t.Parallel()
	const retryMax = 2
	for _, stream := range []string{pipedrive.StreamDeals, pipedrive.StreamContacts, pipedrive.StreamAccounts, pipedrive.StreamActivities} {
		t.Run(stream, func(t *testing.T) {
			t.Parallel()
			connectortest.Exercise(t, connectortest.Harness{
				Stream:   stream,
				RetryMax: retryMax,
				New: func(t *testing.T) (connectors.Connector, connectortest.Fake) {
					fake := pipedrivetest.NewServer(pipedrivetest.Options{APIToken: testToken, BurstLimit: 2000})
					t.Cleanup(fake.Close)
					hc := connectors.NewHTTPClient(connectors.HTTPConfig{
						RateLimits: pipedrive.RateLimits(), RetryMax: retryMax,
						RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond,
					})
					conn, err := pipedrive.New(pipedrive.Config{BaseURL: fake.URL(), APIToken: testToken, PageSize: 50}, hc)
					require.NoError(t, err)
					return conn, conformanceFake{fake: fake}
				},
			})
		})
	}
}
