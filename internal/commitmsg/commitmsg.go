// Package commitmsg reads the commit messages that the Concourse pool resource
// writes to a lock repository: which operation, which lock, and which build.
//
// The resource has changed its message format several times since 2015 and
// lock repositories keep all of history, so every form must be understood.
// Messages written by anything else (humans, merges) are not errors: they
// just name no build.
package commitmsg

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Op is the pool operation a commit message names.
type Op string

const (
	OpUnknown      Op = ""
	OpClaim        Op = "claiming"
	OpUnclaim      Op = "unclaiming"
	OpRemove       Op = "removing"
	OpAddClaimed   Op = "adding claimed"
	OpAddUnclaimed Op = "adding unclaimed" // the older bare "adding: L" also maps here
	OpUpdate       Op = "updating"
)

// opWords lists the keywords as written, colon included. "adding claimed"
// and "adding unclaimed" come before "adding" so the longer form wins.
var opWords = []struct {
	word string
	op   Op
}{
	{"adding unclaimed:", OpAddUnclaimed},
	{"adding claimed:", OpAddClaimed},
	{"adding:", OpAddUnclaimed},
	{"unclaiming:", OpUnclaim},
	{"claiming:", OpClaim},
	{"removing:", OpRemove},
	{"updating:", OpUpdate},
}

// Owner identifies the Concourse build that wrote a commit, as far as the message says.
type Owner struct {
	Team     string // "" when the message predates team names
	Pipeline string
	Vars     map[string]json.RawMessage // pipeline instance vars; nil unless instanced
	Job      string
	Build    string // job build name, e.g. "12" or "12.1" (reruns)
	BuildID  string // one-off build id (only for one-off builds)
	URL      string // the Build URL line's value as written, "" if none
	// Server is the Concourse external URL the Build URL names
	// (scheme://host[:port][/prefix]), "" when the message has no Build URL
	// about this build.
	Server string
	// ID is the build's id from the Poolboy-Build-Id trailer poolboy's resource
	// writes, "" if none: the one thing a re-created pipeline's build #N cannot share.
	ID string
	// Conflict says how the message's parts disagree about which build made the
	// claim (its first line names one build, its Build URL another); "" when
	// they agree. Such a message does not say whose claim it is.
	Conflict string
}

// Known reports whether a job build (Pipeline+Job+Build) or a one-off BuildID is known.
func (o Owner) Known() bool {
	return o.isJobBuild() || o.BuildID != ""
}

// IsOneOff reports whether the owner is a one-off build (known only by id).
func (o Owner) IsOneOff() bool {
	return o.BuildID != "" && !o.isJobBuild()
}

func (o Owner) isJobBuild() bool {
	return o.Pipeline != "" && o.Job != "" && o.Build != ""
}

// String renders the owner for humans, e.g. "team/pipeline/job #12",
// "team/pipeline/{"env":"stage"}/job #12", "pipeline/job #12" (no team),
// "one-off build 123", or "unknown".
func (o Owner) String() string {
	switch {
	case o.isJobBuild():
		parts := make([]string, 0, 4)
		if o.Team != "" {
			parts = append(parts, o.Team)
		}
		parts = append(parts, o.Pipeline)
		if v := o.VarsJSON(); v != "" {
			parts = append(parts, v)
		}
		parts = append(parts, o.Job)
		return strings.Join(parts, "/") + " #" + o.Build
	case o.BuildID != "":
		return "one-off build " + o.BuildID
	default:
		return "unknown"
	}
}

// VarsJSON returns the instance vars as compact JSON with sorted keys (at
// every level), "" when none. That is how Concourse renders
// BUILD_PIPELINE_INSTANCE_VARS, so the two can be compared as strings.
func (o Owner) VarsJSON() string {
	if len(o.Vars) == 0 {
		return ""
	}
	m := make(map[string]any, len(o.Vars))
	for k, raw := range o.Vars {
		v, err := decodeJSON(raw)
		if err != nil {
			return ""
		}
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		return ""
	}
	return string(b)
}

// Message is what a pool commit message says.
type Message struct {
	Op    Op
	Lock  string // the lock name after "<op>: " on the first line, "" if none; a multi-lock commit's first lock
	Owner Owner
	// Locks are the locks of a commit that claims or frees several at once (see
	// LockSetKey); nil for every other commit.
	Locks []LockRef
}

// LockRef is one lock of one pool.
type LockRef struct{ Pool, Name string }

func (l LockRef) String() string { return l.Pool + "/" + l.Name }

