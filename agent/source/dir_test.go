package source

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// writeTree creates files (slash-separated path → content) under root.
func writeTree(t testing.TB, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func newDir(t testing.TB, root string) *Dir {
	t.Helper()
	d, err := NewDir(DirConfig{Dir: root})
	if err != nil {
		t.Fatalf("NewDir: %v", err)
	}
	return d
}

func dirRevision(t testing.TB, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	writeTree(t, root, files)
	snap, err := newDir(t, root).Latest(context.Background())
	if err != nil {
		t.Fatalf("Latest: %v", err)
	}
	return snap.Revision
}

// TestDirRevisionEncoding recomputes the documented byte encoding by hand.
func TestDirRevisionEncoding(t *testing.T) {
	files := map[string]string{"b/x.yaml": "x: 1\n", "a.yml": "", "a/z.yaml": "zz"}
	h := sha256.New()
	h.Write([]byte("weir-dir-v1\n"))
	for _, p := range []string{"a.yml", "a/z.yaml", "b/x.yaml"} { // byte-wise order: '.' < '/'
		h.Write([]byte{'f'})
		h.Write([]byte(p))
		h.Write([]byte{0})
		binary.Write(h, binary.BigEndian, uint64(len(files[p])))
		d := sha256.Sum256([]byte(files[p]))
		h.Write(d[:])
	}
	want := "dir:" + hex.EncodeToString(h.Sum(nil))
	if got := dirRevision(t, files); got != want {
		t.Fatalf("revision = %s; want %s", got, want)
	}
}

func TestDirRevision(t *testing.T) {
	base := map[string]string{"hosts.yaml": hostYAML, "lb/b.yml": balancerYAML}
	with := func(changes map[string]string) map[string]string {
		m := maps.Clone(base)
		for k, v := range changes {
			if v == "\x00delete" {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return m
	}
	baseRev := dirRevision(t, base)
	tests := []struct {
		name string
		tree map[string]string
		same bool
	}{
		{"same content in another directory", base, true},
		{"non-spec file added", with(map[string]string{"README.md": "hi", "x.json": "{}"}), true},
		{"hidden directory added", with(map[string]string{".git/config.yaml": "x", "lb/.cache/y.yaml": "y"}), true},
		{"hidden file added", with(map[string]string{".#hosts.yaml": "lock", "lb/.b.yml.swp": "x"}), true},
		{"content changed", with(map[string]string{"hosts.yaml": hostYAML + "#\n"}), false},
		{"file renamed", with(map[string]string{"lb/b.yml": "\x00delete", "lb/c.yml": balancerYAML}), false},
		{"file moved to another directory", with(map[string]string{"lb/b.yml": "\x00delete", "lc/b.yml": balancerYAML}), false},
		{"file deleted", with(map[string]string{"lb/b.yml": "\x00delete"}), false},
		{"spec file added", with(map[string]string{"lb/new.yaml": "a: 1\n"}), false},
		{"empty spec file added", with(map[string]string{"empty.yaml": ""}), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := dirRevision(t, tt.tree)
			if (got == baseRev) != tt.same {
				t.Fatalf("revision %s vs base %s: same = %v; want %v", got, baseRev, got == baseRev, tt.same)
			}
		})
	}
}

func TestDirLatestSnapshot(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"hosts.yaml":         hostYAML,
		"b.yml":              balancerYAML,
		"nested/deep/c.yaml": balancerYAML,
		".hidden/x.yaml":     "hidden",
		"README.md":          "docs",
		"big/huge.yaml":      strings.Repeat("#", MaxPassThrough+100),
	})
	for name, target := range map[string]string{"link.yaml": "hosts.yaml", "escape.yaml": "../../../etc/passwd"} {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	d := newDir(t, root)
	snap, err := d.Latest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(snap.Revision, "dir:") || len(snap.Revision) != 4+64 {
		t.Fatalf("Revision = %q; want dir: and 64 hex digits", snap.Revision)
	}
	checkSnapshotTree(t, snap.FS)

	// The snapshot is a copy: later edits on disk do not reach it.
	writeTree(t, root, map[string]string{"hosts.yaml": "changed: true\n", "added.yaml": "x: 1\n"})
	if b, _ := fs.ReadFile(snap.FS, "hosts.yaml"); string(b) != hostYAML {
		t.Fatalf("snapshot hosts.yaml = %q after an edit on disk; want the content at Latest", b)
	}
	if _, err := fs.Stat(snap.FS, "added.yaml"); err == nil {
		t.Fatal("a file created after Latest appears in its snapshot")
	}

	// A file past 1 MiB still counts in full for the revision.
	rev1, _ := d.Latest(context.Background())
	writeTree(t, root, map[string]string{"big/huge.yaml": strings.Repeat("#", MaxPassThrough+99) + "!"})
	rev2, _ := d.Latest(context.Background())
	if rev1.Revision == rev2.Revision {
		t.Fatal("a change past the kept prefix of a large file left the revision unchanged")
	}
}

func TestNewDirErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f.yaml")
	os.WriteFile(file, nil, 0o644)
	tests := []struct {
		dir  string
		want string
	}{
		{"", "no directory given"},
		{filepath.Join(t.TempDir(), "missing"), "no such file or directory"},
		{file, "not a directory"},
	}
	for _, tt := range tests {
		if _, err := NewDir(DirConfig{Dir: tt.dir}); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewDir(%q) error = %v; want it to contain %q", tt.dir, err, tt.want)
		}
	}
	// A directory that disappears later makes Latest fail, not panic.
	root := t.TempDir()
	d := newDir(t, root)
	os.RemoveAll(root)
	if _, err := d.Latest(context.Background()); err == nil || !strings.Contains(err.Error(), "reading spec directory") {
		t.Errorf("Latest() of a removed directory error = %v; want a reading error", err)
	}
}

