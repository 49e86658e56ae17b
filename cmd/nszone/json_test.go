package main

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/nszone/nszone/check"
	"github.com/nszone/nszone/zones"
)

// The JSON of status, plan and check -o json, as the README documents it.
// A field may be added (here, in the README, and in the struct); none may be
// renamed or removed: scripts read them.
var jsonFields = map[string][]string{
	"status": {
		"zones[].name", "zones[].state", "zones[].netns", "zones[].allow", "zones[].dns", "zones[].dns_openings",
		"zones[].addresses", "zones[].host_interface", "zones[].uplink", "zones[].processes[].pid",
		"zones[].processes[].command", "zones[].missing", "zones[].in_file", "zones[].users", "zones[].groups", "zones[].no_new_privs", "firewall",
		"zones[].notes", "notes", "zones[].confine", "zones[].published", "zones[].via", "zones[].counters",
	},
	"plan": {
		"changed", "zones[].name", "zones[].action", "zones[].netns", "zones[].host_interface", "zones[].addresses",
		"zones[].allow", "zones[].dns", "zones[].dns_openings", "zones[].changes", "firewall[].table",
		"firewall[].write", "firewall[].remove", "firewall[].jumps", "sysctls[].key", "sysctls[].from",
		"sysctls[].to", "notes", "zones[].published", "zones[].via",
	},
	"check": {
		"ok", "zones[].name", "zones[].results[].class", "zones[].results[].target", "zones[].results[].proto",
		"zones[].results[].expected", "zones[].results[].observed", "zones[].results[].ok", "zones[].results[].note", "notes",
	},
}

// jsonPaths lists the JSON field paths of t: "a", "b[].c".
func jsonPaths(t reflect.Type, prefix string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		ft, suffix := f.Type, ""
		if ft.Kind() == reflect.Slice {
			ft, suffix = ft.Elem(), "[]"
		}
		if ft.Kind() == reflect.Struct {
			out = append(out, jsonPaths(ft, prefix+name+suffix+".")...)
		} else {
			out = append(out, prefix+name)
		}
	}
	return out
}

// TestEcosystemJSONFields holds -o json to its documented field names.
func TestEcosystemJSONFields(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(readme), "## JSON output")
	section, _, _ = strings.Cut(section, "\n## ")
	for cmd, typ := range map[string]reflect.Type{
		"status": reflect.TypeFor[zones.Status](),
		"plan":   reflect.TypeFor[zones.PlanResult](),
		"check":  reflect.TypeFor[check.Report](),
	} {
		got, want := jsonPaths(typ, ""), jsonFields[cmd]
		for _, p := range want {
			if !slices.Contains(got, p) {
				t.Errorf("%s -o json: field %s is gone (documented fields must stay)", cmd, p)
			}
		}
		for _, p := range got {
			if !slices.Contains(want, p) {
				t.Errorf("%s -o json: field %s is new: add it to jsonFields and to the README's \"JSON output\"", cmd, p)
			}
			leaf := p[strings.LastIndex(p, ".")+1:]
			if !strings.Contains(section, "`"+strings.TrimSuffix(leaf, "[]")+"`") {
				t.Errorf("%s -o json: field %s is not in the README's \"JSON output\" section", cmd, p)
			}
		}
	}
}
