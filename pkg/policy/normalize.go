package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// Decode parses a policy document as AWS returns it. IAM returns documents URL-encoded
// (and the Go SDK does not decode them); S3 returns them as written. Both are accepted.
func Decode(s string) (json.RawMessage, error) {
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "%7B") || strings.HasPrefix(t, "%7b") {
		u, err := url.QueryUnescape(t)
		if err != nil {
			return nil, fmt.Errorf("url-decode policy: %w", err)
		}
		t = u
	}
	if !json.Valid([]byte(t)) {
		return nil, fmt.Errorf("policy is not valid JSON")
	}
	return json.RawMessage(t), nil
}

// Canonical renders a policy document or statement in a form where two documents AWS treats
// alike are byte-equal: string-or-list values become sorted lists without duplicates,
// statement order does not matter, action names are compared case-insensitively, a "*"
// principal equals {"AWS":"*"}, and the JSON is compact with sorted keys.
func Canonical(doc json.RawMessage) (string, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return "", fmt.Errorf("parse policy: %w", err)
	}
	c := canonicalDoc(v)
	b, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// Equal reports whether two documents are semantically equal (see Canonical).
func Equal(a, b json.RawMessage) bool {
	ca, errA := Canonical(a)
	cb, errB := Canonical(b)
	return errA == nil && errB == nil && ca == cb
}

func canonicalDoc(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	if _, isStatement := m["Effect"]; isStatement {
		return canonicalStatement(m)
	}
	out := map[string]any{}
	for k, val := range m {
		if k != "Statement" {
			out[k] = val
			continue
		}
		var stmts []any
		switch s := val.(type) {
		case []any:
			stmts = s
		default:
			stmts = []any{s}
		}
		canon := make([]string, 0, len(stmts))
		for _, st := range stmts {
			b, _ := json.Marshal(canonicalDoc(st))
			canon = append(canon, string(b))
		}
		sort.Strings(canon)
		list := make([]any, len(canon))
		for i, c := range canon {
			list[i] = json.RawMessage(c)
		}
		out[k] = list
	}
	return out
}

var caseInsensitiveLists = map[string]bool{"Action": true, "NotAction": true}

func canonicalStatement(m map[string]any) map[string]any {
	out := map[string]any{}
	for k, val := range m {
		switch k {
		case "Action", "NotAction", "Resource", "NotResource":
			out[k] = sortedList(val, caseInsensitiveLists[k])
		case "Principal", "NotPrincipal":
			if s, ok := val.(string); ok && s == "*" {
				val = map[string]any{"AWS": "*"}
			}
			if pm, ok := val.(map[string]any); ok {
				p := map[string]any{}
				for pk, pv := range pm {
					p[pk] = sortedList(pv, false)
				}
				val = p
			}
			out[k] = val
		case "Condition":
			cm, ok := val.(map[string]any)
			if !ok {
				out[k] = val
				continue
			}
			c := map[string]any{}
			for op, keys := range cm {
				km, ok := keys.(map[string]any)
				if !ok {
					c[op] = keys
					continue
				}
				kk := map[string]any{}
				for ck, cv := range km {
					// Condition keys are case-insensitive; values are not.
					kk[strings.ToLower(ck)] = sortedList(cv, false)
				}
				c[op] = kk
			}
			out[k] = c
		default:
			out[k] = val
		}
	}
	return out
}

func sortedList(v any, fold bool) any {
	var items []string
	switch t := v.(type) {
	case string:
		items = []string{t}
	case []any:
		for _, x := range t {
			s, ok := x.(string)
			if !ok {
				return v // not a list of strings: leave as it is
			}
			items = append(items, s)
		}
	default:
		return v
	}
	if fold {
		for i := range items {
			items[i] = strings.ToLower(items[i])
		}
	}
	sort.Strings(items)
	out := make([]any, 0, len(items))
	for i, s := range items {
		if i > 0 && items[i-1] == s {
			continue
		}
		out = append(out, s)
	}
	return out
}
