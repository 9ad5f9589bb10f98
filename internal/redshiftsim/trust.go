package redshiftsim

import (
	"encoding/json"
	"strings"
)

// principal is who asks to assume a role: a service or another role.
type principal struct {
	service string // e.g. redshift.amazonaws.com
	roleARN string // arn:aws:iam::ACCOUNT:role/NAME
}

type trustResult int

const (
	trustAllowed         trustResult = iota
	trustNoPrincipal                 // no statement lets the principal assume the role
	trustConditionFailed             // a statement names the principal but its conditions fail, or a Deny matches
)

// evaluateTrust is a small IAM evaluator for sts:AssumeRole against a trust
// policy: enough for Redshift's trusts (Service principal, ExternalId lists,
// role/account principals for chaining). Unknown condition operators or keys
// evaluate to false, as IAM does for absent keys.
func evaluateTrust(doc string, p principal, reqCtx map[string]string) trustResult {
	var policy struct {
		Statement json.RawMessage
	}
	if err := json.Unmarshal([]byte(doc), &policy); err != nil {
		return trustNoPrincipal
	}
	var stmts []trustStatement
	if err := json.Unmarshal(policy.Statement, &stmts); err != nil {
		var one trustStatement
		if err := json.Unmarshal(policy.Statement, &one); err != nil {
			return trustNoPrincipal
		}
		stmts = []trustStatement{one}
	}
	named, allowed := false, false
	for _, st := range stmts {
		if st.Principal == nil || !matchesAction(st.Action) || !matchesPrincipal(st.Principal, p) {
			continue
		}
		condOK := conditionsHold(st.Condition, reqCtx)
		switch st.Effect {
		case "Deny":
			if condOK {
				return trustConditionFailed
			}
		case "Allow":
			named = true
			if condOK {
				allowed = true
			}
		}
	}
	switch {
	case allowed:
		return trustAllowed
	case named:
		return trustConditionFailed
	default:
		return trustNoPrincipal
	}
}

type trustStatement struct {
	Effect    string
	Principal json.RawMessage
	Action    json.RawMessage
	Condition map[string]map[string]json.RawMessage
}

// stringOrList decodes IAM's "a" | ["a", "b"].
func stringOrList(raw json.RawMessage) []string {
	if len(raw) == 0 {
		return nil
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err == nil {
		return list
	}
	// Booleans and numbers appear in conditions; compare their JSON text.
	return []string{strings.Trim(string(raw), `"`)}
}

func matchesAction(raw json.RawMessage) bool {
	for _, a := range stringOrList(raw) {
		if globMatch(strings.ToLower(a), "sts:assumerole") {
			return true
		}
	}
	return false
}

func matchesPrincipal(raw json.RawMessage, p principal) bool {
	if s := stringOrList(raw); len(s) == 1 && s[0] == "*" {
		return true
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return false
	}
	if p.service != "" {
		for _, s := range stringOrList(m["Service"]) {
			if s == p.service {
				return true
			}
		}
		return false
	}
	account := arnAccount(p.roleARN)
	for _, a := range stringOrList(m["AWS"]) {
		if a == "*" || a == p.roleARN || a == account || a == "arn:aws:iam::"+account+":root" {
			return true
		}
	}
	return false
}

// arnAccount returns the account field of an ARN.
func arnAccount(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) < 6 {
		return ""
	}
	return parts[4]
}

func conditionsHold(cond map[string]map[string]json.RawMessage, reqCtx map[string]string) bool {
	for op, keys := range cond {
		for key, raw := range keys {
			if !conditionHolds(op, reqCtx, strings.ToLower(key), stringOrList(raw)) {
				return false
			}
		}
	}
	return true
}

func conditionHolds(op string, reqCtx map[string]string, key string, want []string) bool {
	// Set operators apply to multi-valued keys; every key here has one value.
	op = strings.TrimPrefix(strings.TrimPrefix(op, "ForAnyValue:"), "ForAllValues:")
	ifExists := strings.HasSuffix(op, "IfExists")
	op = strings.TrimSuffix(op, "IfExists")
	got, ok := reqCtx[key]
	if !ok {
		return ifExists || strings.Contains(op, "Not")
	}
	var match func(pattern, s string) bool
	negate := false
	switch op {
	case "StringEquals", "ArnEquals":
		match = func(p, s string) bool { return p == s }
	case "StringNotEquals", "ArnNotEquals":
		match, negate = func(p, s string) bool { return p == s }, true
	case "StringEqualsIgnoreCase":
		match = strings.EqualFold
	case "StringNotEqualsIgnoreCase":
		match, negate = strings.EqualFold, true
	case "StringLike", "ArnLike":
		match = globMatch
	case "StringNotLike", "ArnNotLike":
		match, negate = globMatch, true
	default:
		return false
	}
	any := false
	for _, w := range want {
		if match(w, got) {
			any = true
			break
		}
	}
	return any != negate
}

// globMatch is IAM's wildcard match: * any run, ? one character.
func globMatch(pattern, s string) bool {
	if pattern == "" {
		return s == ""
	}
	switch pattern[0] {
	case '*':
		for i := 0; i <= len(s); i++ {
			if globMatch(pattern[1:], s[i:]) {
				return true
			}
		}
		return false
	case '?':
		return s != "" && globMatch(pattern[1:], s[1:])
	default:
		return s != "" && s[0] == pattern[0] && globMatch(pattern[1:], s[1:])
	}
}