// LockSetKey is the trailer, one line per lock ("Poolboy-Lock-Set: POOL/NAME"), by
// which poolboy's resource lists the locks of a commit that claims (or frees)
// several at once. Its first line stays the pool resource's, naming the first
// lock: "team/pipeline/job build N claiming: env-1 (+2 more)", so that every
// reader of pool history finds the build; the claim walk gives each lock of the
// commit the commit, and so that build.
const LockSetKey = "Poolboy-Lock-Set"

// MultiSuffix is what follows the first lock's name on a multi-lock commit's
// first line: " (+N more)".
func MultiSuffix(more int) string { return " (+" + strconv.Itoa(more) + " more)" }

// maxPrefix bounds the build name before the operation keyword
// ("team/pipeline/{vars}/job build N "): real ones are far shorter.
const maxPrefix = 4 << 10

// Parse never fails: anything it cannot read yields the zero parts (unknown owner, OpUnknown).
func Parse(msg string) Message {
	first, body, _ := strings.Cut(msg, "\n")
	first = strings.TrimRightFunc(first, unicode.IsSpace)

	var m Message
	var prefixOwner Owner
	found := false
	// The keyword may also occur inside instance-vars JSON in the prefix, so
	// take the leftmost keyword whose prefix reads as a known form, and fall
	// back to the leftmost keyword at all (a human's "WIP claiming: x"). Only
	// keywords within maxPrefix bytes of the start are tried against their
	// prefix, so a long line costs its length, not its length squared.
	for i := 0; i < len(first) && !(found && i > maxPrefix); i++ {
		if i > 0 && first[i-1] != ' ' {
			continue
		}
		op, lock, ok := opAt(first, i)
		if !ok {
			continue
		}
		if !found {
			m.Op, m.Lock, found = op, lock, true
		}
		if i > maxPrefix {
			break
		}
		if owner, ok := parsePrefix(first[:i]); ok {
			m.Op, m.Lock, prefixOwner = op, lock, owner
			break
		}
	}

	if m.Op == OpClaim || m.Op == OpUnclaim {
		if locks := lockSet(body); len(locks) > 1 {
			m.Locks, m.Lock = locks, locks[0].Name
		}
	}
	rawURL := buildURLLine(body)
	m.Owner = merge(prefixOwner, parseBuildURL(rawURL))
	m.Owner.URL = rawURL
	if id := Trailer(body, "Poolboy-Build-Id"); isDigits(id) {
		m.Owner.ID = id
	}
	return m
}

// Trailer returns the value of the first "Key: value" line of the body, or "".
func Trailer(body, key string) string {
	for line := range strings.Lines(body) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), key+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// lockSet reads the LockSetKey trailers; nil unless every one is POOL/NAME.
func lockSet(body string) []LockRef {
	var locks []LockRef
	for line := range strings.Lines(body) {
		v, ok := strings.CutPrefix(strings.TrimSpace(line), LockSetKey+":")
		if !ok {
			continue
		}
		p, name, ok := strings.Cut(strings.TrimSpace(v), "/")
		if !ok || p == "" || name == "" || strings.Contains(name, "/") {
			return nil
		}
		locks = append(locks, LockRef{p, name})
	}
	return locks
}

// opAt matches "<op>:" at line[i:], followed by a space and the lock name or
// by the end of the line.
func opAt(line string, i int) (Op, string, bool) {
	rest := line[i:]
	for _, w := range opWords {
		after, ok := strings.CutPrefix(rest, w.word)
		if !ok {
			continue
		}
		if after == "" {
			return w.op, "", true
		}
		if after[0] == ' ' {
			return w.op, after[1:], true
		}
	}
	return OpUnknown, "", false
}

// parsePrefix reads what precedes the operation keyword. An empty prefix is
// fine (it names no build); anything else must be one of the known forms.
func parsePrefix(p string) (Owner, bool) {
	if p == "" {
		return Owner{}, true
	}
	p, ok := strings.CutSuffix(p, " ")
	if !ok || !utf8.ValidString(p) {
		return Owner{}, false
	}

	if rest, ok := strings.CutPrefix(p, "one-off "); ok {
		id := buildRef(rest)
		if !isDigits(id) {
			return Owner{}, false
		}
		return Owner{BuildID: id}, true
	}

	// "<path> build N" (2016 on): the number is last, so the last " build "
	// separates it even if a name contains that word.
	if i := strings.LastIndex(p, " build "); i >= 0 {
		name := p[i+len(" build "):]
		o, ok := parsePath(p[:i])
		if !ok || !isBuildName(name) {
			return Owner{}, false
		}
		o.Build = name
		return o, true
	}

	// 2015: "pipeline/job #N" (no team, no vars).
	i := strings.LastIndexByte(p, ' ')
	if i < 0 {
		return Owner{}, false
	}
	name := buildRef(p[i+1:])
	o, ok := parsePath(p[:i])
	if !ok || o.Team != "" || !isBuildName(name) {
		return Owner{}, false
	}
	o.Build = name
	return o, true
}

