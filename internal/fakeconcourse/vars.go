package fakeconcourse

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// instanceVarsFromQuery follows atc.InstanceVarsFromQueryParams: every
// parameter "vars" (a JSON object) or "vars.K[.K2...]" (a JSON value; a
// field with dots may be double-quoted) is parsed as JSON, applied in sorted
// key order ("vars" first, then the patches). Invalid JSON or a malformed
// key is an error (the ATC answers 400). No such parameter: nil.
func instanceVarsFromQuery(q url.Values) (map[string]any, error) {
	var keys []string
	for k := range q {
		if k == "vars" || strings.HasPrefix(k, "vars.") {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	sort.Strings(keys)
	var root any
	for _, k := range keys {
		fields, err := parseVarsRef(k)
		if err != nil {
			return nil, err
		}
		var v any
		if err := json.Unmarshal([]byte(q.Get(k)), &v); err != nil {
			return nil, fmt.Errorf("invalid JSON for %q: %w", k, err)
		}
		if len(fields) == 0 {
			root = v
			continue
		}
		m, ok := root.(map[string]any)
		if !ok {
			m = map[string]any{}
			root = m
		}
		for _, f := range fields[:len(fields)-1] {
			inner, ok := m[f].(map[string]any)
			if !ok {
				inner = map[string]any{}
				m[f] = inner
			}
			m = inner
		}
		m[fields[len(fields)-1]] = v
	}
	if root == nil {
		return nil, nil
	}
	m, ok := root.(map[string]any)
	if !ok {
		return nil, errors.New("vars is not an object")
	}
	return m, nil
}

// parseVarsRef splits "vars.a.\"b.c\"" into ["a", "b.c"].
func parseVarsRef(k string) ([]string, error) {
	if k == "vars" {
		return nil, nil
	}
	rest := strings.TrimPrefix(k, "vars.")
	var fields []string
	for {
		var f string
		if strings.HasPrefix(rest, `"`) {
			end := strings.Index(rest[1:], `"`)
			if end < 0 {
				return nil, fmt.Errorf("unterminated quote in %q", k)
			}
			f, rest = rest[1:1+end], rest[2+end:]
			if rest != "" && !strings.HasPrefix(rest, ".") {
				return nil, fmt.Errorf("bad var reference %q", k)
			}
		} else {
			i := strings.Index(rest, ".")
			if i < 0 {
				f, rest = rest, ""
			} else {
				f, rest = rest[:i], rest[i:]
			}
		}
		if f == "" {
			return nil, fmt.Errorf("empty field in %q", k)
		}
		fields = append(fields, f)
		if rest == "" {
			return fields, nil
		}
		rest = rest[1:] // the dot
		if rest == "" {
			return nil, fmt.Errorf("trailing dot in %q", k)
		}
	}
}
