package source

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"weir/spec"
)

// latestWithin calls Latest on src and fails the test if it takes longer
// than d (a read blocked on a FIFO would never return).
func latestWithin(t *testing.T, src Source, d time.Duration) Snapshot {
	t.Helper()
	done := make(chan struct{})
	var snap Snapshot
	var err error
	go func() {
		defer close(done)
		snap, err = src.Latest(context.Background())
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("Latest did not return within %v", d)
	}
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// TestDirFIFO: a FIFO named x.yaml in a watched directory is never opened;
// the snapshot carries its type, so the loader refuses the tree with the
// very error `weir validate` gives on the directory.
func TestDirFIFO(t *testing.T) {
	root := t.TempDir()
	writeLinkTree(t, root, linkTreeFiles)
	if err := syscall.Mkfifo(filepath.Join(root, "x.yaml"), 0o644); err != nil {
		t.Skipf("cannot make a FIFO here: %v", err)
	}
	snap := latestWithin(t, newDir(t, root), 5*time.Second)
	got, want := loadOutcome(snap.FS), loadOutcome(os.DirFS(root))
	if got != want || want != "error: x.yaml:1: not a regular file (p---------)" {
		t.Errorf("loading the snapshot: %s\nloading the directory: %s\nwant both to refuse x.yaml", got, want)
	}
}

// TestTreeSizeLimit: a tree past spec.MaxTreeSize is refused by the loader
// as on disk, and the snapshot of it holds no more than the limit (plus one
// file's pass-through) in memory.
func TestTreeSizeLimit(t *testing.T) {
	root := t.TempDir()
	data := bytes.Repeat([]byte("#"), spec.MaxFileSize)
	n := spec.MaxTreeSize/spec.MaxFileSize + 3
	for i := range n {
		if err := os.WriteFile(filepath.Join(root, fmt.Sprintf("f%03d.yaml", i)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	snap := latestWithin(t, newDir(t, root), 30*time.Second)
	got, want := loadOutcome(snap.FS), loadOutcome(os.DirFS(root))
	if got != want || !strings.Contains(want, "f064.yaml:1: the spec tree's files hold over") {
		t.Errorf("loading the snapshot: %s\nloading the directory: %s\nwant both to refuse the tree at f064.yaml", got, want)
	}
	kept := 0
	for _, nd := range snap.FS.(memFS).nodes {
		kept += len(nd.data)
	}
	if limit := spec.MaxTreeSize + MaxPassThrough; kept > limit {
		t.Errorf("the snapshot keeps %d bytes; want at most %d", kept, limit)
	}
}
