package spec

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestAppendJSONString checks that the walk writes strings byte for byte as
// encoding/json does, including the escapes that keep sigs.k8s.io/yaml (which
// reads the JSON as YAML) from seeing line breaks inside a value.
func TestAppendJSONString(t *testing.T) {
	tests := []string{
		"", "host-a", `quote " and \ backslash`, "tab\tnew\nline\rcr", "\b\f\x00\x1f\x7f",
		"<html> & friends", "line\u2028sep\u2029para", "naïve ☃ 𝄞", "bad \xff utf-8 \xc3",
		"  spaced  ", "on", "0x50", "#comment", "- item", "key: value",
	}
	for _, s := range tests {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendJSONString(nil, s); string(got) != string(want) {
			t.Errorf("appendJSONString(%q) = %s; want %s", s, got, want)
		}
	}
}

// FuzzAppendJSONString compares appendJSONString with encoding/json on any
// string.
func FuzzAppendJSONString(f *testing.F) {
	f.Add("a\u2028<b>\xff")
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := appendJSONString(nil, s); string(got) != string(want) {
			t.Errorf("appendJSONString(%q) = %s; want %s", s, got, want)
		}
	})
}

// TestDecodeListFallback checks that when a file's list of documents does
// not decode, each document is decoded on its own and only the one at fault
// is reported, at its line.
func TestDecodeListFallback(t *testing.T) {
	l := &loader{}
	b := &batch{}
	var docs []*batchDoc
	for i, js := range []string{
		`{"apiVersion":"weir/v1","kind":"Host","metadata":{"name":"a"}}`,
		`{"apiVersion":"weir/v1","kind":"Host","metadata":{"name":"b"},"extra":1}`,
		`{"apiVersion":"weir/v1","kind":"Host","metadata":{"name":"c"}}`,
	} {
		d := &docCtx{l: l, file: "hosts.yaml", line: 10 * (i + 1)}
		lo := len(b.json)
		b.json = append(b.json, js...)
		b.docs = append(b.docs, batchDoc{d: d, kind: KindHost, lo: lo, hi: len(b.json)})
	}
	for i := range b.docs {
		docs = append(docs, &b.docs[i])
	}
	out, ok := decodeList[hostDoc](b, docs)
	if want := []bool{true, false, true}; len(ok) != 3 || ok[0] != want[0] || ok[1] != want[1] || ok[2] != want[2] {
		t.Fatalf("decodeList ok = %v; want %v", ok, want)
	}
	if out[0].Metadata.Name != "a" || out[2].Metadata.Name != "c" {
		t.Errorf("decodeList names = %q, %q; want a, c", out[0].Metadata.Name, out[2].Metadata.Name)
	}
	if len(l.errs) != 1 || l.errs[0].Pos.Line != 20 || !strings.Contains(l.errs[0].Msg, "extra") {
		t.Errorf("errors = %v; want one at hosts.yaml:20 naming the unknown field", l.errs)
	}
}
