package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v3"
	sigsyaml "sigs.k8s.io/yaml"
)

// Decoding a document happens in two passes over one parse.
//
// yaml.v3 first parses the file into node trees, one per `---` document; the
// nodes carry the line of every key and value. A walk of each tree against the
// document struct (driven by its json tags) reports every unknown field,
// duplicate key, alias and wrongly typed value with its line, and builds a
// plain JSON value from the parts that are well formed. sigs.k8s.io/yaml then
// decodes that JSON strictly into the struct.
//
// Feeding sigs.k8s.io/yaml the walked value rather than the raw text keeps one
// YAML dialect for everything: YAML 1.2 as yaml.v3, editors and the JSON Schema
// see it (`on` is the string "on", not true), where sigs.k8s.io/yaml on raw text
// would read YAML 1.1 through yaml.v2, match field names case-insensitively and
// turn numbers into strings, accepting documents the schema rejects. Its strict
// decode remains as the final guard that every field lands in the struct.

// yamlLineRE finds the line in a yaml.v3 syntax error.
var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseFile splits data into documents and decodes each.
func (l *loader) parseFile(file string, data []byte) {
	if line, r, ok := badRune(data); !ok {
		l.errorf(file, line, "invalid character %U: spec files must be printable UTF-8 text", r)
		return
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	next := 1 // first line after the last document decoded, for errors without a line
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			// yaml.v3 cannot resume after a syntax error; the rest of the
			// file is not read.
			line, msg := syntaxErrorPos(err, next, data)
			l.errorf(file, line, "malformed YAML: %s", msg)
			return
		}
		if len(doc.Content) == 0 {
			continue
		}
		l.document(file, doc.Content[0])
		next = lastLine(&doc) + 1
	}
}

// parserProblems are yaml.v3's parser (as opposed to scanner) errors. It
// reports their line zero-based (the line where the enclosing collection
// starts, or of the unexpected token), where scanner errors are one-based.
var parserProblems = map[string]bool{
	"did not find expected <stream-start>":   true,
	"did not find expected <document start>": true,
	"did not find expected node content":     true,
	"did not find expected '-' indicator":    true,
	"did not find expected key":              true,
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"found undefined tag handle":             true,
	"found duplicate %YAML directive":        true,
	"found duplicate %TAG directive":         true,
	"found incompatible YAML document":       true,
}

// syntaxErrorPos extracts the line and message of a yaml.v3 syntax error in
// data, using line def when the error has none.
func syntaxErrorPos(err error, def int, data []byte) (int, string) {
	// A problem found at the end of the input is on the last line.
	last := countLines(data)
	line, msg := def, strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
		if parserProblems[msg] {
			line++
		}
	}
	return max(1, min(line, last)), msg
}

// countLines counts the lines of data as YAML does: "\r\n", "\r", "\n",
// NEL, LS and PS each end one, and an unterminated last line counts too.
func countLines(data []byte) int {
	n := 0
	last := rune('\n')
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		i += size
		switch r {
		case '\n':
			if last != '\r' {
				n++
			}
		case '\r', 0x85, 0x2028, 0x2029:
			n++
		}
		last = r
	}
	if len(data) > 0 && last != '\n' && last != '\r' && last != 0x85 && last != 0x2028 && last != 0x2029 {
		n++
	}
	return n
}

// badRune returns the line and value of the first byte sequence that is not
// printable UTF-8 as YAML defines it, which yaml.v3 would reject without a line.
func badRune(data []byte) (line int, r rune, ok bool) {
	line = 1
	prev := rune(0)
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			return line, rune(data[i]), false
		case r == '\n':
			if prev != '\r' {
				line++
			}
		case r == '\r' || r == 0x85 || r == 0x2028 || r == 0x2029:
			line++
		case r == '\t':
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0 && r != 0x85),
			r >= 0xd800 && r <= 0xdfff, r == 0xfffe, r == 0xffff:
			return line, r, false
		}
		prev = r
		i += size
	}
	return line, 0, true
}

// lastLine is the largest line in the tree under n, not following aliases.
func lastLine(n *yaml.Node) int {
	max := 0
	stack := []*yaml.Node{n}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if n.Line > max {
			max = n.Line
		}
		stack = append(stack, n.Content...)
	}
	return max
}

// findAlias returns the first alias node under n, in document order.
func findAlias(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode {
		return n
	}
	for _, c := range n.Content {
		if a := findAlias(c); a != nil {
			return a
		}
	}
	return nil
}

// document decodes and validates one document whose root node is root.
func (l *loader) document(file string, root *yaml.Node) {
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return // an empty document, as between two `---` lines
	}
	// Aliases are refused outright: expanding them is how a few hundred bytes
	// become gigabytes ("billion laughs"), and specs have no need for them.
	// Nothing below ever follows an alias, so this check costs one pass.
	if a := findAlias(root); a != nil {
		l.errorf(file, a.Line, "YAML aliases are not supported (*%s): write the value out", a.Value)
		return
	}
	d := &docCtx{l: l, file: file, line: root.Line, lines: map[string]int{"": root.Line}, bad: map[string]bool{}}
	if root.Kind != yaml.MappingNode {
		l.errorf(file, root.Line, "a document must be a mapping with apiVersion, kind, metadata and spec, not %s", describe(root))
		return
	}
	kind, ok := d.kind(root)
	if !ok {
		return
	}
	switch kind {
	case KindHost:
		var doc hostDoc
		if d.decode(root, &doc) {
			d.host(&doc)
		}
	case KindBalancer:
		var doc balancerDoc
		if d.decode(root, &doc) {
			d.balancer(&doc)
		}
	}
}

