package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// billionLaughs is the classic alias bomb: ten levels of nine aliases each,
// about 10^9 strings once expanded, in under a kilobyte.
func billionLaughs() string {
	var b strings.Builder
	b.WriteString("apiVersion: weir/v1\nkind: Host\nmetadata: {name: host-c}\nspec:\n  address: 198.18.0.3\n")
	b.WriteString(`  l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]` + "\n")
	for i := 1; i <= 9; i++ {
		fmt.Fprintf(&b, "  l%d: &l%d [", i, i)
		for j := range 9 {
			if j > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, "*l%d", i-1)
		}
		b.WriteString("]\n")
	}
	b.WriteString("  guests: *l9\n")
	return b.String()
}

// TestRuleHostileInput feeds inputs meant to exhaust time or memory and
// checks each is refused with a positioned error, fast and in little memory.
func TestRuleHostileInput(t *testing.T) {
	const budget = time.Second // "well under a second", with room for a loaded CI machine
	many := fstest.MapFS{}     // with testdata/base's two, MaxFiles+1 files
	for i := range MaxFiles - 1 {
		many[fmt.Sprintf("n%05d.txt", i)] = &fstest.MapFile{Data: []byte("x")}
	}
	atLimit := fstest.MapFS{}
	for i := range MaxFiles - 2 {
		atLimit[fmt.Sprintf("n%05d.txt", i)] = &fstest.MapFile{Data: []byte("x")}
	}
	cases := []struct {
		name  string
		files fstest.MapFS
		want  []string
		alloc uint64 // bytes one Load may allocate in all (not at once); 0: 16 MiB
	}{
		{"billion laughs", fstest.MapFS{"bomb.yaml": {Data: []byte(billionLaughs())}},
			[]string{`bomb.yaml:7: YAML aliases are not supported (*l0): write the value out`}, 0},
		{"a single harmless alias is refused too", fstest.MapFS{"x.yaml": {Data: []byte(y(`
apiVersion: weir/v1
kind: Host
metadata: {name: &n host-c}
spec:
  address: 198.18.0.3
  guests: [{name: *n, address: 198.19.3.2}]
`))}}, []string{`x.yaml:6: YAML aliases are not supported (*n): write the value out`}, 0},
		{"file over 1 MiB", fstest.MapFS{"big.yaml": {Data: bytes.Repeat([]byte("#"), MaxFileSize+1)}},
			[]string{`big.yaml:1: file is 1048577 bytes, over the 1048576-byte (1 MiB) limit`}, 0},
		{"file of exactly 1 MiB", fstest.MapFS{"big.yaml": {Data: append(bytes.Repeat([]byte("#"), MaxFileSize-1), '\n')}}, nil, 0},
		{"more than MaxFiles files", many,
			// balancers.yaml, hosts.yaml, n00000.txt, ...: n09998.txt is the one too many.
			[]string{fmt.Sprintf(`n09998.txt:1: spec tree has more than %d files; refusing to load it`, MaxFiles)}, 0},
		{"exactly MaxFiles files", atLimit, nil, 0},
		{"deep nesting", fstest.MapFS{"deep.yaml": {Data: []byte("a: " + strings.Repeat("[", 200000))}},
			[]string{`deep.yaml:1: malformed YAML: exceeded max depth of 10000`}, 0},
		// yaml.v3 allocates about 700 short-lived bytes per document.
		{"262144 empty documents", fstest.MapFS{"docs.yaml": {Data: bytes.Repeat([]byte("---\n"), MaxFileSize/4)}}, nil, 256 << 20},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fsys := baseTree(t, nil)
			for name, f := range tc.files {
				fsys[name] = f
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			got := errLines(t, fsys)
			elapsed := time.Since(start)
			runtime.ReadMemStats(&after)
			if !slices.Equal(got, tc.want) {
				t.Errorf("Load() errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if elapsed > budget {
				t.Errorf("Load took %v; want under %v", elapsed, budget)
			}
			memBudget := tc.alloc
			if memBudget == 0 {
				memBudget = 16 << 20
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > memBudget {
				t.Errorf("Load allocated %d bytes; want under %d", alloc, memBudget)
			}
		})
	}
}

// lyingFS reports every file as one byte long, as an fs.FS that does not
// know sizes might; Load must still stop reading at the limit.
type lyingFS struct{ fstest.MapFS }

func (l lyingFS) Open(name string) (fs.File, error) {
	f, err := l.MapFS.Open(name)
	if err != nil {
		return nil, err
	}
	return lyingFile{f}, nil
}

func (l lyingFS) Stat(name string) (fs.FileInfo, error) {
	f, err := l.Open(name)
	if err != nil {
		return nil, err
	}
	return f.Stat()
}

type lyingFile struct{ fs.File }

func (f lyingFile) Stat() (fs.FileInfo, error) {
	fi, err := f.File.Stat()
	if err != nil || fi.IsDir() {
		return fi, err
	}
	return lyingInfo{fi}, nil
}

type lyingInfo struct{ fs.FileInfo }

func (lyingInfo) Size() int64 { return 1 }

func TestRuleFileTooLargeWhenSizeIsUnknown(t *testing.T) {
	fsys := lyingFS{fstest.MapFS{"big.yaml": {Data: bytes.Repeat([]byte("#"), 3*MaxFileSize)}}}
	got := errLines(t, fsys)
	want := []string{`big.yaml:1: file is over the 1048576-byte (1 MiB) limit`}
	if !slices.Equal(got, want) {
		t.Errorf("Load() errors = %q; want %q", got, want)
	}
}

// writeTree writes files (path → content) under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRuleSymlinks(t *testing.T) {
	base := baseTree(t, nil)
	outside := y(`
apiVersion: weir/v1
kind: Host
metadata: {name: host-c}
spec: {address: 198.18.0.3}
`)
	cases := []struct {
		name  string
		links map[string]string // link path → target, inside the spec root
		want  []string
	}{
		{"relative target outside", map[string]string{"evil.yaml": "../outside.yaml"},
			[]string{`evil.yaml:1: symlink to ../outside.yaml leaves the spec tree`}},
		{"absolute target", map[string]string{"abs.yaml": "ABS"},
			[]string{`abs.yaml:1: symlink to ABS leaves the spec tree`}},
		{"through a directory symlink", map[string]string{"up": "..", "sub/via.yaml": "../up/outside.yaml"},
			[]string{`sub/via.yaml:1: symlink to ../up/outside.yaml leaves the spec tree`}},
		// Like os.Root, a path may not pass above the root even to come back.
		{"up and back in", map[string]string{"in.yaml": "../specs/.shared/host-c.yaml"},
			[]string{`in.yaml:1: symlink to ../specs/.shared/host-c.yaml leaves the spec tree`}},
		{"inside the tree is followed", map[string]string{"more.yaml": ".shared/host-c.yaml"}, nil},
		{"dangling", map[string]string{"gone.yaml": "nothing.yaml"},
			[]string{`gone.yaml:1: dangling symlink to nothing.yaml: nothing.yaml does not exist`}},
		{"loop", map[string]string{"loop.yaml": "loop.yaml"},
			[]string{`loop.yaml:1: symlink to loop.yaml: too many levels of symlinks`}},
		{"a directory symlink is not followed", map[string]string{"dir.yaml": ".shared", "hosts2": "."}, nil},
		{"only spec files are checked", map[string]string{"README.md": "../outside.yaml"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			top := t.TempDir()
			root := filepath.Join(top, "specs")
			files := map[string]string{"outside.yaml": outside, "specs/.shared/host-c.yaml": outside}
			for name, f := range base {
				files["specs/"+name] = string(f.Data)
			}
			writeTree(t, top, files)
			for link, target := range tc.links {
				if target == "ABS" {
					target = filepath.Join(top, "outside.yaml")
				}
				p := filepath.Join(root, filepath.FromSlash(link))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(target, p); err != nil {
					t.Fatal(err)
				}
			}
			var want []string
			for _, w := range tc.want {
				want = append(want, strings.ReplaceAll(w, "ABS", filepath.Join(top, "outside.yaml")))
			}
			s, err := LoadDir(root)
			var got []string
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if !slices.Equal(got, want) {
				t.Errorf("LoadDir() errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if err == nil && s.Host("host-c") == nil && tc.name != "a directory symlink is not followed" && tc.name != "only spec files are checked" {
				t.Errorf("host-c, loaded through the symlink, is missing: %+v", s.Hosts)
			}
		})
	}
}

func TestRuleNotRegularFile(t *testing.T) {
	// Reading a FIFO would block forever; it must be refused unread.
	root := t.TempDir()
	writeTree(t, root, map[string]string{"hosts.yaml": string(baseTree(t, nil)["hosts.yaml"].Data)})
	if err := mkfifo(filepath.Join(root, "pipe.yaml")); err != nil {
		t.Skipf("cannot make a FIFO here: %v", err)
	}
	done := make(chan struct{})
	var got []string
	go func() {
		defer close(done)
		if _, err := LoadDir(root); err != nil {
			got = strings.Split(err.Error(), "\n")
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("LoadDir blocked on a FIFO")
	}
	want := []string{`pipe.yaml:1: not a regular file (p---------)`}
	if !slices.Equal(got, want) {
		t.Errorf("LoadDir() errors = %q; want %q", got, want)
	}
}

func TestLoadDirIOErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f.yaml")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{filepath.Join(t.TempDir(), "missing"), file} {
		s, err := LoadDir(dir)
		var list ErrorList
		if err == nil || s != nil || errors.As(err, &list) {
			t.Errorf("LoadDir(%s) = %v, %v; want a plain I/O error", dir, s, err)
		}
	}
}

