package slackfake

import (
	"encoding/json"
	"fmt"

	"github.com/slack-go/slack"
)

// Limits Slack enforces on messages (Block Kit reference; chat.postMessage).
const (
	maxText             = 40000
	maxBlocks           = 50
	maxBlockID          = 255
	maxHeaderText       = 150
	maxSectionText      = 3000
	maxFields           = 10
	maxFieldText        = 2000
	maxActionsElements  = 25
	maxButtonText       = 75
	maxActionID         = 255
	maxButtonValue      = 2000
	maxURL              = 3000
	maxContextElements  = 10
	maxContextTextChars = 3000
)

// checkMessage validates the text and blocks arguments of chat.postMessage/chat.update as
// Slack does and decodes the blocks.
func checkMessage(p map[string]string) (slack.Blocks, response, bool) {
	text, raw := p["text"], p["blocks"]
	if len([]rune(text)) > maxText {
		return slack.Blocks{}, apiError("msg_too_long"), false
	}
	if raw == "" || raw == "[]" {
		if text == "" {
			return slack.Blocks{}, apiError("no_text"), false
		}
		return slack.Blocks{}, response{}, true
	}
	var blocks []map[string]any
	if err := json.Unmarshal([]byte(raw), &blocks); err != nil {
		return slack.Blocks{}, apiError("invalid_blocks_format"), false
	}
	if problems := blockProblems(blocks); len(problems) > 0 {
		return slack.Blocks{}, apiError("invalid_blocks", problems...), false
	}
	var decoded slack.Blocks
	if err := json.Unmarshal([]byte(raw), &decoded); err != nil {
		return slack.Blocks{}, apiError("invalid_blocks_format"), false
	}
	return decoded, response{}, true
}

// blockProblems lists what breaks Block Kit's limits, in Slack's wording style.
func blockProblems(blocks []map[string]any) []string {
	var problems []string
	add := func(path, format string, args ...any) {
		problems = append(problems, fmt.Sprintf(format, args...)+" [json-pointer:"+path+"]")
	}
	if len(blocks) > maxBlocks {
		add("/blocks", "no more than %d items allowed", maxBlocks)
	}
	blockIDs := map[string]bool{}
	actionIDs := map[string]bool{}
	for i, b := range blocks {
		path := fmt.Sprintf("/blocks/%d", i)
		if id, _ := b["block_id"].(string); id != "" {
			if len(id) > maxBlockID {
				add(path+"/block_id", "must be less than %d characters", maxBlockID+1)
			}
			if blockIDs[id] {
				add(path+"/block_id", "duplicate block_id %q", id)
			}
			blockIDs[id] = true
		}
		switch b["type"] {
		case "header":
			checkText(add, path+"/text", b["text"], maxHeaderText, true)
		case "section":
			_, hasText := b["text"]
			fields, _ := b["fields"].([]any)
			if !hasText && len(fields) == 0 {
				add(path, "must provide text or fields")
			}
			if hasText {
				checkText(add, path+"/text", b["text"], maxSectionText, false)
			}
			if len(fields) > maxFields {
				add(path+"/fields", "no more than %d items allowed", maxFields)
			}
			for j, f := range fields {
				checkText(add, fmt.Sprintf("%s/fields/%d", path, j), f, maxFieldText, false)
			}
		case "actions":
			elements, _ := b["elements"].([]any)
			if len(elements) == 0 || len(elements) > maxActionsElements {
				add(path+"/elements", "must have 1 to %d items", maxActionsElements)
			}
			for j, e := range elements {
				checkButton(add, fmt.Sprintf("%s/elements/%d", path, j), e, actionIDs)
			}
		case "context":
			elements, _ := b["elements"].([]any)
			if len(elements) == 0 || len(elements) > maxContextElements {
				add(path+"/elements", "must have 1 to %d items", maxContextElements)
			}
			for j, e := range elements {
				checkText(add, fmt.Sprintf("%s/elements/%d", path, j), e, maxContextTextChars, false)
			}
		case "divider":
		default:
			add(path+"/type", "unsupported block type %v", b["type"])
		}
	}
	return problems
}

func checkText(add func(path, format string, args ...any), path string, v any, limit int, plainOnly bool) {
	obj, _ := v.(map[string]any)
	if obj == nil {
		add(path, "must be a text object")
		return
	}
	typ, _ := obj["type"].(string)
	switch {
	case typ != "plain_text" && typ != "mrkdwn":
		add(path+"/type", "must be plain_text or mrkdwn")
	case plainOnly && typ != "plain_text":
		add(path+"/type", "must be plain_text")
	}
	text, _ := obj["text"].(string)
	switch n := len([]rune(text)); {
	case n == 0:
		add(path+"/text", "must be more than 0 characters")
	case n > limit:
		add(path+"/text", "must be less than %d characters", limit+1)
	}
}

func checkButton(add func(path, format string, args ...any), path string, v any, actionIDs map[string]bool) {
	e, _ := v.(map[string]any)
	if e == nil || e["type"] != "button" {
		add(path+"/type", "this fake supports button elements only")
		return
	}
	checkText(add, path+"/text", e["text"], maxButtonText, true)
	id, _ := e["action_id"].(string)
	if len(id) > maxActionID {
		add(path+"/action_id", "must be less than %d characters", maxActionID+1)
	}
	if id != "" && actionIDs[id] {
		add(path+"/action_id", "duplicate action_id %q", id)
	}
	actionIDs[id] = true
	if value, _ := e["value"].(string); len(value) > maxButtonValue {
		add(path+"/value", "must be less than %d characters", maxButtonValue+1)
	}
	if u, _ := e["url"].(string); len(u) > maxURL {
		add(path+"/url", "must be less than %d characters", maxURL+1)
	}
	if style, has := e["style"]; has && style != "primary" && style != "danger" {
		add(path+"/style", "must be primary or danger")
	}
}