// dirWatch is a watched directory and a way to wait for its notifications.
type dirWatch struct {
	t    *testing.T
	root string
	src  *Dir
	c    *counter
	rev  string
}

// startDirWatch watches a fresh tree holding files, after a first Latest (as
// the agent does at start), and waits for the watches to be in place.
func startDirWatch(t *testing.T, files map[string]string) *dirWatch {
	t.Helper()
	root := t.TempDir()
	writeTree(t, root, files)
	w := &dirWatch{t: t, root: root, src: newDir(t, root)}
	snap, err := w.src.Latest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	w.rev = snap.Revision
	w.c = watch(t, w.src)
	// Watch adds its watches, then settles once; with the tree unchanged
	// since Latest that is silent. (An edit racing the start is caught by
	// that settle, so tests need not wait for the watches to be in place.)
	holdsFor(t, 3*DefaultDebounce, "silence at start", func() bool { return w.c.n() == 0 })
	return w
}

// expectChange waits for notification number n and checks that Latest then
// returns a new revision with wantFiles.
func (w *dirWatch) expectChange(n int, what string, wantFiles map[string]string) time.Duration {
	w.t.Helper()
	start := time.Now()
	waitFor(w.t, 5*time.Second, "notification for "+what, func() bool { return w.c.n() >= n })
	took := w.c.last().Sub(start)
	holdsFor(w.t, 3*DefaultDebounce, "a single notification for "+what, func() bool { return w.c.n() == n })
	snap, err := w.src.Latest(context.Background())
	if err != nil {
		w.t.Fatal(err)
	}
	if snap.Revision == w.rev {
		w.t.Fatalf("after %s: revision unchanged (%s)", what, snap.Revision)
	}
	w.rev = snap.Revision
	if got := readFS(w.t, snap.FS); !maps.Equal(got, wantFiles) {
		w.t.Fatalf("after %s: snapshot = %v; want %v", what, got, wantFiles)
	}
	return took
}

func TestDirWatchRenameWrite(t *testing.T) {
	w := startDirWatch(t, map[string]string{"hosts.yaml": hostYAML})
	// What vim (backupcopy=no), VS Code's atomic save and most config tools
	// do: write a temporary file, then rename it over the original.
	tmp := filepath.Join(w.root, ".hosts.yaml.tmp")
	writeTree(t, w.root, map[string]string{".hosts.yaml.tmp": hostYAML + "# v2\n"})
	if err := os.Rename(tmp, filepath.Join(w.root, "hosts.yaml")); err != nil {
		t.Fatal(err)
	}
	took := w.expectChange(1, "rename over a file", map[string]string{"hosts.yaml": hostYAML + "# v2\n"})
	t.Logf("rename to changed(): %v", took)

	// And again: the watch survived the replaced inode.
	writeTree(t, w.root, map[string]string{"hosts.yaml~": "x"}) // a backup file, not a spec
	writeTree(t, w.root, map[string]string{".hosts.yaml.tmp": hostYAML + "# v3\n"})
	if err := os.Rename(tmp, filepath.Join(w.root, "hosts.yaml")); err != nil {
		t.Fatal(err)
	}
	w.expectChange(2, "second rename", map[string]string{"hosts.yaml": hostYAML + "# v3\n"})
}

