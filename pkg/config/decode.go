package config

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// maxNodes bounds how many nodes one file may expand to through aliases, so that a small
// file with nested aliases ("billion laughs") cannot exhaust memory or time.
const maxNodes = 2_000_000

var durationType = reflect.TypeOf(time.Duration(0))

// decoder fills Go values from a YAML node tree strictly: every key must be known, every
// value of the right kind. It records the position of every key it sees and goes on after a
// problem so that one run reports all of them.
type decoder struct {
	ps      *problems
	visited int
	tooBig  bool
}

// parseYAML reads exactly one YAML document. Syntax errors become problems.
func parseYAML(file string, data []byte, ps *problems) *yaml.Node {
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			ps.addAt(1, 1, "", "the file is empty: it needs at least version: 1 and accounts")
			return nil
		}
		line, msg := syntaxError(err)
		ps.addAt(line, 1, "", "YAML syntax: %s", msg)
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		ps.addAt(extra.Line, extra.Column, "", "the file holds more than one YAML document (---): put the whole configuration in one")
	} else if !errors.Is(err, io.EOF) {
		line, msg := syntaxError(err)
		ps.addAt(line, 1, "", "YAML syntax: %s", msg)
	}
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		return root.Content[0]
	}
	ps.addAt(1, 1, "", "the file is empty: it needs at least version: 1 and accounts")
	return nil
}

var yamlLineRe = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func syntaxError(err error) (int, string) {
	msg := err.Error()
	if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n, m[2]
	}
	return 1, strings.TrimPrefix(msg, "yaml: ")
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "empty"
		}
		return fmt.Sprintf("the value %q", truncate(n.Value))
	}
	return "something else"
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}

// resolve follows aliases and counts nodes against the budget; nil means stop.
func (d *decoder) resolve(n *yaml.Node, path string) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	d.visited++
	if d.visited > maxNodes {
		if !d.tooBig {
			d.tooBig = true
			d.ps.addf(path, "the file expands to more than %d values through aliases; simplify the anchors", maxNodes)
		}
		return nil
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if n = d.resolve(n, path); n == nil || isNull(n) {
		return
	}
	if v.Type() == durationType {
		d.decodeDuration(n, v, path)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		nv := reflect.New(v.Type().Elem())
		applyDefaults(nv.Elem())
		d.decode(n, nv.Elem(), path)
		v.Set(nv)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Map:
		d.decodeMap(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.ps.addf(path, "must be a list, not %s", kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			ip := fmt.Sprintf("%s[%d]", path, i)
			d.ps.pos[ip] = [2]int{item.Line, item.Column}
			d.decode(item, s.Index(i), ip)
		}
		v.Set(s)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.ps.addf(path, "must be a single value, not %s", kindName(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		b, err := strconv.ParseBool(n.Value)
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || err != nil {
			d.ps.addf(path, "must be true or false, not %s", kindName(n))
			return
		}
		v.SetBool(b)
	case reflect.Int:
		i, err := strconv.Atoi(n.Value)
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || err != nil {
			d.ps.addf(path, "must be a whole number, not %s", kindName(n))
			return
		}
		v.SetInt(int64(i))
	default:
		panic("config: no decoder for " + v.Type().String())
	}
}

func (d *decoder) decodeDuration(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		d.ps.addf(path, "must be a duration such as 30s, 5m or 1h30m, not %s", kindName(n))
		return
	}
	if n.Tag == "!!int" || n.Tag == "!!float" {
		if f, err := strconv.ParseFloat(n.Value, 64); err == nil && f == 0 {
			v.SetInt(0)
			return
		}
		d.ps.addf(path, "%s has no unit: write a duration such as %ss, %sm or %sh", n.Value, n.Value, n.Value, n.Value)
		return
	}
	dur, err := time.ParseDuration(n.Value)
	if err != nil {
		d.ps.addf(path, "%q is not a duration: use a number with a unit (ms, s, m, h), such as 90s or 1h30m; days are written in hours (72h)", truncate(n.Value))
		return
	}
	v.SetInt(int64(dur))
}

type entry struct {
	key, value *yaml.Node
	merged     bool
}

// entries lists a mapping's key/value pairs, expanding merge keys (<<); keys written in the
// mapping itself win over merged ones.
func (d *decoder) entries(n *yaml.Node, path string) []entry {
	var own, merged []entry
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			src := d.resolve(val, path)
			if src == nil {
				continue
			}
			srcs := []*yaml.Node{src}
			if src.Kind == yaml.SequenceNode {
				srcs = nil
				for _, s := range src.Content {
					if s = d.resolve(s, path); s != nil {
						srcs = append(srcs, s)
					}
				}
			}
			for _, s := range srcs {
				if s.Kind != yaml.MappingNode {
					d.ps.addAt(k.Line, k.Column, path, "<< must merge a mapping, not %s", kindName(s))
					continue
				}
				for _, e := range d.entries(s, path) {
					e.merged = true
					merged = append(merged, e)
				}
			}
			continue
		}
		own = append(own, entry{key: k, value: val})
	}
	if len(merged) == 0 {
		return own
	}
	written := map[string]bool{}
	for _, e := range own {
		written[e.key.Value] = true
	}
	out := own
	seen := map[string]bool{}
	for _, e := range merged {
		if !written[e.key.Value] && !seen[e.key.Value] {
			seen[e.key.Value] = true
			out = append(out, e)
		}
	}
	return out
}

