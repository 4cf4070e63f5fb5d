package spec

import (
	"fmt"
	"io/fs"
	"testing"
	"testing/fstest"
)

func TestIsSpecFile(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"hosts.yaml", true},
		{"hosts.yml", true},
		{"dir/sub/hosts.yaml", true},
		{".yaml", true}, // by its extension; hidden, so skipped (IsHidden)
		{"hosts.YAML", false},
		{"hosts.Yml", false},
		{"hosts.yaml.orig", false},
		{"hosts.yaml~", false},
		{"hosts.yamll", false},
		{"hosts.json", false},
		{"yaml", false},
		{"hosts.yaml/", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := IsSpecFile(tt.name); got != tt.want {
			t.Errorf("IsSpecFile(%q) = %v; want %v", tt.name, got, tt.want)
		}
	}
}

func TestIsHidden(t *testing.T) {
	tests := []struct {
		elem string
		want bool
	}{
		{".git", true},
		{".gitlab-ci.yml", true},
		{".#hosts.yaml", true},
		{".hosts.yaml.swp", true},
		{"...", true},
		{".", false},
		{"..", false},
		{"hosts.yaml", false},
		{"a.b", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := IsHidden(tt.elem); got != tt.want {
			t.Errorf("IsHidden(%q) = %v; want %v", tt.elem, got, tt.want)
		}
	}
}

func TestIsHiddenPath(t *testing.T) {
	tests := []struct {
		path string
		want bool
	}{
		{"hosts.yaml", false},
		{"a/b/hosts.yaml", false},
		{".", false},
		{"./a/../b.yaml", false},
		{".git/config.yaml", true},
		{"sub/.hidden/x.yaml", true},
		{"sub/.x.yaml", true},
	}
	for _, tt := range tests {
		if got := IsHiddenPath(tt.path); got != tt.want {
			t.Errorf("IsHiddenPath(%q) = %v; want %v", tt.path, got, tt.want)
		}
	}
}

// linkChain returns links l0 → l1 → … → l(n-1) → file.yaml.
func linkChain(n int) fstest.MapFS {
	fsys := fstest.MapFS{"file.yaml": {Data: []byte("x")}}
	for i := range n {
		target := fmt.Sprintf("l%d", i+1)
		if i == n-1 {
			target = "file.yaml"
		}
		fsys[fmt.Sprintf("l%d", i)] = &fstest.MapFile{Data: []byte(target), Mode: fs.ModeSymlink}
	}
	return fsys
}

func TestResolveInside(t *testing.T) {
	link := func(target string) *fstest.MapFile {
		return &fstest.MapFile{Data: []byte(target), Mode: fs.ModeSymlink}
	}
	tree := fstest.MapFS{
		"hosts.yaml":       {Data: []byte("h")},
		"sub/b.txt":        {Data: []byte("b")},
		"sub/c.yml":        {Data: []byte("c")},
		"via.yaml":         link("sub/b.txt"),
		"dirlink":          link("sub"),
		"through.yaml":     link("dirlink/c.yml"),
		"chain.yaml":       link("through.yaml"),
		"sub/up.yaml":      link("../hosts.yaml"),
		"dot.yaml":         link("./sub/./c.yml"),
		"here":             link("."),
		"up":               link(".."),
		"out.yaml":         link("../outside.yaml"),
		"back.yaml":        link("../specs/hosts.yaml"),
		"abs.yaml":         link("/etc/passwd"),
		"backslash.yaml":   link(`\etc\passwd`),
		"viaup.yaml":       link("up/outside.yaml"),
		"gone.yaml":        link("nowhere.yaml"),
		"gonedir.yaml":     link("dirlink/nowhere.yaml"),
		"loop.yaml":        link("loop.yaml"),
		"pingpong.yaml":    link("pong.yaml"),
		"pong.yaml":        link("pingpong.yaml"),
		"sub/deep/d.yaml":  link("../../via.yaml"),
		"first-leaks.yaml": link("chain-out.yaml"),
		"chain-out.yaml":   link("/abs"),
	}
	tests := []struct {
		name, want, err string
	}{
		{name: "hosts.yaml", want: "hosts.yaml"},
		{name: "sub/b.txt", want: "sub/b.txt"},
		{name: "via.yaml", want: "sub/b.txt"},
		{name: "through.yaml", want: "sub/c.yml"},
		{name: "chain.yaml", want: "sub/c.yml"},
		{name: "sub/up.yaml", want: "hosts.yaml"},
		{name: "dot.yaml", want: "sub/c.yml"},
		{name: "dirlink", want: "sub"},
		{name: "here", want: "."},
		{name: "sub/deep/d.yaml", want: "sub/b.txt"},
		{name: "up", err: "symlink to .. leaves the spec tree"},
		{name: "out.yaml", err: "symlink to ../outside.yaml leaves the spec tree"},
		{name: "back.yaml", err: "symlink to ../specs/hosts.yaml leaves the spec tree"},
		{name: "abs.yaml", err: "symlink to /etc/passwd leaves the spec tree"},
		{name: "backslash.yaml", err: `symlink to \etc\passwd leaves the spec tree`},
		{name: "viaup.yaml", err: "symlink to up/outside.yaml leaves the spec tree"},
		{name: "first-leaks.yaml", err: "symlink to chain-out.yaml leaves the spec tree"},
		{name: "gone.yaml", err: "dangling symlink to nowhere.yaml: nowhere.yaml does not exist"},
		{name: "gonedir.yaml", err: "dangling symlink to dirlink/nowhere.yaml: sub/nowhere.yaml does not exist"},
		{name: "loop.yaml", err: "symlink to loop.yaml: too many levels of symlinks"},
		{name: "pingpong.yaml", err: "symlink to pong.yaml: too many levels of symlinks"},
	}
	for _, tt := range tests {
		got, err := ResolveInside(tree, tt.name)
		gotErr := ""
		if err != nil {
			gotErr = err.Error()
		}
		if got != tt.want || gotErr != tt.err {
			t.Errorf("ResolveInside(%q) = %q, %q; want %q, %q", tt.name, got, gotErr, tt.want, tt.err)
		}
	}
}

func TestResolveInsideHops(t *testing.T) {
	if got, err := ResolveInside(linkChain(maxSymlinkHops), "l0"); got != "file.yaml" || err != nil {
		t.Errorf("ResolveInside(%d links) = %q, %v; want file.yaml", maxSymlinkHops, got, err)
	}
	want := "symlink to l1: too many levels of symlinks"
	if _, err := ResolveInside(linkChain(maxSymlinkHops+1), "l0"); err == nil || err.Error() != want {
		t.Errorf("ResolveInside(%d links) error = %v; want %q", maxSymlinkHops+1, err, want)
	}
}
