package spec

import (
	"bytes"
	"errors"
	"io"

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
// every member. sigs.k8s.io/yaml reads JSON with its YAML 1.1 parser, which
// spends far more on one long line than on the same text broken into lines,
// and far more on many small calls than on one (BenchmarkLoad measures it).

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
