package resource

import (
	"crypto/rand"
	"encoding/json"
	"net/url"
	"strings"

	"github.com/poolboy-ci/poolboy/internal/commitmsg"
	"github.com/poolboy-ci/poolboy/internal/concourse"
)

// holder is the build running the script, from the BUILD_* variables Concourse gives
// get and put steps. Every commit out makes names it, so that poolboy (and the
// original Python pool boy, and anyone reading `git log`) can tell who holds a lock.
type holder struct {
	ID, Team, Pipeline, InstanceVars, Job, Name, URL string
}

func holderFrom(env Env) holder {
	get := func(k string) string {
		if env == nil {
			return ""
		}
		v, _ := env(k)
		return oneLine(strings.TrimSpace(v))
	}
	h := holder{
		ID:           get("BUILD_ID"),
		Team:         get("BUILD_TEAM_NAME"),
		Pipeline:     get("BUILD_PIPELINE_NAME"),
		InstanceVars: get("BUILD_PIPELINE_INSTANCE_VARS"),
		Job:          get("BUILD_JOB_NAME"),
		Name:         get("BUILD_NAME"),
		URL:          get("BUILD_URL"),
	}
	if h.URL == "" {
		// Servers before v8 have no BUILD_URL: compose what v8 would have written.
		h.URL = h.composeURL(get("ATC_EXTERNAL_URL"))
	}
	return h
}

func (h holder) jobBuild() bool {
	return h.Team != "" && h.Pipeline != "" && h.Job != "" && h.Name != ""
}

// owns says whether the claim message names this very build. A claim that names
// its Concourse (its Build URL) must name this build's: build ids and names are
// counted per Concourse, and several may share one lock repository. Then the build id
// a poolboy claim records settles it; older forms are compared by what they say
// (team, pipeline, instance vars, job and build name, or a one-off build's id). A
// holder without build metadata (a run by hand) owns nothing.
func (h holder) owns(msg string) bool {
	o := commitmsg.Parse(msg).Owner
	if o.Server != "" && !commitmsg.SameServer(o.Server, commitmsg.ServerOf(h.URL)) {
		return false
	}
	if o.ID != "" || h.ID == "" {
		return o.ID != "" && o.ID == h.ID
	}
	if !h.jobBuild() {
		return o.IsOneOff() && o.BuildID == h.ID
	}
	vars := ""
	if h.InstanceVars != "" {
		vars = (commitmsg.Owner{Vars: rawVars(h.InstanceVars)}).VarsJSON()
	}
	return o.Team == h.Team && o.Pipeline == h.Pipeline && o.Job == h.Job && o.Build == h.Name && o.VarsJSON() == vars
}

// rawVars decodes BUILD_PIPELINE_INSTANCE_VARS; nil when it is not an object.
func rawVars(vars string) map[string]json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal([]byte(vars), &m) != nil {
		return nil
	}
	return m
}

// prefix is what the pool resource wrote before the operation from 2018 to 2026:
// "team/pipeline/job build N " ("team/pipeline/{vars}/job build N " for an
// instanced pipeline), or "one-off build ID ". Every parser of pool history knows
// these, the Python pool boy's regex included.
func (h holder) prefix() string {
	switch {
	case h.jobBuild():
		path := h.Team + "/" + h.Pipeline
		if h.InstanceVars != "" {
			path += "/" + h.InstanceVars
		}
		return path + "/" + h.Job + " build " + h.Name + " "
	case h.ID != "":
		return "one-off build " + h.ID + " "
	}
	return ""
}

// message is a commit message: the pool resource's first line with the holder
// prefix, a blank line (so `git log --oneline` shows the first line alone), the
// Build URL line as upstream v1.8 writes it, and trailers with the full metadata.
// extra are more "Key: value" trailers.
func (h holder) message(op, lock string, extra ...string) string {
	var b strings.Builder
	b.WriteString(h.prefix() + op + ": " + lock + "\n")
	if h.URL != "" {
		b.WriteString("\nBuild URL: " + h.URL + "\n")
	}
	trailers := []struct{ key, val string }{
		{"Poolboy-Build-Id", h.ID},
		{"Poolboy-Build-Team", h.Team},
		{"Poolboy-Build-Pipeline", h.Pipeline},
		{"Poolboy-Build-Instance-Vars", h.InstanceVars},
		{"Poolboy-Build-Job", h.Job},
		{"Poolboy-Build-Name", h.Name},
		{"Poolboy-Build-Url", h.URL},
	}
	sep := "\n"
	for _, t := range trailers {
		if t.val != "" {
			b.WriteString(sep + t.key + ": " + t.val + "\n")
			sep = ""
		}
	}
	for _, t := range extra {
		b.WriteString(sep + oneLine(t) + "\n")
		sep = ""
	}
	// Two put steps of one build (in_parallel) deciding on the same head in the
	// same second would otherwise build byte-identical commits, and git answers the
	// second push "up to date": both steps would think they hold the lock. A nonce
	// makes every commit ours alone, so "up to date" can only mean our own push.
	b.WriteString(sep + "Poolboy-Nonce: " + rand.Text() + "\n")
	return b.String()
}

// composeURL builds the build's page as BUILD_URL has it on v8.1+ servers:
// EXT/teams/T/pipelines/P/jobs/J/builds/N (?vars.k=<JSON value> for an instanced
// pipeline), or EXT/builds/ID for a one-off build. "" without ATC_EXTERNAL_URL.
func (h holder) composeURL(external string) string {
	external = strings.TrimRight(external, "/")
	switch {
	case external == "":
		return ""
	case h.jobBuild():
		u := external + "/teams/" + url.PathEscape(h.Team) + "/pipelines/" + url.PathEscape(h.Pipeline) +
			"/jobs/" + url.PathEscape(h.Job) + "/builds/" + url.PathEscape(h.Name)
		if q := varsQuery(h.InstanceVars); q != "" {
			u += "?" + q
		}
		return u
	case h.ID != "":
		return external + "/builds/" + url.PathEscape(h.ID)
	}
	return ""
}

// varsQuery renders instance vars as Concourse's BUILD_URL does, with the one
// encoder the API queries use; "" when they are not a JSON object.
func varsQuery(vars string) string {
	var m map[string]json.RawMessage
	if json.Unmarshal([]byte(vars), &m) != nil {
		return ""
	}
	q, err := concourse.VarsQuery(m)
	if err != nil {
		return ""
	}
	return q
}

// oneLine keeps values from the environment or the repository from adding lines
// (and so trailers, or a forged first line) to a commit message or a log line.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
}
