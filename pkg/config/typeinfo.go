package config

import (
	"reflect"
	"strings"
	"sync"
)

// fieldInfo is what decoding, defaulting and validation need to know about a struct field,
// computed once per type: parsing struct tags on every value dominated load time.
type fieldInfo struct {
	name    string // YAML key
	index   int
	secret  bool
	def     string
	hasDef  bool
	enum    []string
	hasEnum bool
}

type typeInfo struct {
	fields []fieldInfo
	byName map[string]*fieldInfo
	names  []string // allowed keys, in declaration order (secret keys left out)
}

var typeInfos sync.Map // reflect.Type -> *typeInfo

func infoOf(t reflect.Type) *typeInfo {
	if ti, ok := typeInfos.Load(t); ok {
		return ti.(*typeInfo)
	}
	ti := &typeInfo{byName: map[string]*fieldInfo{}}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := yamlName(f)
		if name == "" {
			continue
		}
		fi := fieldInfo{name: name, index: i, secret: f.Tag.Get("secret") == "true"}
		fi.def, fi.hasDef = f.Tag.Lookup("default")
		if e, ok := f.Tag.Lookup("enum"); ok {
			fi.enum, fi.hasEnum = strings.Split(e, "|"), true
		}
		ti.fields = append(ti.fields, fi)
		if !fi.secret {
			ti.names = append(ti.names, name)
		}
	}
	for i := range ti.fields {
		ti.byName[ti.fields[i].name] = &ti.fields[i]
	}
	typeInfos.Store(t, ti)
	return ti
}
