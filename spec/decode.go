package spec

import (
	"bytes"
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
//
// The walk writes the JSON text itself, into one buffer per file, and the
// documents of a file are decoded together: one strict sigs.k8s.io/yaml call
// per kind and file, on a JSON list of its documents, with a newline after
// every member. Decoding document by document through a map[string]any and
// encoding/json cost 1 s and 550 MB of garbage for 10,000 balancers, most of
// it inside sigs.k8s.io/yaml's YAML 1.1 parser, which spends about 25 µs and
// 38 KB on even a small document when it is one long line; a list with line
// breaks costs it a third of that per document.

// yamlLineRE finds the line in a yaml.v3 syntax error.
var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseFile splits data into documents and decodes each.
func (l *loader) parseFile(file string, data []byte) {
	if line, r, ok := badRune(data); !ok {
		l.errorf(file, line, "invalid character %U: spec files must be printable UTF-8 text", r)
		return
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	b := &batch{json: l.json[:0]}
	defer l.decodeBatch(b)
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
		l.document(file, doc.Content[0], b)
		next = lastLine(&doc) + 1
	}
}

// batch collects the walked documents of one file for decodeBatch.
type batch struct {
	json []byte     // the JSON text of every document, back to back
	docs []batchDoc // in document order
}

// batchDoc is one walked document: its context, kind and JSON text.
type batchDoc struct {
	d      *docCtx
	kind   string
	lo, hi int // json[lo:hi]
}

// decodeBatch decodes the documents of b strictly with sigs.k8s.io/yaml, one
// call per kind, and validates each in document order. Should a list fail
// to decode (the walk lets through only what the structs accept, so that
// would be a bug, not bad input), its documents are decoded one by one so
// the error is reported at the document it belongs to.
func (l *loader) decodeBatch(b *batch) {
	if len(b.docs) == 0 {
		return
	}
	var hostDocs []*batchDoc
	var balancerDocs []*batchDoc
	for i := range b.docs {
		if b.docs[i].kind == KindHost {
			hostDocs = append(hostDocs, &b.docs[i])
		} else {
			balancerDocs = append(balancerDocs, &b.docs[i])
		}
	}
	hosts, hostOK := decodeList[hostDoc](b, hostDocs)
	balancers, balancerOK := decodeList[balancerDoc](b, balancerDocs)
	l.json, b.json = b.json[:0], nil // the next file reuses the buffer
	var ih, ib int
	for i := range b.docs {
		bd := &b.docs[i]
		if bd.kind == KindHost {
			if hostOK[ih] {
				bd.d.host(&hosts[ih])
			}
			ih++
		} else {
			if balancerOK[ib] {
				bd.d.balancer(&balancers[ib])
			}
			ib++
		}
	}
}

// decodeList decodes the documents docs of b, all of one kind, into values
// of T with one strict sigs.k8s.io/yaml call, falling back to one call per
// document when that fails. ok[i] reports whether docs[i] decoded.
func decodeList[T any](b *batch, docs []*batchDoc) (out []T, ok []bool) {
	if len(docs) == 0 {
		return nil, nil
	}
	ok = make([]bool, len(docs))
	n := 2
	for _, bd := range docs {
		n += bd.hi - bd.lo + 2
	}
	list := make([]byte, 0, n)
	list = append(list, '[')
	for i, bd := range docs {
		if i > 0 {
			list = append(list, ",\n"...)
		}
		list = append(list, b.json[bd.lo:bd.hi]...)
	}
	list = append(list, ']')
	if err := sigsyaml.UnmarshalStrict(list, &out); err == nil && len(out) == len(docs) {
		for i := range ok {
			ok[i] = true
		}
		return out, ok
	}
	out = make([]T, len(docs))
	for i, bd := range docs {
		if err := sigsyaml.UnmarshalStrict(b.json[bd.lo:bd.hi], &out[i]); err != nil {
			bd.d.errorAt(bd.d.line, "cannot decode document: %v", err)
			continue
		}
		ok[i] = true
	}
	return out, ok
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

// walk checks the node n against the Go type t at path and appends its JSON
// value to *d.buf. It reports every problem it finds with its line. A rejected
// value is written as the zero JSON value of t, so list indexes stay aligned
// with the node tree; ok is false then, and path is marked bad. Members of
// objects and lists are separated by ",\n" (see the top of this file).
func (d *docCtx) walk(n *yaml.Node, t reflect.Type, path string) (ok bool) {
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
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
			k, v := n.Content[i], n.Content[i+1]
			name, ok := d.key(k, path, &seen, i)
			if !ok {
				continue
			}
			child := join(path, name)
			var ft reflect.Type
			if fields == nil {
				ft = t.Elem() // a map: every key is welcome
			} else if f, known := fields[name]; known {
				ft = f
			} else {
				d.errorAt(k.Line, "unknown field %q", child)
				continue
			}
			d.lines[child] = k.Line
			mark := len(*d.buf)
			if !first {
				*d.buf = append(*d.buf, ",\n"...)
			}
			*d.buf = appendJSONString(*d.buf, name)
			*d.buf = append(*d.buf, ':')
			if d.walk(v, ft, child) {
				first = false
			} else {
				*d.buf = (*d.buf)[:mark]
			}
		}
		*d.buf = append(*d.buf, '}')
		return true
	case reflect.Slice:
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

// appendJSONString appends s as a JSON string, byte for byte as
// encoding/json writes it: invalid UTF-8 becomes U+FFFD, and <, >, &, U+2028
// and U+2029 are escaped. The last two matter here: sigs.k8s.io/yaml reads
// the JSON as YAML, where they would be line breaks.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
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