// TestHiddenAndOtherFilesAreSkipped checks that only *.yaml and *.yml (lower
// case) outside hidden directories and not hidden themselves are read.
func TestHiddenAndOtherFilesAreSkipped(t *testing.T) {
	bad := "this is: [not valid"
	fsys := baseTree(t, map[string]string{
		".git/config.yaml":      bad,
		".github/workflows.yml": bad,
		".gitlab-ci.yml":        bad,
		"notes.txt":             bad,
		"hosts.yaml.orig":       bad,
		"upper.YAML":            bad,
		"mixed.Yml":             bad,
		".x.yaml":               bad,
		"sub/.hidden/x.yaml":    bad,
		"sub/more.yml":          "apiVersion: weir/v1\nkind: Host\nmetadata: {name: host-c}\nspec: {address: 198.18.0.3}\n",
	})
	s, err := Load(fsys)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if s.Host("host-c") == nil {
		t.Errorf("sub/more.yml was not read: %+v", s.Hosts)
	}
}

// noLinkFS hides MapFS's ReadLink and Lstat.
type noLinkFS struct{ m fstest.MapFS }

func (n noLinkFS) Open(name string) (fs.File, error) { return n.m.Open(name) }

func TestRuleSymlinkWithoutReadLinkFS(t *testing.T) {
	fsys := baseTree(t, map[string]string{"x.yaml": "../outside.yaml"})
	fsys["x.yaml"].Mode = fs.ModeSymlink
	got := errLines(t, noLinkFS{fsys})
	want := []string{`x.yaml:1: symlink cannot be checked: the file system does not support reading links`}
	if !slices.Equal(got, want) {
		t.Errorf("Load() errors = %q; want %q", got, want)
	}
	// The same tree through MapFS, which reads links, is refused for what
	// the link does.
	got = errLines(t, fsys)
	want = []string{`x.yaml:1: symlink to ../outside.yaml leaves the spec tree`}
	if !slices.Equal(got, want) {
		t.Errorf("Load() errors = %q; want %q", got, want)
	}
}

