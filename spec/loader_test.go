package spec

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"reflect"
	"testing"
	"testing/fstest"
)

// sameAsLoad loads fsys with ld and fails t unless the outcome equals a
// fresh Load's: the same Spec, or the same errors in the same order.
func sameAsLoad(t *testing.T, ld *Loader, fsys fs.FS) {
	t.Helper()
	want, wantErr := Load(fsys)
	got, gotErr := ld.Load(fsys)
	if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
		t.Fatalf("Loader.Load errors:\n%v\nLoad errors:\n%v", gotErr, wantErr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Loader.Load returned another Spec than Load")
	}
}

// hashFS is a MapFS that knows its files' hashes, as agent snapshots do,
// and counts the files opened.
type hashFS struct {
	fstest.MapFS
	opened map[string]int
}

func (h hashFS) Open(name string) (fs.File, error) {
	h.opened[name]++
	return h.MapFS.Open(name)
}

func (h hashFS) ContentSHA256(name string) ([sha256.Size]byte, bool) {
	f, ok := h.MapFS[name]
	if !ok {
		return [sha256.Size]byte{}, false
	}
	return sha256.Sum256(f.Data), true
}

// TestLoaderRevisions walks one Loader through revisions that change,
// break, fix, move and remove files, and cross-file problems that appear
// and go away when another file changes; each outcome must be Load's.
func TestLoaderRevisions(t *testing.T) {
	dup := balancer("web-api", "198.20.0.11")
	revisions := []map[string]string{
		nil,
		{"more.yaml": balancer("b2", "198.20.0.12")},
		{"more.yaml": balancer("b2", "198.20.0.10")},                       // frontend taken: error in more.yaml
		{"more.yaml": balancer("b2", "198.20.0.10"), "balancers.yaml": ""}, // … until the other goes
		{"more.yaml": dup},                         // duplicate name
		{"a/more.yaml": dup},                       // moved: reported at its new path, first
		{"a/more.yaml": dup + "---\nkind: Host\n"}, // broken
		{"a/more.yaml": balancer("b3", "198.20.0.13", "weights: {api-1: 2, api-9: 1}")},
		{"hosts.yaml": "", "a/more.yaml": balancer("b3", "198.20.0.13")}, // services gone
		nil,
	}
	var ld Loader
	for i, over := range revisions {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			sameAsLoad(t, &ld, baseTree(t, over))
			sameAsLoad(t, &ld, hashFS{baseTree(t, over), map[string]int{}})
		})
	}
}

// TestLoaderReadsOnlyChangedFiles: on a file system that knows its hashes,
// a Loader opens only the files whose content changed.
func TestLoaderReadsOnlyChangedFiles(t *testing.T) {
	var ld Loader
	first := hashFS{baseTree(t, map[string]string{"more.yaml": balancer("b2", "198.20.0.12")}), map[string]int{}}
	if _, err := ld.Load(first); err != nil {
		t.Fatal(err)
	}
	if len(first.opened) != 3 {
		t.Fatalf("first load opened %v; want every file", first.opened)
	}
	next := hashFS{baseTree(t, map[string]string{"more.yaml": balancer("b2", "198.20.0.13")}), map[string]int{}}
	s, err := ld.Load(next)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{"more.yaml": 1}; !reflect.DeepEqual(next.opened, want) {
		t.Errorf("second load opened %v; want %v", next.opened, want)
	}
	if got := s.Balancer("b2").Frontend.Address.String(); got != "198.20.0.13" {
		t.Errorf("b2's frontend = %s; want the changed 198.20.0.13", got)
	}
}
