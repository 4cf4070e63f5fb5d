package testsupport

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// update rewrites golden files instead of comparing with them:
// go test ./reconcile/... -update. Every test binary that links this package
// accepts the flag, so its tests must not define their own -update.
var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// Golden compares got with the file testdata/<name> of the package under
// test, or rewrites the file when -update is given. A difference fails t at
// the first line that differs.
func Golden(t testing.TB, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", filepath.FromSlash(name))
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run go test with -update to create it): %v", err)
	}
	if bytes.Equal(got, want) {
		return
	}
	if n, g, w := FirstDiff(strings.Split(string(got), "\n"), strings.Split(string(want), "\n")); n > 0 {
		t.Errorf("%s differs from golden file at line %d (run with -update if the change is intended):\n got: %s\nwant: %s", name, n, g, w)
	}
}

// FirstDiff returns the first line (1-based) at which got and want differ,
// and the two lines there ("" past the end of either); 0 when they are equal.
func FirstDiff(got, want []string) (line int, g, w string) {
	for i := 0; i < len(got) || i < len(want); i++ {
		g, w = "", ""
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			return i + 1, g, w
		}
	}
	return 0, "", ""
}
