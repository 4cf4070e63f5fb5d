package source

import (
	"context"
	"crypto/sha256"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"weir/spec"
)

// memTree builds a memFS from files (path → content; a key ending in "@" is a
// symlink to its value), as a snapshot builder does.
func memTree(t *testing.T, files map[string]string) fs.FS {
	t.Helper()
	b := newSnapshotBuilder()
	for name, v := range files {
		if link, ok := strings.CutSuffix(name, "@"); ok {
			b.addSymlink(link, v)
			continue
		}
		if err := b.addFile(name, strings.NewReader(v), int64(len(v))); err != nil {
			t.Fatal(err)
		}
	}
	fsys, _ := b.finish()
	return fsys
}

// TestMemFSConforms runs the standard library's file system checks, which
// also compare every way of listing, opening and reading a file.
func TestMemFSConforms(t *testing.T) {
	fsys := memTree(t, map[string]string{
		"hosts.yaml":     "h",
		"a-b.yaml":       "ab",
		"a/x.yaml":       "x",
		"a/deep/y.yml":   "y",
		"a.yaml":         "a",
		"via.yaml@":      "a/x.yaml",
		"dirlink@":       "a/deep",
		"through.yaml@":  "dirlink/y.yml",
		"a/deep/up.yml@": "../../hosts.yaml",
	})
	if err := fstest.TestFS(fsys, "hosts.yaml", "a-b.yaml", "a/x.yaml", "a/deep/y.yml", "a.yaml", "via.yaml", "through.yaml", "a/deep/up.yml"); err != nil {
		t.Fatal(err)
	}
}

func TestMemFSSymlinks(t *testing.T) {
	fsys := memTree(t, map[string]string{
		"sub/c.yml":     "c",
		"dirlink@":      "sub",
		"out.yaml@":     "../x.yaml",
		"slash.yaml@":   `\x.yaml`,
		"gone.yaml@":    "nowhere.yaml",
		"loop.yaml@":    "loop.yaml",
		"through.yaml@": "dirlink/c.yml",
	})
	for name, want := range map[string]string{"through.yaml": "c", "dirlink/c.yml": "c"} {
		if got, err := fs.ReadFile(fsys, name); string(got) != want || err != nil {
			t.Errorf("ReadFile(%s) = %q, %v; want %q", name, got, err, want)
		}
	}
	for _, name := range []string{"out.yaml", "slash.yaml", "gone.yaml", "loop.yaml", "dirlink/none", "../x"} {
		if _, err := fsys.Open(name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open(%s) error = %v; want fs.ErrNotExist", name, err)
		}
	}
	info, err := fs.Lstat(fsys, "dirlink/c.yml")
	if err != nil || info.Name() != "c.yml" || !info.Mode().IsRegular() {
		t.Errorf("Lstat(dirlink/c.yml) = %v, %v; want the file c.yml", info, err)
	}
	if target, err := fs.ReadLink(fsys, "out.yaml"); target != "../x.yaml" || err != nil {
		t.Errorf("ReadLink(out.yaml) = %q, %v; want ../x.yaml", target, err)
	}
	if _, err := fs.ReadLink(fsys, "sub/c.yml"); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("ReadLink(sub/c.yml) error = %v; want fs.ErrInvalid", err)
	}
}

// TestMemFSSizes checks that a file cut at MaxPassThrough reports its real
// size through Stat and Lstat, and the bytes kept once open.
func TestMemFSSizes(t *testing.T) {
	const real = MaxPassThrough + 100
	fsys := memTree(t, map[string]string{"big.yaml": strings.Repeat("x", real), "big-link.yaml@": "big.yaml"})
	for _, name := range []string{"big.yaml", "big-link.yaml"} {
		if fi, err := fs.Stat(fsys, name); err != nil || fi.Size() != real {
			t.Errorf("Stat(%s) = %v, %v; want size %d", name, fi, err, real)
		}
	}
	if fi, err := fs.Lstat(fsys, "big.yaml"); err != nil || fi.Size() != real {
		t.Errorf("Lstat(big.yaml) = %v, %v; want size %d", fi, err, real)
	}
	data, err := fs.ReadFile(fsys, "big.yaml")
	if err != nil || len(data) != MaxPassThrough {
		t.Errorf("ReadFile(big.yaml) = %d bytes, %v; want %d", len(data), err, MaxPassThrough)
	}
	entries, _ := fs.ReadDir(fsys, ".")
	i := slices.IndexFunc(entries, func(e fs.DirEntry) bool { return e.Name() == "big.yaml" })
	if fi, _ := entries[i].Info(); fi.Size() != MaxPassThrough {
		t.Errorf("directory entry big.yaml size = %d; want %d", fi.Size(), MaxPassThrough)
	}
}