// openCounter is an fs.FS that counts the files opened for reading.
type openCounter struct {
	fs.FS
	opened int
}

func (o *openCounter) Open(name string) (fs.File, error) {
	f, err := o.FS.Open(name)
	if err == nil {
		if fi, serr := f.Stat(); serr == nil && !fi.IsDir() {
			o.opened++
		}
	}
	return f, err
}

func (o *openCounter) Stat(name string) (fs.FileInfo, error) { return fs.Stat(o.FS, name) }

// TestRuleTreeSize: a tree whose spec files hold more than MaxTreeSize bytes
// together is refused at the file that crosses the limit, before any file
// is read; one just at the limit is read.
func TestRuleTreeSize(t *testing.T) {
	tree := func(n int) fstest.MapFS {
		files := fstest.MapFS{}
		data := bytes.Repeat([]byte("#"), MaxFileSize)
		for i := range n {
			files[fmt.Sprintf("f%02d.yaml", i)] = &fstest.MapFile{Data: data}
		}
		return files
	}
	over := &openCounter{FS: tree(MaxTreeSize/MaxFileSize + 1)}
	_, err := Load(over)
	want := fmt.Sprintf("f64.yaml:1: the spec tree's files hold over %d bytes (64 MiB) up to this one; refusing to load it", MaxTreeSize)
	if err == nil || err.Error() != want {
		t.Errorf("Load(65 files of 1 MiB) = %v; want %q", err, want)
	}
	if over.opened != 0 {
		t.Errorf("Load opened %d files of a tree over the limit; want none", over.opened)
	}
	at := &openCounter{FS: tree(MaxTreeSize / MaxFileSize)}
	if _, err := Load(at); err != nil || at.opened != MaxTreeSize/MaxFileSize {
		t.Errorf("Load(64 files of 1 MiB of comments) = %v after opening %d files; want every file read and no error", err, at.opened)
	}
}
