package config

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"

	"gopkg.in/yaml.v3"
)

// YAML renders the effective configuration (defaults filled in) as YAML that Load reads back
// to an equal Config. It holds no secrets: the file never contains any, only references.
func (c *Config) YAML() ([]byte, error) {
	n := encodeValue(reflect.ValueOf(c).Elem())
	return yaml.Marshal(n)
}

func encodeValue(v reflect.Value) *yaml.Node {
	if v.Type() == durationType {
		return scalar(fmt.Sprint(v.Interface()), "!!str")
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return nil
		}
		return encodeValue(v.Elem())
	case reflect.Struct:
		m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name := yamlName(f)
			if name == "" || f.Tag.Get("secret") == "true" {
				continue
			}
			child := encodeValue(v.Field(i))
			if child == nil {
				continue
			}
			m.Content = append(m.Content, scalar(name, "!!str"), child)
		}
		return m
	case reflect.Map:
		if v.IsNil() {
			return nil
		}
		m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		keys := make([]string, 0, v.Len())
		for _, k := range v.MapKeys() {
			keys = append(keys, k.String())
		}
		sort.Strings(keys)
		for _, k := range keys {
			child := encodeValue(v.MapIndex(reflect.ValueOf(k)))
			if child == nil {
				child = scalar("", "!!null")
			}
			m.Content = append(m.Content, scalar(k, "!!str"), child)
		}
		return m
	case reflect.Slice:
		if v.IsNil() {
			return nil
		}
		s := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle}
		for i := 0; i < v.Len(); i++ {
			child := encodeValue(v.Index(i))
			if child == nil {
				child = scalar("", "!!null")
			}
			if child.Kind != yaml.ScalarNode {
				s.Style = 0
			}
			s.Content = append(s.Content, child)
		}
		return s
	case reflect.String:
		return scalar(v.String(), "!!str")
	case reflect.Bool:
		return scalar(strconv.FormatBool(v.Bool()), "!!bool")
	case reflect.Int:
		return scalar(strconv.FormatInt(v.Int(), 10), "!!int")
	}
	panic("config: no encoder for " + v.Type().String())
}

func scalar(value, tag string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: value}
}
