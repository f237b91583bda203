// Package config reads pipewatch's declarative configuration file (`pipewatch apply -f
// pipewatch.yaml`), validates all of it, and writes it to the database in one
// transaction: connections and their sealed credentials, targets, and documents in the
// settings table (teams, org, and the sections other packages add).
//
// Validation reports every problem at once, each with file:line:column and the path of
// the value ("connections[1].kind"), and nothing is written when there is any problem.
//
// # Adding a section
//
// A section is one top-level key of the file, in its own file of this package
// (connections.go, targets.go and teams.go are examples). To add `rules:`, write
// rules.go with the typed value (JSON tags: it is stored as a settings document), its
// defaults and a Section:
//
//	type Rules struct {
//		IdleDays int `json:"idle_days"`
//	}
//
//	var rulesSection = Section{
//		Key: "rules",
//		// Decode runs even when the key is absent (n == nil): start from the defaults.
//		Decode: func(d *Decoder, n *yaml.Node, path string, f *File) {
//			m := d.Mapping(n, path, "idle_days") // unknown keys are reported
//			f.Rules = Rules{IdleDays: 14}
//			if in, ipath := m.Get("idle_days"); in != nil {
//				f.Rules.IdleDays, _ = d.Int(in, ipath, 1, 365)
//			}
//		},
//		// Apply runs in the apply transaction; PutSetting writes and reports only a change.
//		Apply: func(ctx context.Context, tx *Tx) error {
//			return tx.PutSetting(ctx, "rules", tx.File.Rules)
//		},
//	}
//
// then add the field `Rules Rules` to File and `rulesSection` to the sections list in
// config.go (two one-line edits). Sections decode in list order, so a section may read
// the ones before it (f.Org, f.Teams). Readers load the document with
// LoadSetting(ctx, db, "rules", &rules). Document the keys in README.md.
//
// Decoder helpers (Mapping, Sequence, String, OneOf, Duration, Int, Decimal, Date,
// Location, Email, URL, Env, Strings, StringMap) record problems themselves and return
// zero values on error, so decode functions read straight through; Errorf records any
// other problem. Mapping rejects unknown keys, so a typo never silently does nothing.
package config

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"
)

// File is a validated config file.
type File struct {
	// Path is where the file was read from (for messages).
	Path        string
	Org         Org
	Teams       []Team
	Connections []Connection
	Targets     []Target
	Rules       Rules
	Routing     Routing
	Reminders   Reminders
}

// Section is one top-level key of the config file.
type Section struct {
	Key string
	// Decode validates the key's value (n is nil when the key is absent, so defaults apply)
	// and stores the result in f. It records problems on d and never fails early.
	Decode func(d *Decoder, n *yaml.Node, path string, f *File)
	// Apply writes the section inside the apply transaction (tx.File is the validated
	// file) and records what changed with tx.Changed.
	Apply func(ctx context.Context, tx *Tx) error
}

// sections in decode and apply order.
var sections = []Section{
	orgSection,
	teamsSection,
	connectionsSection,
	targetsSection,
	rulesSection,
	routingSection,
	remindersSection,
}

// Load reads and validates the file at path. Environment variables named by the file
// (credentials) are read with lookupEnv (os.LookupEnv when nil). The error is Problems
// when the file has problems.
func Load(path string, lookupEnv func(string) (string, bool)) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config file: %w", err)
	}
	return Parse(path, data, lookupEnv)
}

var yamlErrorLine = regexp.MustCompile(`line (\d+): (.*)`)

// Parse validates the YAML document data, read from the file named name. It returns
// every problem at once as Problems.
func Parse(name string, data []byte, lookupEnv func(string) (string, bool)) (*File, error) {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	d := &Decoder{file: name, lookupEnv: lookupEnv}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		p := Problem{File: name, Message: err.Error()}
		if m := yamlErrorLine.FindStringSubmatch(err.Error()); m != nil {
			p.Line, _ = strconv.Atoi(m[1])
			p.Message = "invalid YAML: " + m[2]
		}
		return nil, Problems{p}
	}
	keys := make([]string, len(sections))
	for i, s := range sections {
		keys[i] = s.Key
	}
	top := d.Mapping(&doc, "", keys...)
	f := &File{Path: name}
	for _, s := range sections {
		n, path := top.Get(s.Key)
		s.Decode(d, n, path, f)
	}
	if len(d.problems) > 0 {
		slices.SortStableFunc(d.problems, func(a, b Problem) int {
			if a.Line != b.Line {
				return a.Line - b.Line
			}
			return a.Column - b.Column
		})
		return nil, d.problems
	}
	return f, nil
}

// Duration is a time.Duration written as text ("15m") in YAML and in stored JSON.
type Duration time.Duration

// MarshalJSON writes the duration like "15m" or "1h30m".
func (v Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(formatDuration(time.Duration(v)))
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (v *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("decoding duration: %w", err)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("decoding duration: %w", err)
	}
	*v = Duration(d)
	return nil
}

func (v Duration) String() string { return formatDuration(time.Duration(v)) }
