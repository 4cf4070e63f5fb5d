package spec

import (
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// docCtx is the state of one document while it is decoded and validated.
type docCtx struct {
	l     *loader
	file  string
	line  int             // line of the document's first key
	lines map[string]int  // field path ("spec.guests[1].name") → line of its key or list item
	bad   map[string]bool // paths already reported; checks that depend on them are skipped
	buf   *[]byte         // where walk writes the document's JSON text
}

// errorAt records a problem at a line of this document.
func (d *docCtx) errorAt(line int, format string, args ...any) {
	d.l.errorf(d.file, line, format, args...)
}

// errorf records a problem about the field at path, at its line (or at its
// nearest present ancestor when it is missing), and marks path bad.
func (d *docCtx) errorf(path, format string, args ...any) {
	d.bad[path] = true
	d.errorAt(d.lineOf(path), format, args...)
}

// lineOf is the line of path, or of its nearest ancestor present in the document.
func (d *docCtx) lineOf(path string) int {
	for {
		if line, ok := d.lines[path]; ok {
			return line
		}
		path = parent(path)
	}
}

// parent returns the path one level up: "spec.guests[1].name" → "spec.guests[1]" → "spec.guests".
func parent(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

// join builds the path of a field of the object at path.
func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

// kind reads the document's kind, reporting a missing or unknown one.
func (d *docCtx) kind(root *yaml.Node) (string, bool) {
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Value != "kind" {
			continue
		}
		if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" {
			d.errorAt(v.Line, "kind: must be a string, not %s", describe(v))
			return "", false
		}
		if v.Value != KindHost && v.Value != KindBalancer {
			d.errorAt(v.Line, "unknown kind %q (want %s or %s)", v.Value, KindHost, KindBalancer)
			// The fields of an unknown kind are unknown too; still say
			// what is wrong with its apiVersion, if anything.
			d.headerOnly(root)
			return "", false
		}
		return v.Value, true
	}
	d.errorAt(root.Line, "missing kind (want %s or %s)", KindHost, KindBalancer)
	d.headerOnly(root)
	return "", false
}

// headerOnly checks the apiVersion of a document whose kind is unusable.
func (d *docCtx) headerOnly(root *yaml.Node) {
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Value == "apiVersion" {
			d.lines["apiVersion"] = k.Line
			if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!str" {
				d.apiVersion(v.Value)
			} else {
				d.errorf("apiVersion", "apiVersion: must be a string, not %s", describe(v))
			}
			return
		}
	}
	d.required("apiVersion")
}