func TestDirWatchNewSubdirectory(t *testing.T) {
	w := startDirWatch(t, map[string]string{"hosts.yaml": hostYAML})
	if err := os.Mkdir(filepath.Join(w.root, "lb"), 0o755); err != nil {
		t.Fatal(err)
	}
	// An empty directory changes no revision, so no notification...
	holdsFor(t, 3*DefaultDebounce, "no notification for an empty directory", func() bool { return w.c.n() == 0 })
	// ...but the new directory is watched: a file created in it is seen.
	writeTree(t, w.root, map[string]string{"lb/b.yaml": balancerYAML})
	w.expectChange(1, "file in a new directory", map[string]string{"hosts.yaml": hostYAML, "lb/b.yaml": balancerYAML})

	// A whole tree created at once (mkdir -p, then files, faster than the
	// watch on the top directory is added) and then a file deep inside it.
	writeTree(t, w.root, map[string]string{"x/y/z/c.yaml": balancerYAML})
	w.expectChange(2, "nested directories", map[string]string{"hosts.yaml": hostYAML, "lb/b.yaml": balancerYAML, "x/y/z/c.yaml": balancerYAML})
	writeTree(t, w.root, map[string]string{"x/y/z/d.yaml": hostYAML})
	w.expectChange(3, "file deep in the new tree", map[string]string{"hosts.yaml": hostYAML, "lb/b.yaml": balancerYAML, "x/y/z/c.yaml": balancerYAML, "x/y/z/d.yaml": hostYAML})

	// A directory moved in from outside the tree, with its files.
	outside := t.TempDir()
	writeTree(t, outside, map[string]string{"moved/e.yaml": hostYAML})
	if err := os.Rename(filepath.Join(outside, "moved"), filepath.Join(w.root, "moved")); err != nil {
		t.Fatal(err)
	}
	w.expectChange(4, "directory moved in", map[string]string{"hosts.yaml": hostYAML, "lb/b.yaml": balancerYAML, "x/y/z/c.yaml": balancerYAML, "x/y/z/d.yaml": hostYAML, "moved/e.yaml": hostYAML})
	writeTree(t, w.root, map[string]string{"moved/f.yaml": hostYAML})
	w.expectChange(5, "file in the moved-in directory", map[string]string{"hosts.yaml": hostYAML, "lb/b.yaml": balancerYAML, "x/y/z/c.yaml": balancerYAML, "x/y/z/d.yaml": hostYAML, "moved/e.yaml": hostYAML, "moved/f.yaml": hostYAML})
}

func TestDirWatchDeletion(t *testing.T) {
	w := startDirWatch(t, map[string]string{"hosts.yaml": hostYAML, "lb/b.yaml": balancerYAML, "lb/deep/c.yaml": balancerYAML})
	if err := os.Remove(filepath.Join(w.root, "hosts.yaml")); err != nil {
		t.Fatal(err)
	}
	w.expectChange(1, "file deletion", map[string]string{"lb/b.yaml": balancerYAML, "lb/deep/c.yaml": balancerYAML})
	if err := os.RemoveAll(filepath.Join(w.root, "lb")); err != nil {
		t.Fatal(err)
	}
	w.expectChange(2, "directory deletion", map[string]string{})
	// Recreated under the same name: watched again.
	writeTree(t, w.root, map[string]string{"lb/b.yaml": balancerYAML})
	w.expectChange(3, "recreated directory", map[string]string{"lb/b.yaml": balancerYAML})
	// Moved out of the tree: gone from the snapshot, and edits made to it
	// outside are not reported.
	outside := filepath.Join(t.TempDir(), "away")
	if err := os.Rename(filepath.Join(w.root, "lb"), outside); err != nil {
		t.Fatal(err)
	}
	w.expectChange(4, "directory moved out", map[string]string{})
	writeTree(t, outside, map[string]string{"b.yaml": "changed outside\n"})
	holdsFor(t, 3*DefaultDebounce, "no notification for edits outside the tree", func() bool { return w.c.n() == 4 })
}

func TestDirWatchBurst(t *testing.T) {
	w := startDirWatch(t, map[string]string{"hosts.yaml": hostYAML})
	want := map[string]string{"hosts.yaml": hostYAML}
	for i := range 100 {
		name := fmt.Sprintf("burst/f%02d.yaml", i%10)
		content := fmt.Sprintf("n: %d\n", i)
		writeTree(t, w.root, map[string]string{name: content})
		want[name] = content
	}
	took := w.expectChange(1, "a burst of 100 writes", want)
	t.Logf("last of 100 writes to changed(): %v", took)
}