// keyOK checks a mapping key and reports duplicates; it returns false when the entry must
// be ignored.
func (d *decoder) keyOK(e entry, path string, first map[string]*yaml.Node) bool {
	if e.key.Kind != yaml.ScalarNode {
		d.ps.addAt(e.key.Line, e.key.Column, path, "keys must be plain names, not %s", kindName(e.key))
		return false
	}
	if prev, dup := first[e.key.Value]; dup && !e.merged {
		d.ps.addAt(e.key.Line, e.key.Column, joinPath(path, e.key.Value), "%q is given twice (first at line %d); keep one", e.key.Value, prev.Line)
		return false
	}
	first[e.key.Value] = e.key
	return true
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.ps.addf(path, "must be a mapping of keys (%s), not %s", strings.Join(infoOf(v.Type()).names, ", "), kindName(n))
		return
	}
	ti := infoOf(v.Type())
	first := map[string]*yaml.Node{}
	for _, e := range d.entries(n, path) {
		if !d.keyOK(e, path, first) {
			continue
		}
		name := e.key.Value
		kp := joinPath(path, name)
		if _, ok := d.ps.pos[kp]; !ok || !e.merged {
			d.ps.pos[kp] = [2]int{e.key.Line, e.key.Column}
		}
		f, ok := ti.byName[name]
		if !ok && path == "" && strings.HasPrefix(name, "x-") {
			continue // extension keys hold anchors for reuse, as in Compose files
		}
		if !ok {
			d.ps.addf(kp, "%s", unknownKeyMessage(name, ti.names))
			continue
		}
		if f.secret {
			if val := d.resolve(e.value, kp); val != nil && !isNull(val) {
				// The value is a secret: it is neither kept nor repeated in the message.
				d.ps.addf(kp, "secrets must not be written in the config file: use %s_env (an environment variable) or %s_file (a file readable only by xacctd) instead", name, name)
			}
			continue
		}
		d.decode(e.value, v.Field(f.index), kp)
	}
}

var secretLikeRe = regexp.MustCompile(`(?i)secret|token|passw|credential|access_key`)

func unknownKeyMessage(name string, allowed []string) string {
	if secretLikeRe.MatchString(name) {
		return fmt.Sprintf("unknown key %q: secrets must not be written in the config file; AWS credentials come from the SDK's chain (environment, profiles, role_arn) and other secrets from *_env or *_file keys", name)
	}
	if s := suggest(name, allowed); s != "" {
		return fmt.Sprintf("unknown key %q; did you mean %q?", name, s)
	}
	return fmt.Sprintf("unknown key %q; allowed keys here: %s", name, strings.Join(allowed, ", "))
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.ps.addf(path, "must be a mapping of names to values, not %s", kindName(n))
		return
	}
	m := reflect.MakeMap(v.Type())
	first := map[string]*yaml.Node{}
	for _, e := range d.entries(n, path) {
		if !d.keyOK(e, path, first) {
			continue
		}
		kp := joinPath(path, e.key.Value)
		d.ps.pos[kp] = [2]int{e.key.Line, e.key.Column}
		val := reflect.New(v.Type().Elem()).Elem()
		d.decode(e.value, val, kp)
		m.SetMapIndex(reflect.ValueOf(e.key.Value), val)
	}
	v.Set(m)
}

func yamlName(f reflect.StructField) string {
	tag := f.Tag.Get("yaml")
	if tag == "-" || !f.IsExported() {
		return ""
	}
	return strings.Split(tag, ",")[0]
}

// applyDefaults sets every field that has a default tag, recursing into nested structs (not
// through pointers, maps or slices: those get their defaults when the decoder creates them).
func applyDefaults(v reflect.Value) {
	if v.Kind() != reflect.Struct {
		return
	}
	for _, f := range infoOf(v.Type()).fields {
		fv := v.Field(f.index)
		if f.hasDef {
			if err := setScalar(fv, f.def); err != nil {
				panic(fmt.Sprintf("config: bad default %q for %s: %v", f.def, f.name, err))
			}
			continue
		}
		if fv.Kind() == reflect.Struct && fv.Type() != durationType {
			applyDefaults(fv)
		}
	}
}

// setScalar sets a scalar (or pointer to scalar) field from its YAML text.
func setScalar(v reflect.Value, s string) error {
	if v.Kind() == reflect.Pointer {
		nv := reflect.New(v.Type().Elem())
		if err := setScalar(nv.Elem(), s); err != nil {
			return err
		}
		v.Set(nv)
		return nil
	}
	if v.Type() == durationType {
		d, err := time.ParseDuration(s)
		v.SetInt(int64(d))
		return err
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		v.SetBool(b)
		return err
	case reflect.Int:
		i, err := strconv.Atoi(s)
		v.SetInt(int64(i))
		return err
	default:
		return fmt.Errorf("no default for kind %s", v.Kind())
	}
	return nil
}

// suggest returns the candidate closest to s when it is close enough to be a typo.
func suggest(s string, candidates []string) string {
	best, bestD := "", 1<<30
	ls := strings.ToLower(s)
	for _, c := range candidates {
		d := levenshtein(ls, strings.ToLower(c))
		if d < bestD || (d == bestD && c < best) {
			best, bestD = c, d
		}
	}
	limit := 2
	if len(s) <= 4 {
		limit = 1
	}
	if len(s) >= 12 {
		limit = 3
	}
	if bestD <= limit {
		return best
	}
	return ""
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
