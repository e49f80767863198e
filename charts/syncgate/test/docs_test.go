package test

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// schemaNode is the part of a JSON schema the walk below needs.
type schemaNode struct {
	Properties map[string]*schemaNode `json:"properties"`
}

// TestValuesSchemaAndREADMEAgree: every key the schema describes has a
// default in values.yaml and a row in README.md, and (through helm lint,
// whose schema forbids unknown keys) every key in values.yaml is in the
// schema. A new value cannot land undocumented.
func TestValuesSchemaAndREADMEAgree(t *testing.T) {
	t.Parallel()
	var schema schemaNode
	if err := json.Unmarshal(readFile(t, chartDir+"/values.schema.json"), &schema); err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(readFile(t, chartDir+"/values.yaml"), &values); err != nil {
		t.Fatal(err)
	}
	readme := string(readFile(t, chartDir+"/README.md"))

	var walk func(prefix string, s *schemaNode, v map[string]any)
	walk = func(prefix string, s *schemaNode, v map[string]any) {
		for _, key := range slices.Sorted(maps.Keys(s.Properties)) {
			path := prefix + key
			if path == "global" {
				continue
			}
			val, ok := v[key]
			if !ok {
				t.Errorf("values.yaml has no default for %s", path)
			}
			child := s.Properties[key]
			if len(child.Properties) > 0 {
				m, _ := val.(map[string]any)
				walk(path+".", child, m)
				continue
			}
			if !strings.Contains(readme, "`"+path+"`") {
				t.Errorf("README.md has no row for `%s`", path)
			}
		}
	}
	walk("", &schema, values)
}