// buildRef strips the "#N", "`#N`" or "build N" decoration around a build
// number; it returns "" if there is none.
func buildRef(s string) string {
	if n, ok := strings.CutPrefix(s, "build "); ok {
		return n
	}
	if strings.HasPrefix(s, "`") {
		inner, ok := strings.CutSuffix(s[1:], "`")
		if !ok {
			return ""
		}
		s = inner
	}
	if n, ok := strings.CutPrefix(s, "#"); ok {
		return n
	}
	return ""
}

// parsePath reads "pipeline/job", "team/pipeline/job" or
// "team/pipeline/{json}/job". The JSON is decoded rather than split on "/"
// because its string values may contain "/" (and anything else).
func parsePath(s string) (Owner, bool) {
	a, rest, ok := strings.Cut(s, "/")
	if !ok || a == "" {
		return Owner{}, false
	}
	b, rest, ok := strings.Cut(rest, "/")
	if !ok {
		// pipeline/job
		if b == "" {
			return Owner{}, false
		}
		return Owner{Pipeline: a, Job: b}, true
	}
	if b == "" {
		return Owner{}, false
	}
	o := Owner{Team: a, Pipeline: b}
	if strings.HasPrefix(rest, "{") {
		dec := json.NewDecoder(strings.NewReader(rest))
		dec.UseNumber()
		var vars map[string]any
		if err := dec.Decode(&vars); err != nil {
			return Owner{}, false
		}
		job, ok := strings.CutPrefix(rest[dec.InputOffset():], "/")
		if !ok {
			return Owner{}, false
		}
		o.Vars, rest = rawVars(vars), job
	}
	if rest == "" || strings.Contains(rest, "/") {
		return Owner{}, false
	}
	o.Job = rest
	return o, true
}

// buildURLLine returns the value of the first "Build URL:" line of the body,
// trimmed, or "".
func buildURLLine(body string) string { return Trailer(body, "Build URL") }

// parseBuildURL reads a BUILD_URL. Only the end of the path matters, since
// the external URL may carry its own path prefix.
// ServerOf is the external URL of the Concourse a Build URL is on (what precedes
// the build's own path), "" when raw is not a build's URL.
func ServerOf(buildURL string) string { return parseBuildURL(buildURL).Server }

// SameServer compares external URLs by scheme, host, port and path prefix.
func SameServer(a, b string) bool {
	norm := func(raw string) string {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil || u.Host == "" {
			return ""
		}
		scheme, host, port := strings.ToLower(u.Scheme), strings.ToLower(u.Hostname()), u.Port()
		if port == "" || (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
			port = map[string]string{"http": "80", "https": "443"}[scheme]
		}
		return scheme + "://" + host + ":" + port + strings.TrimRight(u.EscapedPath(), "/")
	}
	na := norm(a)
	return na != "" && na == norm(b)
}

func parseBuildURL(raw string) Owner {
	if raw == "" {
		return Owner{}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return Owner{}
	}
	// Split the escaped path so that an escaped "/" stays inside its name.
	segs := strings.Split(strings.TrimSuffix(u.EscapedPath(), "/"), "/")
	for i, s := range segs {
		if segs[i], err = url.PathUnescape(s); err != nil {
			return Owner{}
		}
	}
	n := len(segs)
	at := func(i int) string {
		if i < 0 {
			return ""
		}
		return segs[i]
	}
	// server is the external URL: what precedes the build's own path.
	escaped := strings.Split(strings.TrimSuffix(u.EscapedPath(), "/"), "/")
	server := func(prefix int) string {
		if u.Scheme == "" || u.Host == "" || prefix < 0 {
			return ""
		}
		return u.Scheme + "://" + u.Host + strings.Join(escaped[:prefix], "/")
	}
	if at(n-2) != "builds" {
		return Owner{}
	}
	if at(n-4) != "jobs" {
		// $ATC_EXTERNAL_URL/builds/ID
		if !isDigits(segs[n-1]) {
			return Owner{}
		}
		return Owner{BuildID: segs[n-1], Server: server(n - 2)}
	}
	if at(n-6) != "pipelines" || at(n-8) != "teams" {
		return Owner{}
	}
	o := Owner{Team: segs[n-7], Pipeline: segs[n-5], Job: segs[n-3], Build: segs[n-1], Server: server(n - 8)}
	if o.Team == "" || o.Pipeline == "" || o.Job == "" || !isBuildName(o.Build) {
		return Owner{}
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return Owner{}
	}
	vars, err := queryVars(q)
	if err != nil {
		// Without its vars an instanced pipeline cannot be told from the
		// plain one, so name no build rather than the wrong one.
		return Owner{}
	}
	o.Vars = rawVars(vars)
	return o
}

