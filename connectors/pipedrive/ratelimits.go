package pipedrive

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/pipewatch/pipewatch/connectors"
)

// burstBudget names Pipedrive's per-token 2-second window in RateLimits.
const burstBudget = "burst"

// RateLimits describes Pipedrive's limits to the shared HTTP chain
// (connectors.HTTPConfig.RateLimits):
//   - the per-token burst window, x-ratelimit-limit requests per 2 seconds, which the
//     responses' x-ratelimit-limit/-remaining/-reset headers keep current (until the first
//     response, the lowest plan's 20);
//   - the company's daily token budget: a 429 whose body names the daily budget becomes a
//     *connectors.RateLimitError with Daily set and RetryAfter reaching to the reset (the
//     vendor's Retry-After, else the next midnight UTC), so the job snoozes and resumes from
//     its cursor. Plain 429s ("Request over limit") are retried by the chain.
func RateLimits() connectors.RateLimits {
	return connectors.RateLimits{
		Budgets:          map[string]connectors.Budget{burstBudget: {Limit: 20, Interval: 2 * time.Second}},
		HeaderBudget:     burstBudget,
		ParseHeaders:     connectors.PipedriveRateLimitHeaders,
		ParseRateLimited: dailyBudgetExhausted,
	}
}

// dailyBudgetExhausted tells a spent daily token budget from the burst limit by the 429
// body: {"success":false,"error":"Request over limit",…} is the burst window; an error that
// speaks of the daily or token budget is the daily one.
func dailyBudgetExhausted(body []byte) (daily bool, message string) {
	var e struct {
		Error     string `json:"error"`
		ErrorInfo string `json:"error_info"`
	}
	if json.Unmarshal(body, &e) != nil {
		return false, strings.TrimSpace(string(body))
	}
	text := strings.ToLower(e.Error + " " + e.ErrorInfo)
	if strings.Contains(strings.ToLower(e.Error), "request over limit") {
		return false, e.Error
	}
	return strings.Contains(text, "daily") || strings.Contains(text, "budget"), e.Error
}
