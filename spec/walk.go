package spec

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// document walks one document whose root node is root and adds it to b,
// which decodes and validates it once the file is read.
func (l *loader) document(file string, root *yaml.Node, b *batch) {
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
	t := reflect.TypeFor[hostDoc]()
	if kind == KindBalancer {
		t = reflect.TypeFor[balancerDoc]()
	}
	d.buf = &b.json
	lo := len(b.json)
	d.walk(root, t, "")
	b.docs = append(b.docs, batchDoc{d: d, kind: kind, lo: lo, hi: len(b.json)})
	d.buf = nil
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

// walk checks the node n against the Go type t at path and appends its JSON
// value to *d.buf. It reports every problem it finds with its line. A rejected
// value is written as the zero JSON value of t, so list indexes stay aligned
// with the node tree; ok is false then, and path is marked bad. Members of
// objects and lists are separated by ",\n" (see decode.go).
func (d *docCtx) walk(n *yaml.Node, t reflect.Type, path string) (ok bool) {
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return d.walkMapping(n, t, path)
	case reflect.Slice:
		return d.walkList(n, t, path)
	case reflect.String:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
			return d.typeError(n, t, path)
		}
		*d.buf = appendJSONString(*d.buf, n.Value)
		return true
	case reflect.Int64:
		var v int64
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&v) != nil {
			return d.typeError(n, t, path)
		}
		*d.buf = strconv.AppendInt(*d.buf, v, 10)
		return true
	}
	panic(fmt.Sprintf("spec: document field of unsupported type %s", t))
}

// walkMapping walks a mapping against a struct (known fields only) or a map
// (any key) and writes it as a JSON object without the members it rejected.
func (d *docCtx) walkMapping(n *yaml.Node, t reflect.Type, path string) bool {
	if n.Kind != yaml.MappingNode {
		return d.typeError(n, t, path)
	}
	var fields map[string]reflect.Type
	if t.Kind() == reflect.Struct {
		fields = d.l.fields.of(t)
	}
	*d.buf = append(*d.buf, '{')
	first := true
	seen := keySet{keys: n.Content}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		name, ok := d.key(k, path, &seen, i)
		if !ok {
			continue
		}
		child := join(path, name)
		ft, ok := d.fieldType(k.Line, t, fields, name, child)
		if ok && d.member(!first, name, k.Line, n.Content[i+1], ft, child) {
			first = false
		}
	}
	*d.buf = append(*d.buf, '}')
	return true
}

// fieldType is the type of the member name (at path child, keyed at line) of
// a value of type t: any key of a map, or one of the struct's fields.
func (d *docCtx) fieldType(line int, t reflect.Type, fields map[string]reflect.Type, name, child string) (reflect.Type, bool) {
	if fields == nil {
		return t.Elem(), true
	}
	if f, known := fields[name]; known {
		return f, true
	}
	d.errorAt(line, "unknown field %q", child)
	return nil, false
}

// member writes one `"name":value` member of an object, after a separator
// when sep is set, and takes it back when the value is rejected.
func (d *docCtx) member(sep bool, name string, line int, v *yaml.Node, t reflect.Type, child string) bool {
	d.lines[child] = line
	mark := len(*d.buf)
	if sep {
		*d.buf = append(*d.buf, ",\n"...)
	}
	*d.buf = appendJSONString(*d.buf, name)
	*d.buf = append(*d.buf, ':')
	if d.walk(v, t, child) {
		return true
	}
	*d.buf = (*d.buf)[:mark]
	return false
}

// walkList walks a sequence against a slice type and writes a JSON list; a
// rejected item is written as its zero value.
func (d *docCtx) walkList(n *yaml.Node, t reflect.Type, path string) bool {
	if n.Kind != yaml.SequenceNode {
		return d.typeError(n, t, path)
	}
	*d.buf = append(*d.buf, '[')
	for i, item := range n.Content {
		if i > 0 {
			*d.buf = append(*d.buf, ",\n"...)
		}
		child := path + "[" + strconv.Itoa(i) + "]"
		d.lines[child] = item.Line
		d.walk(item, t.Elem(), child)
	}
	*d.buf = append(*d.buf, ']')
	return true
}

// key returns the name of the mapping key k, reporting complex and duplicate
// keys (YAML forbids the latter; JSON decoders silently keep one). A scalar
// key is taken as written, as every YAML-to-JSON conversion does: `1: 3`
// under weights names the guest "1".
func (d *docCtx) key(k *yaml.Node, path string, seen *keySet, i int) (string, bool) {
	if k.Kind != yaml.ScalarNode {
		d.errorAt(k.Line, "%s: field names must be plain values, not %s", orDocument(path), describe(k))
		return "", false
	}
	if first, dup := seen.first(i); dup {
		d.errorAt(k.Line, "duplicate field %q (first set at line %d)", join(path, k.Value), first)
		return "", false
	}
	return k.Value, true
}

// keySet finds the earlier occurrence of a mapping's keys. Most mappings
// have a handful of keys, which it compares directly instead of building a
// map for each (50,000 small maps for 10,000 balancers); a mapping with
// many keys (a long weights list) gets an index.
type keySet struct {
	keys  []*yaml.Node // the mapping's Content: key, value, key, value…
	index map[string]int
}

// first returns the line of the first scalar key before position i equal to
// the key at i, if any.
func (s *keySet) first(i int) (int, bool) {
	k := s.keys[i]
	if len(s.keys) <= 32 {
		for j := 0; j < i; j += 2 {
			if p := s.keys[j]; p.Kind == yaml.ScalarNode && p.Value == k.Value {
				return p.Line, true
			}
		}
		return 0, false
	}
	if s.index == nil {
		s.index = map[string]int{}
	}
	if line, ok := s.index[k.Value]; ok {
		return line, true
	}
	s.index[k.Value] = k.Line
	return 0, false
}

// orDocument names path in a message, the root being "document".
func orDocument(path string) string {
	if path == "" {
		return "document"
	}
	return path
}

// typeError reports that n does not have the type t wants, and writes the
// zero JSON value of t.
func (d *docCtx) typeError(n *yaml.Node, t reflect.Type, path string) bool {
	var want, zero string
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		want, zero = "a mapping", "{}"
	case reflect.Slice:
		want, zero = "a list", "[]"
	case reflect.String:
		want, zero = "a string", `""`
	default:
		want, zero = "an integer", "0"
	}
	d.bad[path] = true
	d.errorAt(n.Line, "%s: must be %s, not %s", orDocument(path), want, describe(n))
	*d.buf = append(*d.buf, zero...)
	return false
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