// TestDirSnapshotLinkTargets checks what a directory snapshot copies for its
// links: in-tree targets of any name, but nothing a link reaches by leaving
// the root (also through a `\` target), and of a FIFO only its type.
func TestDirSnapshotLinkTargets(t *testing.T) {
	root := t.TempDir()
	writeLinkTree(t, root, map[string]string{
		"in.yaml@":    "notes.txt",
		"notes.txt":   "in",
		`\x.txt`:      "backslash",
		"slash.yaml@": `\x.txt`,
		"pipe.yaml@":  "pipe",
	})
	if err := syscall.Mkfifo(filepath.Join(root, "pipe"), 0o644); err != nil {
		t.Skipf("cannot make a FIFO here: %v", err)
	}
	done := make(chan struct{})
	var snap Snapshot
	var err error
	go func() {
		defer close(done)
		snap, err = newDir(t, root).Latest(context.Background())
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Latest blocked on a link to a FIFO")
	}
	if err != nil {
		t.Fatal(err)
	}
	if got, err := fs.ReadFile(snap.FS, "in.yaml"); string(got) != "in" || err != nil {
		t.Errorf("ReadFile(in.yaml) = %q, %v; want its target's content", got, err)
	}
	if _, err := fs.Lstat(snap.FS, `\x.txt`); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Lstat(\\x.txt) error = %v; want fs.ErrNotExist: nothing reached by leaving the root is copied", err)
	}
	// The FIFO is recorded by its type, unread, for the loader to refuse.
	if fi, err := fs.Stat(snap.FS, "pipe.yaml"); err != nil || fi.Mode().Type() != fs.ModeNamedPipe {
		t.Errorf("Stat(pipe.yaml) = %v, %v; want the FIFO's type", fi, err)
	}
	if _, err := os.Lstat(filepath.Join(root, `\x.txt`)); err != nil {
		t.Fatalf("test premise: %v", err)
	}
}

// TestMemFSContentSHA256: a snapshot knows the hash of every file it read,
// through symlinks too, so the spec loader can tell unchanged files without
// reading them; it knows none for directories, links to nothing, or files
// past the tree size, which it never read.
func TestMemFSContentSHA256(t *testing.T) {
	fsys := memTree(t, map[string]string{"a.yaml": "one", "d/b.yaml": "two", "l.yaml@": "d/b.yaml", "x.yaml@": "gone.yaml"}).(spec.ContentHashFS)
	for name, content := range map[string]string{"a.yaml": "one", "d/b.yaml": "two", "l.yaml": "two"} {
		if got, ok := fsys.ContentSHA256(name); !ok || got != sha256.Sum256([]byte(content)) {
			t.Errorf("ContentSHA256(%s) = %x, %v; want the hash of %q", name, got, ok, content)
		}
	}
	for _, name := range []string{"d", "x.yaml", "missing.yaml", "."} {
		if _, ok := fsys.ContentSHA256(name); ok {
			t.Errorf("ContentSHA256(%s) is known; want not", name)
		}
	}
	b := newSnapshotBuilder()
	b.bytes = spec.MaxTreeSize
	if err := b.addFile("big.yaml", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	past, _ := b.finish()
	if _, ok := past.(spec.ContentHashFS).ContentSHA256("big.yaml"); ok {
		t.Errorf("a file past the tree size has a hash; want none, it was never read")
	}
}
