// Package library holds the playbooks that ship inside the firstlook
// binary: a first look at a Linux host and at the usual suspects of a page
// (a full disk, memory pressure, CPU saturation, slow disks, the network, a
// failed systemd unit, nginx 5xx, misbehaving containers). Each is a YAML
// file embedded at build time, named after the playbook it holds, and
// loaded with the same loader as any SRE-written playbook.
//
// Every library playbook only reads: no restarts, no writes, no installs.
// A tool that is missing on the host makes its step say "<tool>: not
// installed" and succeed, so that a host without lsof or docker gets the
// rest of the evidence rather than a stack of errors. Outputs are bounded
// (head, tail, timeout) so that one step cannot hang or flood the bundle.
//
// What each playbook looks at, its params and what it needs on the host
// are in docs/library.md.
package library

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/firstlook/firstlook/playbooks"
)

//go:embed *.yaml
var files embed.FS

// FS returns the library's playbook files, one <name>.yaml per playbook,
// at the root of the file system.
func FS() fs.FS { return files }

// Names returns the names of the library's playbooks, sorted.
func Names() []string {
	entries, _ := fs.ReadDir(files, ".") // embedded: cannot fail
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), path.Ext(e.Name())))
	}
	slices.Sort(names)
	return names
}

// Load loads the named library playbooks, or all of them when no name is
// given. The playbooks' File is "<name>.yaml". An unknown name is an
// error that lists the known ones.
func Load(names ...string) (*playbooks.Set, error) {
	set, err := load(names...)
	if err != nil {
		return nil, err
	}
	// Evidence names the file a playbook came from: make it plain that
	// this one shipped with firstlook, not a site file of the same name.
	for _, p := range set.All() {
		p.File = "library/" + p.File
	}
	return set, nil
}

func load(names ...string) (*playbooks.Set, error) {
	if len(names) == 0 {
		return playbooks.LoadFS(files, ".")
	}
	known := Names()
	sub := make(selection, len(names))
	for _, n := range names {
		if !slices.Contains(known, n) {
			return nil, fmt.Errorf("load library playbooks: no playbook %q in the library; it has %s", n, strings.Join(known, ", "))
		}
		sub[n+".yaml"] = true
	}
	return playbooks.LoadFS(subFS{files, sub}, ".")
}

// selection is a set of file names.
type selection map[string]bool

// subFS shows only the selected files of the library's root.
type subFS struct {
	fs.ReadDirFS
	keep selection
}

func (s subFS) Open(name string) (fs.File, error) {
	if name != "." && !s.keep[name] {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return s.ReadDirFS.Open(name)
}

func (s subFS) ReadDir(name string) ([]fs.DirEntry, error) {
	entries, err := s.ReadDirFS.ReadDir(name)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(entries, func(e fs.DirEntry) bool { return !s.keep[e.Name()] }), nil
}
