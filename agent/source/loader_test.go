package source

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"weir/spec"
)

// linkTreeFiles is a valid spec tree plus links of every kind the loader
// distinguishes. Keys ending in "@" are symlinks to the value.
var linkTreeFiles = map[string]string{
	"hosts/a.yaml":  "apiVersion: weir/v1\nkind: Host\nmetadata:\n  name: host-a\nspec:\n  address: 198.18.0.1\n  guests:\n    - name: web-1\n      address: 198.19.1.2\n      services: [frontend]\n    - name: orders-1\n      address: 198.19.1.3\n      services: [orders]\n",
	"lb/b.txt":      "apiVersion: weir/v1\nkind: Balancer\nmetadata:\n  name: fo\nspec:\n  source: frontend\n  target: orders\n  frontend:\n    address: 198.20.0.10\n    port: 80\n",
	"nested/c.yml":  "# empty\n",
	"via.yaml@":     "lb/b.txt",      // a spec-named link to a non-spec name
	"dirlink@":      "nested",        // a directory link (not followed by the walk)
	"through.yaml@": "dirlink/c.yml", // a link through a directory link
	"chain.yaml@":   "through.yaml",  // a link to a link
	"README.md":     "not a spec\n",
}

// loadOutcome runs the spec loader and renders what it decided.
func loadOutcome(fsys fs.FS) string {
	s, err := spec.Load(fsys)
	if err != nil {
		return "error: " + err.Error()
	}
	var names []string
	for _, h := range s.Hosts {
		names = append(names, "host "+h.Name)
	}
	for _, b := range s.Balancers {
		names = append(names, "balancer "+b.Name+" at "+b.Pos.String())
	}
	return strings.Join(names, ", ")
}

func writeLinkTree(t *testing.T, root string, extra map[string]string) {
	t.Helper()
	for name, v := range extra {
		if strings.HasSuffix(name, "@") {
			p := filepath.Join(root, strings.TrimSuffix(name, "@"))
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.Symlink(v, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		writeTree(t, root, map[string]string{name: v})
	}
}

// TestSnapshotLoadsLikeDirFS checks that the spec loader decides the same on
// a snapshot as on the real tree through os.DirFS — accepting in-tree links,
// refusing links that leave the tree — for both sources.
func TestSnapshotLoadsLikeDirFS(t *testing.T) {
	tests := []struct {
		name  string
		extra map[string]string
		want  string // substring of the outcome
	}{
		{"in-tree links", nil, "balancer fo at via.yaml:"},
		{"link leaving the tree", map[string]string{"escape.yaml@": "../../etc/passwd"}, "escape.yaml:1: symlink to ../../etc/passwd leaves the spec tree"},
		{"absolute link", map[string]string{"abs.yaml@": "/etc/hostname"}, "abs.yaml:1: symlink to /etc/hostname leaves the spec tree"},
		{"dangling link", map[string]string{"gone.yaml@": "nowhere.yaml"}, "gone.yaml:1: dangling symlink"},
		{"oversized file", map[string]string{"big.yaml": "#" + strings.Repeat("x", 1<<20+10) + "\n"}, "big.yaml:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{}
			for k, v := range linkTreeFiles {
				files[k] = v
			}
			for k, v := range tt.extra {
				files[k] = v
			}
			root := t.TempDir()
			writeLinkTree(t, root, files)
			want := loadOutcome(os.DirFS(root))
			if !strings.Contains(want, tt.want) {
				t.Fatalf("spec.Load(os.DirFS) = %q; want it to contain %q (test premise)", want, tt.want)
			}

			dirSnap, err := newDir(t, root).Latest(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got := loadOutcome(dirSnap.FS); got != want {
				t.Errorf("spec.Load(Dir snapshot) = %q; want %q as through os.DirFS", got, want)
			}

			f := newGitFixture(t)
			for k, v := range files {
				if strings.HasSuffix(k, "@") {
					p := filepath.Join(f.work.dir, "specs", strings.TrimSuffix(k, "@"))
					os.MkdirAll(filepath.Dir(p), 0o755)
					if err := os.Symlink(v, p); err != nil {
						t.Fatal(err)
					}
				} else {
					writeTree(t, filepath.Join(f.work.dir, "specs"), map[string]string{k: v})
				}
			}
			f.work.commit("tree", nil)
			f.work.push(false)
			gitSnap := latest(t, f.source(t, nil))
			if got := loadOutcome(gitSnap.FS); got != want {
				t.Errorf("spec.Load(Git snapshot) = %q; want %q as through os.DirFS", got, want)
			}
		})
	}
}