// queryVars reads instance vars as Concourse puts them in URLs:
// "vars=<JSON object>" and/or "vars.<ref>=<JSON value>", where ref is a
// dotted path into nested objects whose parts may be double-quoted
// (vars."a.b".c). The v8.0.x servers wrote values unquoted, so a value that
// is not JSON is taken as a string.
func queryVars(q url.Values) (map[string]any, error) {
	var keys []string
	for k := range q {
		if k == "vars" || strings.HasPrefix(k, "vars.") {
			keys = append(keys, k)
		}
	}
	// "vars" sorts first, so the dotted keys patch the whole object.
	sort.Strings(keys)
	vars := map[string]any{}
	for _, k := range keys {
		val := q.Get(k)
		if k == "vars" {
			v, err := decodeJSON([]byte(val))
			obj, ok := v.(map[string]any)
			if err != nil || !ok {
				return nil, errors.New("vars is not a JSON object")
			}
			for kk, vv := range obj {
				vars[kk] = vv
			}
			continue
		}
		path, err := splitRef(k[len("vars."):])
		if err != nil {
			return nil, err
		}
		v, err := decodeJSON([]byte(val))
		if err != nil {
			v = val
		}
		cur := vars
		for _, p := range path[:len(path)-1] {
			next, ok := cur[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				cur[p] = next
			}
			cur = next
		}
		cur[path[len(path)-1]] = v
	}
	return vars, nil
}

// splitRef splits `a."b.c".d` into [a b.c d].
func splitRef(s string) ([]string, error) {
	var path []string
	for {
		var seg string
		if strings.HasPrefix(s, `"`) {
			end := strings.IndexByte(s[1:], '"')
			if end < 0 {
				return nil, errors.New("unterminated quote in var reference")
			}
			seg, s = s[1:1+end], s[2+end:]
		} else {
			end := strings.IndexByte(s, '.')
			if end < 0 {
				end = len(s)
			}
			seg, s = s[:end], s[end:]
			if seg == "" {
				return nil, errors.New("empty field in var reference")
			}
		}
		path = append(path, seg)
		if s == "" {
			return path, nil
		}
		var ok bool
		if s, ok = strings.CutPrefix(s, "."); !ok {
			return nil, errors.New("bad var reference")
		}
	}
}

// merge combines the prefix's owner with the Build URL's: the prefix wins for
// the fields it has and the URL fills the missing ones (e.g. the team for the
// pre-team forms). If the two name different builds, the prefix is kept alone
// and Conflict says so: the message does not say whose claim it is.
func merge(p, u Owner) Owner {
	if !p.Known() {
		return u
	}
	if !u.Known() {
		return p
	}
	if !agree(p, u) {
		p.Conflict = "its first line names " + p.String() + ", its Build URL " + u.String()
		if u.Server != "" {
			p.Conflict += " on " + u.Server
		}
		return p
	}
	if p.Team == "" {
		p.Team = u.Team
	}
	if p.Vars == nil {
		p.Vars = u.Vars
	}
	p.Server = u.Server
	return p
}

func agree(p, u Owner) bool {
	if p.IsOneOff() || u.IsOneOff() {
		return p.BuildID == u.BuildID
	}
	return p.Pipeline == u.Pipeline && p.Job == u.Job && p.Build == u.Build &&
		(p.Team == "" || p.Team == u.Team) &&
		(p.Vars == nil || p.VarsJSON() == u.VarsJSON())
}

// rawVars stores each top-level value as compact JSON (nested keys sorted),
// so vars read from a prefix and from a URL compare equal. nil when empty.
func rawVars(vars map[string]any) map[string]json.RawMessage {
	if len(vars) == 0 {
		return nil
	}
	out := make(map[string]json.RawMessage, len(vars))
	for k, v := range vars {
		b, err := json.Marshal(v)
		if err != nil {
			return nil
		}
		out[k] = b
	}
	return out
}

// decodeJSON decodes exactly one JSON value, keeping numbers as written.
func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after JSON value")
	}
	return v, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isBuildName accepts "12" and rerun names like "12.1".
func isBuildName(s string) bool {
	n, rerun, ok := strings.Cut(s, ".")
	return isDigits(n) && (!ok || isDigits(rerun))
}
