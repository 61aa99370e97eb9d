package playbooks

import (
	"encoding/json"
	"fmt"
)

// jsonObject is a JSON Schema object under construction.
type jsonObject = map[string]any

// durationPattern is what time.ParseDuration accepts, without signs.
const durationPattern = `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`

func ref(def string) jsonObject { return jsonObject{"$ref": "#/$defs/" + def} }

func stringListSchema() jsonObject {
	item := jsonObject{"type": "string", "minLength": 1}
	return jsonObject{"oneOf": []any{item, jsonObject{"type": "array", "minItems": 1, "items": item}}}
}

// scalarSchema is any YAML scalar but null: the loader reads numbers and
// booleans as the string they are written as.
func scalarSchema() jsonObject { return jsonObject{"type": []any{"string", "number", "boolean"}} }

func stringMapSchema() jsonObject {
	return jsonObject{"type": "object", "additionalProperties": scalarSchema()}
}

func paramsSchema() jsonObject {
	return jsonObject{
		"type":                 "object",
		"propertyNames":        jsonObject{"pattern": paramPattern},
		"additionalProperties": scalarSchema(),
	}
}

func durationSchema() jsonObject {
	return jsonObject{"type": "string", "pattern": durationPattern}
}

func sizeSchema() jsonObject {
	return jsonObject{"oneOf": []any{
		jsonObject{"type": "integer", "minimum": 1, "maximum": MaxSize},
		jsonObject{"type": "string", "pattern": sizePattern},
	}}
}

// objectSchema is the schema of a mapping with keys: no other key is
// allowed, like the loader.
func objectSchema[T any](desc string, keys []key[T], required ...string) jsonObject {
	props := jsonObject{}
	for _, k := range keys {
		s := k.schema()
		s["description"] = k.doc
		props[k.name] = s
	}
	o := jsonObject{
		"type":                 "object",
		"description":          desc,
		"properties":           props,
		"additionalProperties": false,
	}
	if len(required) > 0 {
		req := make([]any, len(required))
		for i, r := range required {
			req[i] = r
		}
		o["required"] = req
	}
	return o
}

func oneRequired(names ...string) []any {
	out := make([]any, len(names))
	for i, n := range names {
		out[i] = jsonObject{"required": []any{n}}
	}
	return out
}

// JSONSchema returns the JSON Schema (draft 2020-12) of a playbook file, for
// `firstlook schema` and for editors (yaml-language-server and the like)
// to complete and check playbooks as they are typed. It is generated from
// the same key tables as the loader, so the two accept the same keys; the
// loader checks more (templates, shell syntax, step references).
func JSONSchema() []byte {
	playbook := objectSchema("A firstlook playbook: what to run on which hosts when an incident matches. Reference: docs/playbooks.md.", playbookKeys, "name", "steps")
	playbook["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	playbook["title"] = "firstlook playbook"

	step := objectSchema("One step: a name and exactly one of run, script or fetch.", stepKeys, "name")
	step["oneOf"] = oneRequired("run", "script", "fetch")

	targetsObject := objectSchema("Which hosts: one of hosts, group or selector, and limits.", targetKeys)
	targetsObject["not"] = jsonObject{"anyOf": []any{
		jsonObject{"required": []any{"hosts", "group"}},
		jsonObject{"required": []any{"hosts", "selector"}},
		jsonObject{"required": []any{"group", "selector"}},
	}}

	condition := objectSchema("A condition over an earlier step: its exit code, whether it failed, or a finding it raised.", conditionKeys, "step")
	condition["oneOf"] = oneRequired("exit_code", "failed", "finding")
	condition["dependentRequired"] = jsonObject{"severity": []any{"finding"}}

	finding := objectSchema("A finding: a pattern over the step's stdout, a severity or thresholds on a named value, and a message.", findingKeys, "name", "pattern", "message")
	finding["oneOf"] = oneRequired("severity", "above", "below")
	finding["dependentRequired"] = jsonObject{"above": []any{"value"}, "below": []any{"value"}}

	playbook["$defs"] = jsonObject{
		"match": objectSchema("Conditions a trigger must meet; every condition given must hold.", matchKeys),
		"targets": jsonObject{
			"description": "\"incident\" (the host(s) the incident names) or a mapping.",
			"oneOf":       []any{jsonObject{"const": "incident"}, targetsObject},
		},
		"step":      step,
		"condition": condition,
		"finding":   finding,
	}
	b, err := json.MarshalIndent(playbook, "", "  ")
	if err != nil {
		panic(fmt.Sprintf("playbooks: marshal JSON Schema: %v", err)) // static data; a test covers it
	}
	return append(b, '\n')
}
