package alerting_test

import (
	"fmt"

	"github.com/pipewatch/pipewatch/internal/config"
	"github.com/pipewatch/pipewatch/pipeline/alerting"
)

func ExampleEvaluateLeadVelocity() {
	rule := config.DefaultRules().LeadVelocityDrop
	for _, c := range []struct{ current, previous int }{{12, 20}, {17, 20}, {3, 4}} {
		change, severity, ok := alerting.EvaluateLeadVelocity(c.current, c.previous, rule)
		fmt.Printf("%d after %d: change %+.0f%%, alert: %v", c.current, c.previous, change*100, ok)
		if ok {
			fmt.Printf(" (%s)", severity)
		}
		fmt.Println()
	}
	// Output:
	// 12 after 20: change -40%, alert: true (critical)
	// 17 after 20: change -15%, alert: false
	// 3 after 4: change +0%, alert: false
}

func ExampleConnection_DealURL() {
	for _, c := range []alerting.Connection{
		{Kind: "hubspot", Options: map[string]string{"portal_id": "12345"}},
		{Kind: "pipedrive", BaseURL: "https://acme.pipedrive.com"},
		{Kind: "salesforce", BaseURL: "https://acme.my.salesforce.com"},
	} {
		fmt.Println(c.DealURL("0061x00000AbCdE"))
	}
	// Output:
	// https://app.hubspot.com/contacts/12345/record/0-3/0061x00000AbCdE
	// https://acme.pipedrive.com/deal/0061x00000AbCdE
	// https://acme.my.salesforce.com/lightning/r/Opportunity/0061x00000AbCdE/view
}
