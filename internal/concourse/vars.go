package concourse

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// VarsQuery encodes pipeline instance vars as Concourse's own client does
// (atc.PipelineRef.QueryParams, which fly and BUILD_URL use): nested objects are
// flattened to one vars.REF=<JSON value> parameter per leaf, a REF segment holding
// any of `,.:/ ` is Go-quoted, values are json.Marshal'ed from their decoded form,
// and the parameters are url.Values-encoded (sorted). "" for no vars. This is the
// one encoder: API queries and the Build URLs poolboy's resource writes use it.
func VarsQuery(vars map[string]json.RawMessage) (string, error) {
	if len(vars) == 0 {
		return "", nil
	}
	q := url.Values{}
	for k, raw := range vars {
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return "", fmt.Errorf("instance var %q: invalid JSON value: %w", k, err)
		}
		if err := flattenVars(q, []string{k}, v); err != nil {
			return "", fmt.Errorf("instance var %q: %w", k, err)
		}
	}
	return q.Encode(), nil
}

func flattenVars(q url.Values, ref []string, v any) error {
	if m, ok := v.(map[string]any); ok {
		for k, inner := range m {
			if err := flattenVars(q, append(ref[:len(ref):len(ref)], k), inner); err != nil {
				return err
			}
		}
		return nil
	}
	segs := make([]string, len(ref))
	for i, s := range ref {
		segs[i] = s
		if strings.ContainsAny(s, ",.:/ ") {
			segs[i] = strconv.Quote(s)
		}
	}
	payload, err := json.Marshal(v)
	if err != nil {
		return err
	}
	q.Set("vars."+strings.Join(segs, "."), string(payload))
	return nil
}
