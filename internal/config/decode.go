package config

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"go.yaml.in/yaml/v3"
)

// Problem is one thing wrong with a config file, located by line and column.
type Problem struct {
	File   string
	Line   int
	Column int
	// Path locates the value in the document, e.g. "connections[0].kind".
	Path    string
	Message string
}

func (p Problem) String() string {
	loc := fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column)
	if p.Column == 0 {
		loc = fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	if p.Path == "" {
		return loc + ": " + p.Message
	}
	return loc + ": " + p.Path + ": " + p.Message
}

// Problems is every problem found in a config file, in file order. Parse returns it as
// its error so that a person sees all of them at once.
type Problems []Problem

func (ps Problems) Error() string {
	var b strings.Builder
	if len(ps) == 1 {
		b.WriteString("1 problem in the config file:")
	} else {
		fmt.Fprintf(&b, "%d problems in the config file:", len(ps))
	}
	for _, p := range ps {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// Decoder walks the YAML nodes of one config file, decodes values and collects every
// problem instead of stopping at the first. Sections get one to decode their part.
// Its helpers take a node and the node's path and return the zero value (and false)
// when the node is absent or wrong; wrong nodes are recorded as problems.
type Decoder struct {
	file      string
	lookupEnv func(string) (string, bool)
	problems  Problems
}

// Errorf records a problem at node n (or at line 0 when n is nil).
func (d *Decoder) Errorf(n *yaml.Node, path, format string, args ...any) {
	p := Problem{File: d.file, Path: path, Message: fmt.Sprintf(format, args...)}
	if n != nil {
		p.Line, p.Column = n.Line, n.Column
	}
	d.problems = append(d.problems, p)
}

// Fields are the values of a YAML mapping by key, as returned by Decoder.Mapping.
type Fields struct {
	d     *Decoder
	node  *yaml.Node
	path  string
	byKey map[string]*yaml.Node
}

// Get returns the value of key and its path; the node is nil when the key is absent or null.
func (f Fields) Get(key string) (*yaml.Node, string) {
	return f.byKey[key], Join(f.path, key)
}

// Required is Get that records a problem at the mapping when the key is absent or null.
func (f Fields) Required(key string) (*yaml.Node, string) {
	n, path := f.Get(key)
	if n == nil && f.node != nil {
		f.d.Errorf(f.node, f.path, "missing %s", key)
	}
	return n, path
}

// Has reports whether key is present with a non-null value.
func (f Fields) Has(key string) bool { return f.byKey[key] != nil }

// Join appends key to path: Join("connections[0]", "kind") = "connections[0].kind".
func Join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// Index appends a sequence index to path: Index("targets", 2) = "targets[2]".
func Index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// Pair is one entry of a YAML mapping.
type Pair struct {
	Key     string
	KeyNode *yaml.Node
	Value   *yaml.Node
}

// Pairs returns the entries of mapping n in file order, reporting non-scalar and
// duplicate keys. A nil node yields none.
func (d *Decoder) Pairs(n *yaml.Node, path string) []Pair {
	n = resolve(n)
	if n == nil {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.Errorf(n, path, "want a mapping of keys to values, got %s", describe(n))
		return nil
	}
	pairs := make([]Pair, 0, len(n.Content)/2)
	seen := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.Errorf(k, path, "keys must be plain strings")
			continue
		}
		if prev, dup := seen[k.Value]; dup {
			d.Errorf(k, Join(path, k.Value), "duplicate key (first at line %d)", prev.Line)
			continue
		}
		seen[k.Value] = k
		pairs = append(pairs, Pair{Key: k.Value, KeyNode: k, Value: v})
	}
	return pairs
}

// Mapping decodes mapping n whose keys must be among known, reporting unknown keys
// (never their values, which might be secrets pasted in the wrong place).
func (d *Decoder) Mapping(n *yaml.Node, path string, known ...string) Fields {
	f := Fields{d: d, node: resolve(n), path: path, byKey: map[string]*yaml.Node{}}
	for _, p := range d.Pairs(n, path) {
		if !slices.Contains(known, p.Key) {
			d.Errorf(p.KeyNode, Join(path, p.Key), "unknown key (want one of %s)", strings.Join(known, ", "))
			continue
		}
		if v := resolve(p.Value); v != nil && !isNull(v) {
			f.byKey[p.Key] = v
		}
	}
	return f
}

