package playbooks

// KeySets returns the keys the loader accepts at each level of a playbook,
// by the name of the JSON Schema object that describes that level, so that
// the black-box tests can check the schema against the loader.
func KeySets() map[string][]string {
	return map[string][]string{
		"playbook":  keyNames(playbookKeys),
		"match":     keyNames(matchKeys),
		"targets":   keyNames(targetKeys),
		"step":      keyNames(stepKeys),
		"condition": keyNames(conditionKeys),
		"finding":   keyNames(findingKeys),
	}
}