// docCtx is the state of one document while it is decoded and validated.
type docCtx struct {
	l     *loader
	file  string
	line  int             // line of the document's first key
	lines map[string]int  // field path ("spec.guests[1].name") → line of its key or list item
	bad   map[string]bool // paths already reported; checks that depend on them are skipped
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

// decode walks root against the document struct out points to, then decodes
// the well-formed parts into it with sigs.k8s.io/yaml in strict mode. It
// reports false when the document cannot be validated further.
func (d *docCtx) decode(root *yaml.Node, out any) bool {
	value, _ := d.walk(root, reflect.TypeOf(out).Elem(), "")
	js, err := json.Marshal(value)
	if err == nil {
		err = sigsyaml.UnmarshalStrict(js, out)
	}
	if err != nil {
		// The walk only lets through what the struct accepts, so this is
		// a bug rather than bad input; still report it where it belongs.
		d.errorAt(d.line, "cannot decode document: %v", err)
		return false
	}
	return true
}

// walk checks the node n against the Go type t at path and returns its JSON
// value. It reports every problem it finds with its line. A rejected value is
// returned as the zero JSON value of t, so list indexes stay aligned with the
// node tree; ok is false then, and path is marked bad.
func (d *docCtx) walk(n *yaml.Node, t reflect.Type, path string) (value any, ok bool) {
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return d.typeError(n, t, path)
		}
		fields := d.l.fields.of(t)
		out := map[string]any{}
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			name, ok := d.key(k, path, seen)
			if !ok {
				continue
			}
			child := join(path, name)
			ft, known := fields[name]
			if !known {
				d.errorAt(k.Line, "unknown field %q", child)
				continue
			}
			d.lines[child] = k.Line
			if val, ok := d.walk(v, ft, child); ok {
				out[name] = val
			}
		}
		return out, true
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return d.typeError(n, t, path)
		}
		out := map[string]any{}
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			name, ok := d.key(k, path, seen)
			if !ok {
				continue
			}
			child := join(path, name)
			d.lines[child] = k.Line
			if val, ok := d.walk(v, t.Elem(), child); ok {
				out[name] = val
			}
		}
		return out, true
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return d.typeError(n, t, path)
		}
		out := make([]any, 0, len(n.Content))
		for i, item := range n.Content {
			child := path + "[" + strconv.Itoa(i) + "]"
			d.lines[child] = item.Line
			val, _ := d.walk(item, t.Elem(), child)
			out = append(out, val)
		}
		return out, true
	case reflect.String:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
			return d.typeError(n, t, path)
		}
		return n.Value, true
	case reflect.Int64:
		var v int64
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&v) != nil {
			return d.typeError(n, t, path)
		}
		return v, true
	}
	panic(fmt.Sprintf("spec: document field of unsupported type %s", t))
}

// key returns the name of the mapping key k, reporting complex and duplicate
// keys (YAML forbids the latter; JSON decoders silently keep one). A scalar
// key is taken as written, as every YAML-to-JSON conversion does: `1: 3`
// under weights names the guest "1".
func (d *docCtx) key(k *yaml.Node, path string, seen map[string]int) (string, bool) {
	if k.Kind != yaml.ScalarNode {
		d.errorAt(k.Line, "%s: field names must be plain values, not %s", orDocument(path), describe(k))
		return "", false
	}
	if first, dup := seen[k.Value]; dup {
		d.errorAt(k.Line, "duplicate field %q (first set at line %d)", join(path, k.Value), first)
		return "", false
	}
	seen[k.Value] = k.Line
	return k.Value, true
}

// orDocument names path in a message, the root being "document".
func orDocument(path string) string {
	if path == "" {
		return "document"
	}
	return path
}

// typeError reports that n does not have the type t wants, and returns the
// zero JSON value of t.
func (d *docCtx) typeError(n *yaml.Node, t reflect.Type, path string) (any, bool) {
	var want string
	var zero any
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		want, zero = "a mapping", map[string]any{}
	case reflect.Slice:
		want, zero = "a list", []any{}
	case reflect.String:
		want, zero = "a string", ""
	default:
		want, zero = "an integer", 0
	}
	d.bad[path] = true
	d.errorAt(n.Line, "%s: must be %s, not %s", orDocument(path), want, describe(n))
	return zero, false
}

// describe names a node's type and, for a scalar, its value, for messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	v := n.Value
	if len(v) > 40 {
		v = v[:37] + "..."
	}
	switch n.ShortTag() {
	case "!!str":
		return fmt.Sprintf("string %q", v)
	case "!!int":
		return "integer " + v
	case "!!float":
		return "number " + v
	case "!!bool":
		return "boolean " + v
	case "!!null":
		return "null"
	}
	return fmt.Sprintf("%s %q", n.ShortTag(), v)
}

// fieldCache maps a document struct type to its fields by json name. It lives
// in the loader, not in a package variable, so loads share no mutable state.
type fieldCache map[reflect.Type]map[string]reflect.Type

func (c *fieldCache) of(t reflect.Type) map[string]reflect.Type {
	if f, ok := (*c)[t]; ok {
		return f
	}
	if *c == nil {
		*c = fieldCache{}
	}
	f := map[string]reflect.Type{}
	for i := range t.NumField() {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		f[name] = sf.Type
	}
	(*c)[t] = f
	return f
}