// Sequence returns the items of sequence n. A nil node yields none.
func (d *Decoder) Sequence(n *yaml.Node, path string) []*yaml.Node {
	n = resolve(n)
	if n == nil || isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.Errorf(n, path, "want a list, got %s", describe(n))
		return nil
	}
	items := make([]*yaml.Node, len(n.Content))
	for i, c := range n.Content {
		items[i] = resolve(c)
	}
	return items
}

// scalar returns n's text when it is a scalar.
func (d *Decoder) scalar(n *yaml.Node, path, want string) (string, bool) {
	n = resolve(n)
	if n == nil || isNull(n) {
		return "", false
	}
	if n.Kind != yaml.ScalarNode {
		d.Errorf(n, path, "want %s, got %s", want, describe(n))
		return "", false
	}
	return n.Value, true
}

// String returns the text of scalar n; an empty string is a problem.
func (d *Decoder) String(n *yaml.Node, path string) string {
	s, ok := d.scalar(n, path, "a string")
	if ok && strings.TrimSpace(s) == "" {
		d.Errorf(n, path, "must not be empty")
		return ""
	}
	return strings.TrimSpace(s)
}

// OneOf returns the text of scalar n when it is one of choices.
func (d *Decoder) OneOf(n *yaml.Node, path, what string, choices ...string) string {
	s, ok := d.scalar(n, path, what)
	if !ok {
		return ""
	}
	if !slices.Contains(choices, s) {
		d.Errorf(n, path, "unknown %s %q (want %s)", what, s, orList(choices))
		return ""
	}
	return s
}

// Duration parses a Go duration ("90s", "15m", "2h"); it must be at least minimum.
func (d *Decoder) Duration(n *yaml.Node, path string, minimum time.Duration) (time.Duration, bool) {
	s, ok := d.scalar(n, path, "a duration like 15m")
	if !ok {
		return 0, false
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		d.Errorf(n, path, "want a duration like 90s, 15m or 2h, got %q", s)
		return 0, false
	}
	if v < minimum {
		d.Errorf(n, path, "%s is too short (minimum %s)", s, formatDuration(minimum))
		return 0, false
	}
	return v, true
}

// Int parses an integer within [lo, hi].
func (d *Decoder) Int(n *yaml.Node, path string, lo, hi int) (int, bool) {
	s, ok := d.scalar(n, path, "a whole number")
	if !ok {
		return 0, false
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		d.Errorf(n, path, "want a whole number, got %q", s)
		return 0, false
	}
	if v < lo || v > hi {
		d.Errorf(n, path, "%d is out of range (want %d to %d)", v, lo, hi)
		return 0, false
	}
	return v, true
}

// Bool parses true or false.
func (d *Decoder) Bool(n *yaml.Node, path string) (bool, bool) {
	s, ok := d.scalar(n, path, "true or false")
	if !ok {
		return false, false
	}
	switch strings.ToLower(s) {
	case "true", "yes", "on":
		return true, true
	case "false", "no", "off":
		return false, true
	}
	d.Errorf(n, path, "want true or false, got %q", s)
	return false, false
}

// Decimal parses an exact decimal number (money, ratios).
func (d *Decoder) Decimal(n *yaml.Node, path string) (decimal.Decimal, bool) {
	s, ok := d.scalar(n, path, "a number")
	if !ok {
		return decimal.Decimal{}, false
	}
	v, err := decimal.NewFromString(strings.ReplaceAll(s, "_", ""))
	if err != nil {
		d.Errorf(n, path, "want a number like 250000 or 1250.50, got %q", s)
		return decimal.Decimal{}, false
	}
	return v, true
}