func TestDirWatchIgnoresNoise(t *testing.T) {
	w := startDirWatch(t, map[string]string{"hosts.yaml": hostYAML})
	writeTree(t, w.root, map[string]string{
		".git/objects/ab.yaml": "x",
		".hosts.yaml.swp":      "x",
		"README.md":            "x",
		"notes.txt":            "x",
		"hosts.yaml":           hostYAML, // rewritten with the same content
	})
	os.Chtimes(filepath.Join(w.root, "hosts.yaml"), time.Now(), time.Now().Add(time.Hour))
	holdsFor(t, 5*DefaultDebounce, "no notification for hidden, non-spec or unchanged files", func() bool { return w.c.n() == 0 })
}

func TestDirWatchSeesEditBeforeWatchStarted(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{"hosts.yaml": hostYAML})
	d := newDir(t, root)
	if _, err := d.Latest(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Edited between the agent's first Latest and Watch starting: no event
	// will ever come for it, yet Watch must report it.
	writeTree(t, root, map[string]string{"hosts.yaml": hostYAML + "# v2\n"})
	c := watch(t, d)
	waitFor(t, 5*time.Second, "notification for an edit made before Watch", func() bool { return c.n() == 1 })
}

func TestDirWatchRemovedRoot(t *testing.T) {
	w := startDirWatch(t, map[string]string{"hosts.yaml": hostYAML})
	if err := os.RemoveAll(w.root); err != nil {
		t.Fatal(err)
	}
	// The tree became unreadable: one notification, so Latest reports why.
	waitFor(t, 5*time.Second, "notification for a removed root", func() bool { return w.c.n() == 1 })
	if _, err := w.src.Latest(context.Background()); err == nil {
		t.Fatal("Latest() of a removed root succeeded")
	}
}

func TestDirWatchMaxDelay(t *testing.T) {
	root := t.TempDir()
	d, err := NewDir(DirConfig{Dir: root, Debounce: 50 * time.Millisecond, MaxDelay: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c := watch(t, d)
	waitFor(t, 5*time.Second, "the start-up notification (no Latest yet)", func() bool { return c.n() == 1 })
	// Writes every 10ms never leave the 50ms quiet gap, but MaxDelay still
	// lets notifications through while they go on.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for i := 0; ctx.Err() == nil; i++ {
		writeTree(t, root, map[string]string{"a.yaml": fmt.Sprintf("n: %d\n", i)})
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond): // pacing the writer, not waiting for a condition
		}
	}
	if n := c.n(); n < 3 {
		t.Fatalf("%d notifications during a second of continuous writes; want at least 3 (MaxDelay 200ms)", n)
	}
}

// TestDirLatestTakesTheSettledRead: the snapshot Watch read to notice a
// change is what Latest hands out next, not a second read of the tree; an
// event after that read, or the end of Watch, makes Latest read again.
func TestDirLatestTakesTheSettledRead(t *testing.T) {
	w := startDirWatch(t, map[string]string{"hosts.yaml": hostYAML})
	writeTree(t, w.root, map[string]string{"hosts.yaml": hostYAML + "# v2\n"})
	waitFor(t, 5*time.Second, "notification", func() bool { return w.c.n() >= 1 })
	nodes := func() uintptr {
		snap, err := w.src.Latest(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return reflect.ValueOf(snap.FS.(memFS).nodes).Pointer()
	}
	w.src.mu.Lock()
	settled := reflect.ValueOf(w.src.settled.snap.FS.(memFS).nodes).Pointer()
	w.src.mu.Unlock()
	if nodes() != settled {
		t.Fatalf("Latest read the tree again after Watch had read it")
	}
	if a, b := nodes(), nodes(); a == b || a == settled {
		t.Fatalf("Latest handed out the settled read twice; want it once, then fresh reads")
	}
	// A read Watch settled, then an event after it: Latest reads again.
	writeTree(t, w.root, map[string]string{"hosts.yaml": hostYAML + "# v3\n"})
	waitFor(t, 5*time.Second, "second notification", func() bool { return w.c.n() >= 2 })
	w.src.noteEvent() // as Watch does for any event after its read
	w.src.mu.Lock()
	settled = reflect.ValueOf(w.src.settled.snap.FS.(memFS).nodes).Pointer()
	w.src.mu.Unlock()
	if nodes() == settled {
		t.Fatalf("Latest handed out the settled read after a later event")
	}
}
