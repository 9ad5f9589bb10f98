package config

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
)

// durationPattern is what time.ParseDuration accepts, roughly: editors use it for hints,
// Load is the authority.
const durationPattern = `^-?([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$|^0$`

// JSONSchema returns a JSON Schema (draft 2020-12) of the configuration file, derived from
// the Go model, for editors' YAML completion. docs/config.schema.json is this output; a test
// keeps the two identical.
func JSONSchema() ([]byte, error) {
	root := schemaFor(reflect.TypeOf(Config{}))
	root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	root["$id"] = "https://github.com/xacctd/xacctd/docs/config.schema.json"
	root["title"] = "xacctd configuration"
	root["patternProperties"] = map[string]any{"^x-": map[string]any{"description": "Extension keys, ignored by xacctd: a place for YAML anchors."}}
	b, err := json.MarshalIndent(root, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func schemaFor(t reflect.Type) map[string]any {
	if t == durationType {
		return map[string]any{"type": "string", "pattern": durationPattern}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return schemaFor(t.Elem())
	case reflect.Struct:
		props := map[string]any{}
		var required []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name := yamlName(f)
			if name == "" || f.Tag.Get("secret") == "true" {
				continue
			}
			s := schemaFor(f.Type)
			if doc := f.Tag.Get("doc"); doc != "" {
				s["description"] = doc
			}
			if enum, ok := f.Tag.Lookup("enum"); ok {
				values := strings.Split(enum, "|")
				if f.Type.Kind() == reflect.Slice {
					s["items"] = map[string]any{"type": "string", "enum": values}
				} else {
					s["enum"] = values
				}
			}
			if def, ok := f.Tag.Lookup("default"); ok {
				s["default"] = defaultJSON(f.Type, def)
			}
			if f.Tag.Get("required") == "true" {
				required = append(required, name)
			}
			props[name] = s
		}
		out := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
		if len(required) > 0 {
			out["required"] = required
		}
		return out
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schemaFor(t.Elem())}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": schemaFor(t.Elem())}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int:
		return map[string]any{"type": "integer"}
	}
	panic("config: no schema for " + t.String())
}

func defaultJSON(t reflect.Type, def string) any {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == durationType {
		return def
	}
	switch t.Kind() {
	case reflect.Bool:
		b, _ := strconv.ParseBool(def)
		return b
	case reflect.Int:
		i, _ := strconv.Atoi(def)
		return i
	}
	return def
}
