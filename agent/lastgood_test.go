package agent

import (
	"crypto/sha256"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"
)

func TestLastGoodRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := loadLastGood(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("loadLastGood(empty) = %v; want fs.ErrNotExist", err)
	}
	tree := fstest.MapFS{
		"hosts/a.yaml":     {Data: []byte("kind: Host\n")},
		"balancers.yml":    {Data: []byte("kind: Balancer\n")},
		"README.md":        {Data: []byte("not a spec")},
		".git/config.yaml": {Data: []byte("hidden")},
	}
	if _, err := writeLastGood(dir, "rev1", tree, nil); err != nil {
		t.Fatalf("saveLastGood: %v", err)
	}
	second := fstest.MapFS{"hosts/b.yaml": {Data: []byte("kind: Host\nname: b\n")}}
	if _, err := writeLastGood(dir, "rev2", second, nil); err != nil {
		t.Fatalf("saveLastGood: %v", err)
	}
	rev, fsys, err := loadLastGood(dir)
	if err != nil {
		t.Fatalf("loadLastGood: %v", err)
	}
	if rev != "rev2" {
		t.Errorf("loadLastGood revision = %q; want rev2", rev)
	}
	got := map[string]string{}
	fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := fs.ReadFile(fsys, p)
			got[p] = string(b)
		}
		return nil
	})
	if len(got) != 1 || got["hosts/b.yaml"] != "kind: Host\nname: b\n" {
		t.Errorf("persisted files = %v; want only hosts/b.yaml of rev2", got)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 2 { // last-good and its one target directory
		t.Errorf("state directory holds %v; want the link and one revision directory", names)
	}
}

func TestLastGoodCopiesOnlySpecFiles(t *testing.T) {
	src := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "sub"), 0o755))
	must(os.MkdirAll(filepath.Join(src, ".hidden"), 0o755))
	must(os.WriteFile(filepath.Join(src, "sub", "h.yaml"), []byte("h"), 0o644))
	must(os.WriteFile(filepath.Join(src, ".hidden", "x.yaml"), []byte("x"), 0o644))
	must(os.WriteFile(filepath.Join(src, ".dot.yaml"), []byte("dot"), 0o644))
	must(os.WriteFile(filepath.Join(src, "notes.txt"), []byte("n"), 0o644))
	must(os.WriteFile(filepath.Join(src, "UPPER.YAML"), []byte("u"), 0o644))
	must(os.Symlink("sub/h.yaml", filepath.Join(src, "link.yaml")))

	state := t.TempDir()
	_, err := writeLastGood(state, "dir:abc", os.DirFS(src), nil)
	must(err)
	_, fsys, err := loadLastGood(state)
	must(err)
	var got []string
	fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := fs.ReadFile(fsys, p)
			got = append(got, p+"="+string(b))
		}
		return nil
	})
	// Exactly what the loader reads: no hidden file, no other extension.
	if want := "link.yaml=h sub/h.yaml=h"; strings.Join(got, " ") != want {
		t.Errorf("persisted %v; want %s", got, want)
	}
}

// TestLastGoodSaveFailureIsReportedAndRetried: a last good revision that
// cannot be saved shows in status and metrics, does not fail the loop, and
// is saved by a later pass once the state directory works again.
func TestLastGoodSaveFailureIsReportedAndRetried(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "blocker") // a file where a directory must go
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(blocker, "state")
	h := newHarness(t, Config{StateDir: state, Resync: 30 * time.Second}, newFakeSource(specA), newFakeCluster(true, "h1", "h2", "h3"), &fakeSyncer{}).start()
	h.waitRules("WEIR-fo", "orders-1", "orders-2")
	waitFor(t, "the failed save reported", func() bool {
		return strings.Contains(h.a.State().Error, "saving the last good revision "+revisionOf(specA))
	})
	if got := counterValue(t, h.a, "weir_last_good_save_errors_total"); got < 1 {
		t.Errorf("weir_last_good_save_errors_total = %v; want at least 1", got)
	}
	if hl := h.a.Health(); !hl.OK {
		t.Errorf("Health() = %+v; want OK: the rules are applied", hl)
	}

	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	waitAdvancing(t, h.clk, time.Second, "the save retried", func() bool { return h.a.State().Error == "" })
	if rev, _, err := loadLastGood(state); err != nil || rev != revisionOf(specA) {
		t.Errorf("loadLastGood = %q, %v; want %q", rev, err, revisionOf(specA))
	}
}

// sumMapFS is a MapFS that knows its files' hashes, as agent snapshots do.
type sumMapFS struct{ fstest.MapFS }

func (m sumMapFS) ContentSHA256(name string) ([sha256.Size]byte, bool) {
	f, ok := m.MapFS[name]
	if !ok {
		return [sha256.Size]byte{}, false
	}
	return sha256.Sum256(f.Data), true
}

// TestLastGoodLinksUnchangedFiles: a save after another one hard-links the
// files whose content did not change from the previous save's directory
// (so they are neither written nor synced again) and writes the others;
// what loads back is the new revision exactly.
func TestLastGoodLinksUnchangedFiles(t *testing.T) {
	state := t.TempDir()
	first := sumMapFS{fstest.MapFS{"a.yaml": {Data: []byte("a")}, "d/b.yaml": {Data: []byte("b")}, "c.yaml": {Data: []byte("c")}}}
	saved, err := writeLastGood(state, "rev1", first, nil)
	if err != nil {
		t.Fatal(err)
	}
	inode := func(dir, p string) uint64 {
		fi, err := os.Stat(filepath.Join(dir, specsDir, p))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	before := map[string]uint64{"a.yaml": inode(saved.dir, "a.yaml"), "d/b.yaml": inode(saved.dir, "d/b.yaml"), "c.yaml": inode(saved.dir, "c.yaml")}
	second := sumMapFS{fstest.MapFS{"a.yaml": {Data: []byte("a")}, "d/b.yaml": {Data: []byte("b2")}, "e.yaml": {Data: []byte("c")}}}
	next, err := writeLastGood(state, "rev2", second, saved)
	if err != nil {
		t.Fatal(err)
	}
	if inode(next.dir, "a.yaml") != before["a.yaml"] {
		t.Errorf("unchanged a.yaml was written again; want it linked")
	}
	if inode(next.dir, "d/b.yaml") == before["d/b.yaml"] || inode(next.dir, "e.yaml") == before["c.yaml"] {
		t.Errorf("a changed file, or one at another path, was linked; want it written")
	}
	rev, fsys, err := loadLastGood(state)
	if err != nil || rev != "rev2" {
		t.Fatalf("loadLastGood = %q, %v; want rev2", rev, err)
	}
	got := map[string]string{}
	for _, p := range []string{"a.yaml", "d/b.yaml", "e.yaml"} {
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			t.Fatal(err)
		}
		got[p] = string(b)
	}
	if want := map[string]string{"a.yaml": "a", "d/b.yaml": "b2", "e.yaml": "c"}; !maps.Equal(got, want) {
		t.Errorf("loaded back %v; want %v", got, want)
	}
	if _, err := os.Stat(filepath.Join(saved.dir)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the previous revision's directory is still there (%v)", err)
	}
}
