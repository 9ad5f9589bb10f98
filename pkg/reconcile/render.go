package reconcile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// Stats is what a plan or apply cost in AWS calls and time.
type Stats struct {
	APICalls    int            `json:"api_calls"`
	ByOperation map[string]int `json:"by_operation"`
	DurationMS  int64          `json:"duration_ms"`
}

// Document is the JSON output of plan and apply (design.md §2).
type Document struct {
	Changes   []Change       `json:"changes"`
	Conflicts []Conflict     `json:"conflicts"`
	Summary   map[string]int `json:"summary"`
	Stats     Stats          `json:"stats"`
}

// WriteJSON writes the plan as one JSON document.
func WriteJSON(w io.Writer, p *Plan, st Stats) error {
	if st.ByOperation == nil {
		st.ByOperation = map[string]int{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(Document{Changes: p.Changes, Conflicts: p.Conflicts, Summary: p.Summary(), Stats: st})
}

var symbols = map[Action]string{Create: "+", Update: "~", Delete: "-", NoOp: "="}

// WriteText writes the plan for a person to review: what, where, why, and for documents
// only what differs.
func WriteText(w io.Writer, p *Plan) error {
	var b bytes.Buffer
	s := p.Summary()
	if p.Empty() {
		b.WriteString("No changes: AWS matches the configuration.\n")
	} else {
		fmt.Fprintf(&b, "Plan: %d to create, %d to update, %d to delete.\n", s["create"], s["update"], s["delete"])
	}
	for _, c := range p.Changes {
		if c.Action == NoOp {
			continue
		}
		where := c.Account + " " + c.AccountID
		if c.Region != "" {
			where += " " + c.Region
		}
		fmt.Fprintf(&b, "\n  %s %s %s\n", symbols[c.Action], c.Type, c.ID)
		fmt.Fprintf(&b, "      in: %s", where)
		if c.Pair != "" {
			fmt.Fprintf(&b, " · pair: %s", c.Pair)
		}
		fmt.Fprintf(&b, "\n      why: %s\n", c.Reason)
		for _, line := range diffLines(c) {
			fmt.Fprintf(&b, "        %s\n", line)
		}
	}
	if len(p.Conflicts) > 0 {
		fmt.Fprintf(&b, "\nConflicts (left alone; their pairs are not ready):\n")
		for _, c := range p.Conflicts {
			fmt.Fprintf(&b, "\n  ! %s %s\n      in: %s %s\n      why: %s\n", c.Type, c.ID, c.Account, c.AccountID, c.Reason)
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

// diffLines shows what a change does to a value: the whole value for creates and deletes
// of small values, a minimal JSON diff for updates of documents.
func diffLines(c Change) []string {
	before, after := toAny(c.Before), toAny(c.After)
	switch {
	case c.Action == Create:
		return []string{"+ " + compact(after)}
	case c.Action == Delete:
		return []string{"- " + compact(before)}
	}
	var out []string
	jsonDiff(normalizeLists(before), normalizeLists(after), "", &out)
	if len(out) == 0 {
		out = []string{"- " + compact(before), "+ " + compact(after)}
	}
	return out
}

func toAny(v any) any {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	var out any
	if json.Unmarshal(b, &out) != nil {
		return fmt.Sprint(v)
	}
	return out
}

func compact(v any) string {
	if v == nil {
		return "(none)"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

var listKeys = map[string]bool{"Action": true, "NotAction": true, "Resource": true, "NotResource": true}

// normalizeLists turns policy values written as one string into one-element lists, so that
// a diff shows real differences only.
func normalizeLists(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, val := range t {
			switch {
			case listKeys[k]:
				out[k] = asList(val)
			case k == "Principal" || k == "NotPrincipal":
				if pm, ok := val.(map[string]any); ok {
					p := map[string]any{}
					for pk, pv := range pm {
						p[pk] = asList(pv)
					}
					out[k] = p
				} else {
					out[k] = val
				}
			case k == "Condition":
				if cm, ok := val.(map[string]any); ok {
					c := map[string]any{}
					for op, kv := range cm {
						if km, ok := kv.(map[string]any); ok {
							m := map[string]any{}
							for ck, cv := range km {
								m[ck] = asList(cv)
							}
							c[op] = m
						} else {
							c[op] = kv
						}
					}
					out[k] = c
				} else {
					out[k] = val
				}
			default:
				out[k] = normalizeLists(val)
			}
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = normalizeLists(x)
		}
		return out
	}
	return v
}

func asList(v any) any {
	if s, ok := v.(string); ok {
		return []any{s}
	}
	return v
}

// jsonDiff appends "- path: value" / "+ path: value" lines for what differs. Lists of
// strings are compared as sets; lists of objects (statements) are matched by Sid, else by
// position.
func jsonDiff(a, b any, path string, out *[]string) {
	if compact(a) == compact(b) {
		return
	}
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		keys := map[string]bool{}
		for k := range am {
			keys[k] = true
		}
		for k := range bm {
			keys[k] = true
		}
		for _, k := range slices.Sorted(maps.Keys(keys)) {
			av, ain := am[k]
			bv, bin := bm[k]
			p := joinKey(path, k)
			switch {
			case !ain:
				*out = append(*out, "+ "+p+": "+compact(bv))
			case !bin:
				*out = append(*out, "- "+p+": "+compact(av))
			default:
				jsonDiff(av, bv, p, out)
			}
		}
		return
	}
	al, aok := a.([]any)
	bl, bok := b.([]any)
	if aok && bok {
		if allStrings(al) && allStrings(bl) {
			as, bs := setOf(al), setOf(bl)
			for _, s := range slices.Sorted(maps.Keys(as)) {
				if !bs[s] {
					*out = append(*out, "- "+path+": "+compact(s))
				}
			}
			for _, s := range slices.Sorted(maps.Keys(bs)) {
				if !as[s] {
					*out = append(*out, "+ "+path+": "+compact(s))
				}
			}
			return
		}
		if sidsOf(al) != nil && sidsOf(bl) != nil {
			as, bs := sidsOf(al), sidsOf(bl)
			keys := map[string]bool{}
			for k := range as {
				keys[k] = true
			}
			for k := range bs {
				keys[k] = true
			}
			for _, k := range slices.Sorted(maps.Keys(keys)) {
				p := path + "[" + k + "]"
				switch {
				case as[k] == nil:
					*out = append(*out, "+ "+p+": "+compact(bs[k]))
				case bs[k] == nil:
					*out = append(*out, "- "+p+": "+compact(as[k]))
				default:
					jsonDiff(as[k], bs[k], p, out)
				}
			}
			return
		}
		for i := 0; i < len(al) || i < len(bl); i++ {
			p := fmt.Sprintf("%s[%d]", path, i)
			switch {
			case i >= len(al):
				*out = append(*out, "+ "+p+": "+compact(bl[i]))
			case i >= len(bl):
				*out = append(*out, "- "+p+": "+compact(al[i]))
			default:
				jsonDiff(al[i], bl[i], p, out)
			}
		}
		return
	}
	if path == "" {
		path = "value"
	}
	*out = append(*out, "- "+path+": "+compact(a), "+ "+path+": "+compact(b))
}

func joinKey(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func allStrings(l []any) bool {
	for _, x := range l {
		if _, ok := x.(string); !ok {
			return false
		}
	}
	return true
}

func setOf(l []any) map[string]bool {
	m := map[string]bool{}
	for _, x := range l {
		m[x.(string)] = true
	}
	return m
}

// sidsOf indexes a list of statements by Sid ("#N" for statements without one); nil when
// the list is not a list of objects.
func sidsOf(l []any) map[string]any {
	m := map[string]any{}
	for i, x := range l {
		o, ok := x.(map[string]any)
		if !ok {
			return nil
		}
		sid, _ := o["Sid"].(string)
		if sid == "" {
			sid = fmt.Sprintf("#%d", i)
		}
		m[sid] = o
	}
	return m
}

// String renders a change on one line, for logs.
func (c Change) String() string {
	return strings.TrimSpace(fmt.Sprintf("%s %s %s (%s %s) %s", c.Action, c.Type, c.ID, c.Account, c.AccountID, c.Reason))
}