// Date parses a calendar date written YYYY-MM-DD.
func (d *Decoder) Date(n *yaml.Node, path string) (time.Time, bool) {
	s, ok := d.scalar(n, path, "a date like 2026-12-25")
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		d.Errorf(n, path, "want a date like 2026-12-25, got %q", s)
		return time.Time{}, false
	}
	return t, true
}

// Location parses an IANA time zone name ("Europe/Berlin", "America/New_York", "UTC").
func (d *Decoder) Location(n *yaml.Node, path string) (string, bool) {
	s, ok := d.scalar(n, path, "a time zone like Europe/Berlin")
	if !ok {
		return "", false
	}
	if s == "" || strings.EqualFold(s, "local") {
		d.Errorf(n, path, "want an IANA time zone like Europe/Berlin or America/New_York, got %q", s)
		return "", false
	}
	if _, err := time.LoadLocation(s); err != nil {
		d.Errorf(n, path, "unknown time zone %q (want an IANA name like Europe/Berlin or America/New_York)", s)
		return "", false
	}
	return s, true
}

// Email checks that scalar n looks like an email address and returns it lower-cased.
func (d *Decoder) Email(n *yaml.Node, path string) (string, bool) {
	s, ok := d.scalar(n, path, "an email address")
	if !ok {
		return "", false
	}
	at := strings.LastIndexByte(s, '@')
	if at < 1 || at == len(s)-1 || strings.ContainsAny(s, " \t,;<>") {
		d.Errorf(n, path, "want an email address, got %q", s)
		return "", false
	}
	return strings.ToLower(s), true
}

// URL parses an absolute http(s) URL.
func (d *Decoder) URL(n *yaml.Node, path string) (string, bool) {
	s, ok := d.scalar(n, path, "a URL")
	if !ok {
		return "", false
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		d.Errorf(n, path, "want an absolute http(s) URL like https://api.example.com, got %q", s)
		return "", false
	}
	return strings.TrimRight(s, "/"), true
}

var envNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Env reads the environment variable named by scalar n. The variable must be set and
// non-empty. The problem messages never show values: a value that is not a variable
// name may be a secret pasted into the file.
func (d *Decoder) Env(n *yaml.Node, path string) (name, value string, ok bool) {
	s, ok := d.scalar(n, path, "the name of an environment variable")
	if !ok {
		return "", "", false
	}
	if !envNamePattern.MatchString(s) {
		d.Errorf(n, path, "must name an environment variable (like HUBSPOT_TOKEN) that holds the secret; "+
			"secrets never go in the file")
		return "", "", false
	}
	v, set := d.lookupEnv(s)
	if !set || v == "" {
		d.Errorf(n, path, "environment variable %s is not set (export it before running `pipewatch apply`)", s)
		return s, "", false
	}
	return s, v, true
}

// Strings returns the scalars of sequence n.
func (d *Decoder) Strings(n *yaml.Node, path string) []string {
	items := d.Sequence(n, path)
	out := make([]string, 0, len(items))
	for i, item := range items {
		if s := d.String(item, Index(path, i)); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// StringMap returns a mapping of scalar values as text (numbers and booleans as written).
func (d *Decoder) StringMap(n *yaml.Node, path string) map[string]string {
	pairs := d.Pairs(n, path)
	if len(pairs) == 0 {
		return nil
	}
	out := make(map[string]string, len(pairs))
	for _, p := range pairs {
		if s, ok := d.scalar(p.Value, Join(path, p.Key), "a single value"); ok {
			out[p.Key] = s
		}
	}
	return out
}

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n != nil && n.Kind == 0 { // an empty document
		return nil
	}
	if n != nil && n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		return resolve(n.Content[0])
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "nothing"
		}
		return "a single value"
	}
	return "something else"
}

// orList writes choices as "a, b or c".
func orList(choices []string) string {
	if len(choices) == 1 {
		return choices[0]
	}
	return strings.Join(choices[:len(choices)-1], ", ") + " or " + choices[len(choices)-1]
}

// formatDuration writes d without zero units: 15m rather than 15m0s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
