package alerting

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/config"
	"github.com/pipewatch/pipewatch/internal/notify"
)

func TestDirectory(t *testing.T) {
	t.Parallel()
	s := DefaultSettings()
	s.Org.Timezone = "America/New_York"
	s.Teams = []config.Team{
		{Name: "east", ManagerEmail: "maria@example.com", Members: []string{"bob@example.com"}, Timezone: "America/Chicago"},
		{Name: "emea", ManagerEmail: "eva@example.com", SlackChannel: "#sales-emea", Timezone: "Europe/Berlin"},
	}
	people := []Person{
		{ID: 1, Email: "Ana@Example.com", Team: "west", ManagerID: 2, Active: true, Timezone: "America/Los_Angeles"},
		{ID: 2, Email: "lee@example.com", Active: true},
		{ID: 3, Email: "bob@example.com", Team: "crm-team", Active: true},
		{ID: 4, Email: "gone@example.com", ManagerID: 2, Active: false},
		{ID: 5, Email: "old@example.com", ManagerID: 6, Team: "emea", Active: false},
		{ID: 6, Email: "left-manager@example.com", Active: false},
		{ID: 7, Active: true, ManagerID: 2},
		{ID: 8, Email: "solo@example.com", Active: false},
	}

	t.Run("ActiveOwnerByDM", func(t *testing.T) {
		t.Parallel()
		d := NewDirectory(people, s)
		to, owner, ok := d.OwnerRecipient(1)
		require.True(t, ok)
		require.True(t, owner)
		require.Equal(t, Recipient{Channel: notify.ChannelDM, Address: "ana@example.com", Timezone: "America/Los_Angeles"}, to)
	})

	t.Run("DeactivatedOwnerGoesToManager", func(t *testing.T) {
		t.Parallel()
		d := NewDirectory(people, s)
		to, owner, ok := d.OwnerRecipient(4)
		require.True(t, ok)
		require.False(t, owner)
		require.Equal(t, "lee@example.com", to.Address)
		require.Equal(t, "America/New_York", to.Timezone, "the manager's zone falls back to the org's")

		to, _, ok = d.OwnerRecipient(5)
		require.True(t, ok)
		require.Equal(t, Recipient{Channel: notify.ChannelDM, Address: "eva@example.com", Timezone: "Europe/Berlin"}, to,
			"a manager who left is skipped for the team's manager")

		to, _, ok = d.OwnerRecipient(7)
		require.True(t, ok, "an owner without an email reaches their manager")
		require.Equal(t, "lee@example.com", to.Address)
	})

	t.Run("TeamsConfigMembershipWins", func(t *testing.T) {
		t.Parallel()
		d := NewDirectory(people, s)
		require.Equal(t, "east", d.Team(3))
		to, ok := d.ManagerOf(3)
		require.True(t, ok)
		require.Equal(t, Recipient{Channel: notify.ChannelDM, Address: "maria@example.com", Timezone: "America/Chicago"}, to)
	})

	t.Run("NobodyWithoutDefaultManager", func(t *testing.T) {
		t.Parallel()
		d := NewDirectory(people, s)
		_, _, ok := d.OwnerRecipient(8)
		require.False(t, ok)
		_, _, ok = d.OwnerRecipient(404)
		require.False(t, ok, "deals without an owner")

		withDefault := s
		withDefault.Routing.DefaultManagerEmail = "VP@example.com"
		d = NewDirectory(people, withDefault)
		to, _, ok := d.OwnerRecipient(8)
		require.True(t, ok)
		require.Equal(t, "vp@example.com", to.Address)
	})

	t.Run("GroupAlertsPreferTheTeamChannel", func(t *testing.T) {
		t.Parallel()
		d := NewDirectory(people, s)
		to, ok := d.GroupRecipient("", "emea")
		require.True(t, ok)
		require.Equal(t, Recipient{Channel: notify.ChannelSlack, Address: "#sales-emea", Timezone: "Europe/Berlin"}, to)

		to, ok = d.GroupRecipient("", "east")
		require.True(t, ok, "without channels the team's manager hears")
		require.Equal(t, "maria@example.com", to.Address)

		to, ok = d.GroupRecipient("ana@example.com", "")
		require.True(t, ok)
		require.Equal(t, "lee@example.com", to.Address, "an owner's shortfall goes to their manager")

		_, ok = d.GroupRecipient("", "")
		require.False(t, ok, "the org's alerts need a channel or a default manager")

		withChannel := s
		withChannel.Routing.Channel = "#revenue"
		d = NewDirectory(people, withChannel)
		to, ok = d.GroupRecipient("", "")
		require.True(t, ok)
		require.Equal(t, Recipient{Channel: notify.ChannelSlack, Address: "#revenue", Timezone: "America/New_York"}, to)
		to, _ = d.GroupRecipient("", "emea")
		require.Equal(t, "#sales-emea", to.Address, "the team's own channel wins")
	})
}

func TestDealURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		conn Connection
		want string
	}{
		{"HubSpot", Connection{Kind: "hubspot", Options: map[string]string{"portal_id": "12345"}},
			"https://app.hubspot.com/contacts/12345/record/0-3/9876"},
		{"HubSpotWithoutPortal", Connection{Kind: "hubspot"}, ""},
		{"PipedriveFromOption", Connection{Kind: "pipedrive", Options: map[string]string{"company_domain": "acme"}},
			"https://acme.pipedrive.com/deal/9876"},
		{"PipedriveFromFullDomainOption", Connection{Kind: "pipedrive", Options: map[string]string{"company_domain": "https://acme.pipedrive.com"}},
			"https://acme.pipedrive.com/deal/9876"},
		{"PipedriveFromAPIDomain", Connection{Kind: "pipedrive", BaseURL: "https://acme.pipedrive.com"},
			"https://acme.pipedrive.com/deal/9876"},
		{"PipedriveGenericAPIHost", Connection{Kind: "pipedrive", BaseURL: "https://api.pipedrive.com"}, ""},
		{"SalesforceInstance", Connection{Kind: "salesforce", BaseURL: "https://acme.my.salesforce.com"},
			"https://acme.my.salesforce.com/lightning/r/Opportunity/9876/view"},
		{"SalesforceOption", Connection{Kind: "salesforce", Options: map[string]string{"instance_url": "https://x.my.salesforce.com/"}},
			"https://x.my.salesforce.com/lightning/r/Opportunity/9876/view"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, tt.conn.DealURL("9876"))
		})
	}
}
