package agent

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
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
	if err := writeLastGood(dir, "rev1", tree); err != nil {
		t.Fatalf("saveLastGood: %v", err)
	}
	second := fstest.MapFS{"hosts/b.yaml": {Data: []byte("kind: Host\nname: b\n")}}
	if err := writeLastGood(dir, "rev2", second); err != nil {
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
	must(writeLastGood(state, "dir:abc", os.DirFS(src)))
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
