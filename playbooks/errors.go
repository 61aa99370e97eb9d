package playbooks

import "github.com/firstlook/firstlook/playbooks/yamlfile"

// Error is one problem found while loading playbooks, at a position in a
// file: the same Error as the configuration's and the inventory's (see
// package yamlfile), so that every file firstlook reads reports alike.
type Error = yamlfile.Error

// ErrorList is every problem found in a set of playbooks, sorted by file and
// position. Load returns all of them at once, so that one `firstlook
// validate` run shows everything to fix; each prints on its own line.
type ErrorList = yamlfile.List

// suggest returns the candidate closest to s, or "" when none is close
// enough to be a likely typo.
func suggest(s string, candidates []string) string { return yamlfile.Suggest(s, candidates) }

// didYouMean formats a suggestion for s among candidates, or "".
func didYouMean(s string, candidates []string) string { return yamlfile.DidYouMean(s, candidates) }
