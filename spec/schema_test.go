package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"testing/fstest"

	"github.com/santhosh-tekuri/jsonschema/v6"
	yaml "go.yaml.in/yaml/v3"
)

// compileSchema compiles ../schemas/weir-v1.schema.json with format
// assertions on (draft-07 leaves them to the validator; editors apply them).
func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "schemas", "weir-v1.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("weir-v1.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("weir-v1.schema.json")
	if err != nil {
		t.Fatalf("compiling the schema: %v", err)
	}
	return sch
}

// yamlDocs parses data as an editor's YAML language server does (YAML 1.2)
// into one JSON value per non-empty document: mapping keys as written,
// aliases expanded, duplicate keys an error.
func yamlDocs(data []byte) ([]any, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []any
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if len(n.Content) == 0 || (n.Content[0].Kind == yaml.ScalarNode && n.Content[0].ShortTag() == "!!null") {
			continue
		}
		v, err := jsonValue(n.Content[0], 0)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
}

func jsonValue(n *yaml.Node, depth int) (any, error) {
	if depth > 100 {
		return nil, fmt.Errorf("line %d: nested too deep", n.Line)
	}
	switch n.Kind {
	case yaml.AliasNode:
		return jsonValue(n.Alias, depth+1)
	case yaml.SequenceNode:
		out := []any{}
		for _, c := range n.Content {
			v, err := jsonValue(c, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.MappingNode:
		out := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("line %d: complex key", k.Line)
			}
			if _, dup := out[k.Value]; dup {
				return nil, fmt.Errorf("line %d: duplicate key %q", k.Line, k.Value)
			}
			v, err := jsonValue(n.Content[i+1], depth+1)
			if err != nil {
				return nil, err
			}
			out[k.Value] = v
		}
		return out, nil
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// schemaVerdict validates the single document in data against sch; nil means valid.
func schemaVerdict(sch *jsonschema.Schema, data []byte) error {
	docs, err := yamlDocs(data)
	if err != nil {
		return fmt.Errorf("yaml: %w", err)
	}
	if len(docs) != 1 {
		return fmt.Errorf("%d documents; corpus files hold exactly one", len(docs))
	}
	return sch.Validate(docs[0])
}

// loaderVerdict judges the single document in data as the loader does on its
// own: every check except that services and weighted guests exist elsewhere
// in the tree, which a lone document cannot satisfy.
func loaderVerdict(data []byte) ErrorList {
	_, err := new(Loader).load(fstest.MapFS{"doc.yaml": {Data: data}}, false)
	if err == nil {
		return nil
	}
	var list ErrorList
	if !errors.As(err, &list) {
		return ErrorList{{Msg: err.Error()}}
	}
	return list
}

var wantLineRE = regexp.MustCompile(`(?m)^# line: (\d+)$`)

// TestSchemaAgreesWithLoader runs the corpus under testdata/schema through
// both the JSON Schema and the loader:
//
//   - good/: both accept;
//   - bad/: both reject, the loader's first error on the `# line:` line;
//   - loader-only/: the loader rejects (at `# line:`) what the schema cannot
//     express, each file saying why; the schema accepts it. If the schema ever
//     learns to reject one, move the file to bad/.
//
// Rules that span documents (unique names across files, services some guest
// runs, distinct frontends) are out of a schema's reach and so out of this
// corpus; TestRule* cover them.
func TestSchemaAgreesWithLoader(t *testing.T) {
	sch := compileSchema(t)
	for _, set := range []string{"good", "bad", "loader-only"} {
		files, err := filepath.Glob(filepath.Join("testdata", "schema", set, "*.yaml"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no corpus in testdata/schema/%s: %v", set, err)
		}
		for _, file := range files {
			t.Run(set+"/"+filepath.Base(file), func(t *testing.T) {
				data, err := os.ReadFile(file)
				if err != nil {
					t.Fatal(err)
				}
				schemaErr := schemaVerdict(sch, data)
				loaderErrs := loaderVerdict(data)
				switch set {
				case "good":
					if schemaErr != nil {
						t.Errorf("schema rejects a good document: %v", schemaErr)
					}
					if loaderErrs != nil {
						t.Errorf("loader rejects a good document:\n%v", loaderErrs)
					}
					return
				case "bad":
					if schemaErr == nil {
						t.Errorf("schema accepts a bad document the loader rejects with:\n%v", loaderErrs)
					}
				case "loader-only":
					if schemaErr != nil {
						t.Errorf("schema now rejects this document (move it to bad/): %v", schemaErr)
					}
				}
				if loaderErrs == nil {
					t.Fatalf("loader accepts a bad document; the schema says: %v", schemaErr)
				}
				m := wantLineRE.FindSubmatch(data)
				if m == nil {
					t.Fatal("no `# line: N` comment")
				}
				want, _ := strconv.Atoi(string(m[1]))
				if got := loaderErrs[0].Line; got != want {
					t.Errorf("loader's first error at line %d; want %d:\n%v", got, want, loaderErrs)
				}
			})
		}
	}
}

// TestSchemaAcceptsExamples validates every document of every example.
func TestSchemaAcceptsExamples(t *testing.T) {
	sch := compileSchema(t)
	files, _ := filepath.Glob(filepath.Join("..", "examples", "*", "*.yaml"))
	more, _ := filepath.Glob(filepath.Join("..", "examples", "*", "*", "*.yaml"))
	files = append(files, more...)
	if len(files) < 5 {
		t.Fatalf("found only %d example files", len(files))
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		docs, err := yamlDocs(data)
		if err != nil {
			t.Errorf("%s: %v", file, err)
			continue
		}
		for i, doc := range docs {
			if err := sch.Validate(doc); err != nil {
				t.Errorf("%s: document %d: %v", file, i+1, err)
			}
		}
	}
}
