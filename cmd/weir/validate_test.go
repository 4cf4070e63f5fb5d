package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// copyExample copies examples/NAME into a temporary directory and applies
// edits (file → old → new, each old occurring exactly once).
func copyExample(t *testing.T, name string, edits map[string][2]string) string {
	t.Helper()
	src := filepath.Join("..", "..", "examples", name)
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if ed, ok := edits[e.Name()]; ok {
			if n := strings.Count(string(data), ed[0]); n != 1 {
				t.Fatalf("%s: %q occurs %d times; want once", e.Name(), ed[0], n)
			}
			data = []byte(strings.Replace(string(data), ed[0], ed[1], 1))
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// lineOf returns the 1-based line of the only line of dir/file containing s.
func lineOf(t *testing.T, dir, file, s string) int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for i, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, s) {
			if found != 0 {
				t.Fatalf("%s: %q on lines %d and %d", file, s, found, i+1)
			}
			found = i + 1
		}
	}
	if found == 0 {
		t.Fatalf("%s: no line contains %q", file, s)
	}
	return found
}

func validate(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(context.Background(), append([]string{"validate"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestValidateExamples(t *testing.T) {
	cases := []struct{ dir, want string }{
		{"basic", "ok: 3 hosts, 3 guests, 1 balancer\n"},
		{"weighted", "ok: 3 hosts, 3 guests, 1 balancer\n"},
		{"multi", "ok: 3 hosts, 7 guests, 5 balancers\n"},
		{"health", "ok: 3 hosts, 6 guests, 2 balancers\n"},
		{"dualstack", "ok: 3 hosts, 3 guests, 2 balancers\n"},
	}
	for _, tc := range cases {
		code, stdout, stderr := validate(filepath.Join("..", "..", "examples", tc.dir))
		if code != exitOK || stdout != tc.want || stderr != "" {
			t.Errorf("weir validate examples/%s = %d, %q, %q; want 0, %q, \"\"", tc.dir, code, stdout, stderr, tc.want)
		}
	}
}

// brokenBasic is examples/basic with three mistakes: orders-2 takes
// orders-1's address, the balancer's target is misspelt and its port is 0.
func brokenBasic(t *testing.T) (dir string, want []string) {
	dir = copyExample(t, "basic", map[string][2]string{
		"hosts.yaml":     {"address: 198.19.3.2", "address: 198.19.2.2"},
		"balancers.yaml": {"target: orders ", "target: ordrs  "},
	})
	// A second edit of the same file.
	p := filepath.Join(dir, "balancers.yaml")
	data, _ := os.ReadFile(p)
	if err := os.WriteFile(p, bytes.Replace(data, []byte("port: 80 "), []byte("port: 0  "), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	want = []string{
		fmt.Sprintf(`balancers.yaml:%d: spec.target: no guest runs service "ordrs"`, lineOf(t, dir, "balancers.yaml", "target: ordrs")),
		fmt.Sprintf(`balancers.yaml:%d: spec.frontend.port: port 0 is out of range 1-65535`, lineOf(t, dir, "balancers.yaml", "port: 0")),
		fmt.Sprintf(`hosts.yaml:%d: duplicate address 198.19.2.2 (first used by guest "orders-1" at hosts.yaml:%d)`,
			lineOf(t, dir, "hosts.yaml", "orders-2")+1, lineOf(t, dir, "hosts.yaml", "orders-1")+1),
	}
	return dir, want
}

func TestValidateBrokenExample(t *testing.T) {
	dir, want := brokenBasic(t)
	code, stdout, stderr := validate(dir)
	if code != exitFail || stdout != "" {
		t.Errorf("weir validate = %d, stdout %q; want 1, nothing", code, stdout)
	}
	if got := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("stderr:\n%s\nwant:\n%s", stderr, strings.Join(want, "\n"))
	}
	// Pin the literal positions too, so that a loader reporting the wrong
	// line cannot agree with a lineOf that looks at the wrong line.
	// (Editing examples/basic moves them: update these numbers with it.)
	for i, prefix := range []string{"balancers.yaml:18: ", "balancers.yaml:21: ", "hosts.yaml:56: "} {
		if !strings.HasPrefix(want[i], prefix) {
			t.Errorf("want[%d] = %q; examples/basic has it at %s", i, want[i], prefix)
		}
	}
}

func TestValidateJSON(t *testing.T) {
	type result struct {
		Valid     bool `json:"valid"`
		Hosts     int  `json:"hosts"`
		Guests    int  `json:"guests"`
		Balancers int  `json:"balancers"`
		Errors    []struct {
			File    string `json:"file"`
			Line    int    `json:"line"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	decode := func(s string) result {
		t.Helper()
		var r result
		if err := json.Unmarshal([]byte(s), &r); err != nil {
			t.Fatalf("output is not JSON: %v\n%s", err, s)
		}
		return r
	}

	code, stdout, _ := validate(filepath.Join("..", "..", "examples", "multi"), "-o", "json")
	r := decode(stdout)
	if code != exitOK || !r.Valid || r.Hosts != 3 || r.Guests != 7 || r.Balancers != 5 || r.Errors == nil || len(r.Errors) != 0 {
		t.Errorf("valid tree: code %d, %+v; want 0, valid, 3/7/5, errors []", code, r)
	}
	if !strings.Contains(stdout, `"errors": []`) {
		t.Errorf("errors of a valid tree should be [], not null:\n%s", stdout)
	}

	dir, want := brokenBasic(t)
	code, stdout, stderr := validate("-o", "json", dir)
	r = decode(stdout)
	if code != exitFail || r.Valid || stderr != "" || len(r.Errors) != len(want) {
		t.Fatalf("broken tree: code %d, stderr %q, %+v", code, stderr, r)
	}
	for i, e := range r.Errors {
		if got := fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Message); got != want[i] {
			t.Errorf("errors[%d] = %q; want %q", i, got, want[i])
		}
	}
}

func TestValidateOutputFromEnvironment(t *testing.T) {
	t.Setenv("WEIR_O", "json")
	_, stdout, _ := validate(filepath.Join("..", "..", "examples", "basic"))
	if !strings.Contains(stdout, `"valid": true`) {
		t.Errorf("WEIR_O=json: stdout %q; want JSON", stdout)
	}
}

func TestValidateUsageAndIOErrors(t *testing.T) {
	basic := filepath.Join("..", "..", "examples", "basic")
	missing := filepath.Join(t.TempDir(), "nope")
	cases := []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"no path", nil, exitUsage, "want exactly one PATH, got 0"},
		{"two paths", []string{basic, basic}, exitUsage, "want exactly one PATH, got 2"},
		{"bad output", []string{basic, "-o", "yaml"}, exitUsage, `unknown output format "yaml"`},
		{"unknown flag", []string{"--verbose", basic}, exitUsage, "unknown flag: --verbose"},
		{"missing path", []string{missing}, exitUsage, "no such file or directory"},
		{"a file, not a directory", []string{filepath.Join(basic, "hosts.yaml")}, exitUsage, "is not a directory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := validate(tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) || stdout != "" {
				t.Errorf("weir validate %q = %d, stdout %q, stderr %q; want %d and %q in stderr", tc.args, code, stdout, stderr, tc.code, tc.want)
			}
		})
	}
}
