package source

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// After the first fetch, a push that changes one file of many brings only
// that file's objects into the clone, not the whole tree again.
func TestGitFetchesOnlyWhatChanged(t *testing.T) {
	f := newGitFixture(t)
	files := map[string]string{"specs/hosts.yaml": hostYAML}
	for i := range 40 {
		// Random text, so that git cannot compress one file from another.
		var b strings.Builder
		for range 60 {
			b.WriteString("# " + rand.Text() + "\n")
		}
		files[fmt.Sprintf("specs/lb/b%02d.yaml", i)] = b.String()
	}
	f.work.commit("first", files)
	f.work.push(false)
	g := f.source(t, nil)
	latest(t, g)
	first := packBytes(t, g.RepoDir())

	h2 := f.work.commit("second", map[string]string{"specs/lb/b07.yaml": "# changed\n" + files["specs/lb/b07.yaml"]})
	f.work.push(false)
	if snap := latest(t, g); snap.Revision != h2 {
		t.Fatalf("Latest().Revision = %s; want %s", snap.Revision, h2)
	}
	if added := packBytes(t, g.RepoDir()) - first; added > first/10 {
		t.Errorf("fetching a one-file change added %d bytes of packs to a clone of %d; want only the change", added, first)
	}
}

// packBytes is the size of the pack files in the clone at dir.
func packBytes(t *testing.T, dir string) int64 {
	t.Helper()
	packs, err := filepath.Glob(filepath.Join(dir, ".git", "objects", "pack", "*.pack"))
	if err != nil || len(packs) == 0 {
		t.Fatalf("no packs in %s (%v)", dir, err)
	}
	var n int64
	for _, p := range packs {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}
