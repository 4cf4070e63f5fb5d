package source

import (
	"context"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
)

const (
	hostYAML     = "apiVersion: weir/v1\nkind: Host\nmetadata:\n  name: host-a\n"
	balancerYAML = "apiVersion: weir/v1\nkind: Balancer\nmetadata:\n  name: b\n"
)

// gitFixture is a bare repository behind a git daemon, a working clone that
// pushes to it, and a Git source following it.
type gitFixture struct {
	daemon *gitDaemon
	work   *workTree
	url    string
}

func newGitFixture(t *testing.T) *gitFixture {
	t.Helper()
	d := startGitDaemon(t)
	d.newBare("specs.git")
	url := d.url("specs.git")
	return &gitFixture{daemon: d, work: newWorkTree(t, d.env, url), url: url}
}

func (f *gitFixture) source(t *testing.T, mod func(*GitConfig)) *Git {
	t.Helper()
	cfg := GitConfig{URL: f.url, Path: "specs", StateDir: t.TempDir(), Poll: time.Hour}
	if mod != nil {
		mod(&cfg)
	}
	g, err := NewGit(cfg)
	if err != nil {
		t.Fatalf("NewGit: %v", err)
	}
	return g
}

// latest calls Latest and fails the test on error.
func latest(t *testing.T, s Source) Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	snap, err := s.Latest(ctx)
	if err != nil {
		t.Fatalf("Latest: %v", err)
	}
	return snap
}

// latestErr calls Latest and fails the test unless it fails with kind.
func latestErr(t *testing.T, s Source, kind error, wantMsg string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	snap, err := s.Latest(ctx)
	if err == nil {
		t.Fatalf("Latest = %s, nil; want an error matching %v", snap.Revision, kind)
	}
	if !errors.Is(err, kind) {
		t.Fatalf("Latest error = %v; want errors.Is(err, %v)", err, kind)
	}
	if !strings.Contains(err.Error(), wantMsg) {
		t.Fatalf("Latest error = %q; want it to contain %q", err, wantMsg)
	}
	if snap.FS != nil || snap.Revision != "" {
		t.Fatalf("Latest returned snapshot %q with an error", snap.Revision)
	}
	t.Logf("Latest error: %v", err)
	return err
}

func TestGitCloneFollowAndCheckout(t *testing.T) {
	f := newGitFixture(t)
	h0 := f.work.commit("zero", map[string]string{"specs/old.yaml": hostYAML})
	h1 := f.work.commit("first", map[string]string{"specs/hosts.yaml": hostYAML, "README.md": "not a spec", "specs/old.yaml": ""})
	f.work.push(false)

	g := f.source(t, nil)
	snap := latest(t, g)
	if snap.Revision != h1 {
		t.Fatalf("Latest().Revision = %s; want %s", snap.Revision, h1)
	}
	if got, want := readFS(t, snap.FS), map[string]string{"hosts.yaml": hostYAML}; !maps.Equal(got, want) {
		t.Fatalf("Latest().FS = %v; want %v", got, want)
	}
	if st := g.Stats(); st.Fetches != 1 || st.Lists != 1 {
		t.Fatalf("after first Latest: Stats = %+v; want 1 fetch, 1 list", st)
	}

	// Nothing moved: one listing, no fetch, the same snapshot.
	if again := latest(t, g); again.Revision != h1 {
		t.Fatalf("Latest() again = %s; want %s", again.Revision, h1)
	}
	if st := g.Stats(); st.Fetches != 1 || st.Lists != 2 {
		t.Fatalf("after unchanged Latest: Stats = %+v; want 1 fetch, 2 lists", st)
	}

	h2 := f.work.commit("second", map[string]string{"specs/hosts.yaml": hostYAML + "# v2\n", "specs/lb/b.yaml": balancerYAML})
	f.work.push(false)
	snap = latest(t, g)
	if snap.Revision != h2 {
		t.Fatalf("after push Latest().Revision = %s; want %s", snap.Revision, h2)
	}
	want := map[string]string{"hosts.yaml": hostYAML + "# v2\n", "lb/b.yaml": balancerYAML}
	if got := readFS(t, snap.FS); !maps.Equal(got, want) {
		t.Fatalf("after push Latest().FS = %v; want %v", got, want)
	}

	h3 := f.work.commit("third", map[string]string{"specs/lb/b.yaml": ""})
	f.work.push(false)
	snap3 := latest(t, g)
	if snap3.Revision != h3 {
		t.Fatalf("after delete Latest().Revision = %s; want %s", snap3.Revision, h3)
	}
	if got, want := readFS(t, snap3.FS), map[string]string{"hosts.yaml": hostYAML + "# v2\n"}; !maps.Equal(got, want) {
		t.Fatalf("after delete Latest().FS = %v; want %v", got, want)
	}
	// The previous snapshot is immutable: the checkout of h3 did not touch it.
	if got := readFS(t, snap.FS); !maps.Equal(got, map[string]string{"hosts.yaml": hostYAML + "# v2\n", "lb/b.yaml": balancerYAML}) {
		t.Fatalf("snapshot of %s changed after the next checkout: %v", h2, got)
	}

	// The worktree under the state dir shows the applied commit.
	if _, err := os.Stat(filepath.Join(g.RepoDir(), "specs", "lb", "b.yaml")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("worktree still has specs/lb/b.yaml after it was deleted (stat err %v)", err)
	}
	if b, err := os.ReadFile(filepath.Join(g.RepoDir(), "specs", "hosts.yaml")); err != nil || string(b) != hostYAML+"# v2\n" {
		t.Errorf("worktree specs/hosts.yaml = %q, %v; want the committed content", b, err)
	}
	repo, err := git.PlainOpen(g.RepoDir())
	if err != nil {
		t.Fatal(err)
	}
	if head, err := repo.Head(); err != nil || head.Hash().String() != h3 {
		t.Errorf("clone HEAD = %v, %v; want %s", head, err, h3)
	}
	// Depth 1: the parent of the first fetched commit never reached the clone.
	if _, err := repo.CommitObject(plumbing.NewHash(h0)); err == nil {
		t.Errorf("clone holds commit %s from before the first fetch; want a shallow clone", h0[:7])
	}
}

func TestGitReusesStateDir(t *testing.T) {
	f := newGitFixture(t)
	h1 := f.work.commit("first", map[string]string{"specs/hosts.yaml": hostYAML})
	f.work.push(false)
	state := t.TempDir()
	first := f.source(t, func(c *GitConfig) { c.StateDir = state })
	latest(t, first)

	// A restart with the same state dir finds the commit in the clone.
	second := f.source(t, func(c *GitConfig) { c.StateDir = state })
	if snap := latest(t, second); snap.Revision != h1 {
		t.Fatalf("restarted Latest().Revision = %s; want %s", snap.Revision, h1)
	}
	if st := second.Stats(); st.Fetches != 0 {
		t.Errorf("restarted source fetched %d times; want 0 (commit already in the clone)", st.Fetches)
	}

	// Another URL in the same state dir: the clone is replaced.
	f.daemon.newBare("other.git")
	other := newWorkTree(t, f.daemon.env, f.daemon.url("other.git"))
	h2 := other.commit("other", map[string]string{"specs/x.yaml": balancerYAML})
	other.push(false)
	third := f.source(t, func(c *GitConfig) { c.StateDir = state; c.URL = f.daemon.url("other.git") })
	snap := latest(t, third)
	if snap.Revision != h2 {
		t.Fatalf("Latest() after URL change = %s; want %s", snap.Revision, h2)
	}
	if got, want := readFS(t, snap.FS), map[string]string{"x.yaml": balancerYAML}; !maps.Equal(got, want) {
		t.Fatalf("Latest().FS after URL change = %v; want %v", got, want)
	}
}

func TestGitWatchNoticesPush(t *testing.T) {
	f := newGitFixture(t)
	f.work.commit("first", map[string]string{"specs/hosts.yaml": hostYAML})
	f.work.push(false)
	g := f.source(t, func(c *GitConfig) { c.Poll = 50 * time.Millisecond })
	latest(t, g)
	c := watch(t, g)
	// Polls that find nothing new do not notify.
	waitFor(t, 5*time.Second, "three polls", func() bool { return g.Stats().Lists >= 4 })
	if n := c.n(); n != 0 {
		t.Fatalf("Watch notified %d times with nothing pushed; want 0", n)
	}

	h2 := f.work.commit("second", map[string]string{"specs/hosts.yaml": hostYAML + "# v2\n"})
	pushed := time.Now()
	f.work.push(false)
	waitFor(t, 5*time.Second, "Watch to notice the push", func() bool { return c.n() >= 1 })
	t.Logf("push to changed(): %v (poll 50ms)", c.last().Sub(pushed))
	if snap := latest(t, g); snap.Revision != h2 {
		t.Fatalf("Latest() after notification = %s; want %s", snap.Revision, h2)
	}
	// Once Latest has the new commit, polling stays quiet again.
	lists := g.Stats().Lists
	waitFor(t, 5*time.Second, "three more polls", func() bool { return g.Stats().Lists >= lists+3 })
	if n := c.n(); n != 1 {
		t.Fatalf("Watch notified %d times for one push; want 1", n)
	}
}

func TestGitForcePush(t *testing.T) {
	f := newGitFixture(t)
	h1 := f.work.commit("first", map[string]string{"specs/hosts.yaml": hostYAML})
	f.work.commit("second", map[string]string{"specs/b.yaml": balancerYAML})
	f.work.push(false)
	g := f.source(t, nil)
	latest(t, g)

	// Rewrite history: drop "second", commit something else on top of h1.
	f.work.git("reset", "--quiet", "--hard", h1)
	h3 := f.work.commit("rewritten", map[string]string{"specs/c.yaml": balancerYAML + "# c\n"})
	f.work.push(true)

	snap := latest(t, g)
	if snap.Revision != h3 {
		t.Fatalf("Latest() after force push = %s; want %s", snap.Revision, h3)
	}
	want := map[string]string{"hosts.yaml": hostYAML, "c.yaml": balancerYAML + "# c\n"}
	if got := readFS(t, snap.FS); !maps.Equal(got, want) {
		t.Fatalf("Latest().FS after force push = %v; want %v", got, want)
	}
	if _, err := os.Stat(filepath.Join(g.RepoDir(), "specs", "b.yaml")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("worktree keeps specs/b.yaml of the discarded commit (stat err %v)", err)
	}
}

func TestGitBranchDeleted(t *testing.T) {
	f := newGitFixture(t)
	h1 := f.work.commit("first", map[string]string{"specs/hosts.yaml": hostYAML})
	f.work.push(false)
	g := f.source(t, nil)
	latest(t, g)

	f.work.git("push", "--quiet", "origin", "--delete", "main")
	latestErr(t, g, ErrBranchNotFound, `branch "main" not found on `+f.url)
	last, ok := g.Last()
	if !ok || last.Revision != h1 {
		t.Fatalf("Last() after the branch was deleted = %q, %v; want %s", last.Revision, ok, h1)
	}
	if got, want := readFS(t, last.FS), map[string]string{"hosts.yaml": hostYAML}; !maps.Equal(got, want) {
		t.Fatalf("Last().FS = %v; want %v", got, want)
	}
	if st := g.Stats(); !strings.Contains(st.LastError, "not found") {
		t.Errorf("Stats().LastError = %q; want the branch error", st.LastError)
	}

	// The branch comes back: Latest works again.
	f.work.push(false)
	if snap := latest(t, g); snap.Revision != h1 {
		t.Fatalf("Latest() after re-push = %s; want %s", snap.Revision, h1)
	}
	if st := g.Stats(); st.LastError != "" {
		t.Errorf("Stats().LastError after recovery = %q; want empty", st.LastError)
	}

	// A branch that never existed, on first clone.
	other := f.source(t, func(c *GitConfig) { c.Branch = "release" })
	latestErr(t, other, ErrBranchNotFound, `branch "release" not found on `+f.url)
}

func TestGitEmptyRepository(t *testing.T) {
	f := newGitFixture(t)
	g := f.source(t, nil)
	latestErr(t, g, ErrBranchNotFound, `branch "main" not found`)
}

func TestGitUnreachable(t *testing.T) {
	f := newGitFixture(t)
	h1 := f.work.commit("first", map[string]string{"specs/hosts.yaml": hostYAML})
	f.work.push(false)
	g := f.source(t, func(c *GitConfig) {
		c.Poll = 50 * time.Millisecond
		c.Backoff = Backoff{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond}
	})
	latest(t, g)
	c := watch(t, g)

	f.daemon.stop()
	waitFor(t, 5*time.Second, "Watch to report the server going away", func() bool { return c.n() >= 1 })
	latestErr(t, g, ErrUnreachable, "git server "+f.url+" unreachable")
	if last, ok := g.Last(); !ok || last.Revision != h1 {
		t.Fatalf("Last() while unreachable = %q, %v; want %s", last.Revision, ok, h1)
	}

	// Recovery: the server comes back with a new commit.
	f.daemon.start()
	h2 := f.work.commit("second", map[string]string{"specs/hosts.yaml": hostYAML + "# v2\n"})
	f.work.push(false)
	waitFor(t, 5*time.Second, "Watch to report the server back", func() bool { return c.n() >= 2 })
	if snap := latest(t, g); snap.Revision != h2 {
		t.Fatalf("Latest() after recovery = %s; want %s", snap.Revision, h2)
	}

	// A server that is down from the start: the first clone fails cleanly and
	// a later one succeeds in the same state dir.
	f.daemon.stop()
	state := t.TempDir()
	fresh := f.source(t, func(c *GitConfig) { c.StateDir = state })
	latestErr(t, fresh, ErrUnreachable, "unreachable")
	f.daemon.start()
	if snap := latest(t, fresh); snap.Revision != h2 {
		t.Fatalf("Latest() of a fresh clone after recovery = %s; want %s", snap.Revision, h2)
	}
}

func TestGitNotRepository(t *testing.T) {
	d := startGitDaemon(t)
	if err := os.Mkdir(filepath.Join(d.base, "plain"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, url := range []string{
		d.url("plain"),
		d.url("missing.git"),
		"file://" + filepath.Join(d.base, "plain"),
		"file://" + filepath.Join(d.base, "missing.git"),
	} {
		t.Run(url, func(t *testing.T) {
			g, err := NewGit(GitConfig{URL: url, StateDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			latestErr(t, g, ErrNotRepository, url+" is not a git repository")
		})
	}
}

func TestGitMissingPath(t *testing.T) {
	f := newGitFixture(t)
	h1 := f.work.commit("first", map[string]string{"specs/hosts.yaml": hostYAML, "notes.yaml": "x: 1\n"})
	f.work.push(false)

	tests := []struct {
		path string
		want string
	}{
		{"nope", `path "nope" not found at commit ` + h1[:7] + " of " + f.url},
		{"specs/deeper", `path "specs/deeper" not found at commit ` + h1[:7]},
		{"notes.yaml", `path "notes.yaml" at commit ` + h1[:7] + " of " + f.url + " is not a directory"},
	}
	for _, tt := range tests {
		g := f.source(t, func(c *GitConfig) { c.Path = tt.path })
		latestErr(t, g, ErrPathNotFound, tt.want)
		if _, ok := g.Last(); ok {
			t.Errorf("Last() has a snapshot after a missing path %q", tt.path)
		}
	}

	// The path appears in a later commit: the same source picks it up.
	g := f.source(t, func(c *GitConfig) { c.Path = "nope" })
	latestErr(t, g, ErrPathNotFound, `path "nope" not found`)
	h2 := f.work.commit("add nope", map[string]string{"nope/a.yaml": hostYAML})
	f.work.push(false)
	snap := latest(t, g)
	if snap.Revision != h2 {
		t.Fatalf("Latest() after adding the path = %s; want %s", snap.Revision, h2)
	}
	if got, want := readFS(t, snap.FS), map[string]string{"a.yaml": hostYAML}; !maps.Equal(got, want) {
		t.Fatalf("Latest().FS = %v; want %v", got, want)
	}
	// Root path with "./" normalizes to the whole repository.
	root := f.source(t, func(c *GitConfig) { c.Path = "./" })
	want := map[string]string{"specs/hosts.yaml": hostYAML, "notes.yaml": "x: 1\n", "nope/a.yaml": hostYAML}
	if got := readFS(t, latest(t, root).FS); !maps.Equal(got, want) {
		t.Fatalf("Latest().FS of the root = %v; want %v", got, want)
	}
}

func TestGitFileURL(t *testing.T) {
	requireTools(t, "git")
	env := gitEnv(t, t.TempDir())
	bare := filepath.Join(t.TempDir(), "specs.git")
	run(t, "/", env, "git", "init", "--quiet", "--bare", "--initial-branch=main", bare)
	url := "file://" + bare
	w := newWorkTree(t, env, url)
	h1 := w.commit("first", map[string]string{"hosts.yaml": hostYAML})
	w.push(false)

	g, err := NewGit(GitConfig{URL: url, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if snap := latest(t, g); snap.Revision != h1 {
		t.Fatalf("Latest() = %s; want %s", snap.Revision, h1)
	}
	h2 := w.commit("second", map[string]string{"b.yaml": balancerYAML})
	w.push(false)
	snap := latest(t, g)
	if snap.Revision != h2 {
		t.Fatalf("Latest() after push = %s; want %s", snap.Revision, h2)
	}
	if got, want := readFS(t, snap.FS), map[string]string{"hosts.yaml": hostYAML, "b.yaml": balancerYAML}; !maps.Equal(got, want) {
		t.Fatalf("Latest().FS = %v; want %v", got, want)
	}
}

func TestGitSnapshotFiltersAndSymlinks(t *testing.T) {
	f := newGitFixture(t)
	f.work.commit("first", map[string]string{
		"specs/hosts.yaml":          hostYAML,
		"specs/b.yml":               balancerYAML,
		"specs/.hidden/x.yaml":      "hidden: true\n",
		"specs/.dot.yaml":           "hidden: true\n",
		"specs/README.md":           "docs\n",
		"specs/big/huge.yaml":       strings.Repeat("#", MaxPassThrough+100),
		"specs/nested/deep/c.yaml":  balancerYAML,
		"specs/nested/deep/c.json":  "{}",
		"specs/nested/.git-ish/y.y": "x",
	})
	for name, target := range map[string]string{"specs/link.yaml": "hosts.yaml", "specs/escape.yaml": "../../../etc/passwd"} {
		if err := os.Symlink(target, filepath.Join(f.work.dir, filepath.FromSlash(name))); err != nil {
			t.Fatal(err)
		}
	}
	f.work.commit("links", nil)
	f.work.push(false)
	snap := latest(t, f.source(t, nil))

	checkSnapshotTree(t, snap.FS)
}

// checkSymlinksAndBigFile asserts what the spec loader relies on: links are
// visible as links with their target, an in-tree link opens, and an oversized
// file keeps more than 1 MiB so its size check fires.
// checkSnapshotTree asserts the entries of a snapshot of the links fixture
// tree (same for the Git and directory sources), then its links and big file.
func checkSnapshotTree(t *testing.T, fsys fs.FS) {
	t.Helper()
	var got []string
	fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			got = append(got, p+":"+d.Type().String())
		}
		return nil
	})
	want := []string{"b.yml:----------", "big/huge.yaml:----------", "escape.yaml:L---------", "hosts.yaml:----------", "link.yaml:L---------", "nested/deep/c.yaml:----------"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("snapshot entries = %v; want %v", got, want)
	}
	checkSymlinksAndBigFile(t, fsys)
}

func checkSymlinksAndBigFile(t *testing.T, fsys fs.FS) {
	t.Helper()
	if target, err := fs.ReadLink(fsys, "escape.yaml"); err != nil || target != "../../../etc/passwd" {
		t.Errorf("ReadLink(escape.yaml) = %q, %v; want ../../../etc/passwd", target, err)
	}
	if _, err := fs.ReadFile(fsys, "escape.yaml"); err == nil {
		t.Errorf("ReadFile(escape.yaml) succeeded; a link leaving the tree must not open")
	}
	if b, err := fs.ReadFile(fsys, "link.yaml"); err != nil || string(b) != hostYAML {
		t.Errorf("ReadFile(link.yaml) = %q, %v; want the content of hosts.yaml", b, err)
	}
	fi, err := fs.Stat(fsys, "big/huge.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != MaxPassThrough+100 {
		t.Errorf("Stat(big/huge.yaml).Size() = %d; want the real size %d", fi.Size(), MaxPassThrough+100)
	}
	if b, err := fs.ReadFile(fsys, "big/huge.yaml"); err != nil || len(b) != MaxPassThrough {
		t.Errorf("ReadFile(big/huge.yaml) = %d bytes, %v; want %d (cut just over 1 MiB)", len(b), err, MaxPassThrough)
	}
}

func TestNewGitConfigErrors(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.asc")
	os.WriteFile(junk, []byte("not a key"), 0o644)
	tests := []struct {
		name string
		cfg  GitConfig
		want string
	}{
		{"no url", GitConfig{StateDir: dir}, "no repository URL"},
		{"no state dir", GitConfig{URL: "git://h/r"}, "no state directory"},
		{"path leaves repo", GitConfig{URL: "git://h/r", StateDir: dir, Path: "../x"}, `spec path "../x" must be relative`},
		{"absolute path", GitConfig{URL: "git://h/r", StateDir: dir, Path: "/etc"}, "must be relative"},
		{"bad branch", GitConfig{URL: "git://h/r", StateDir: dir, Branch: "a b"}, `invalid branch name "a b"`},
		{"ssh key on git url", GitConfig{URL: "git://h/r", StateDir: dir, SSHKeyFile: junk}, "not an ssh URL"},
		{"password on ssh url", GitConfig{URL: "git@h:r.git", StateDir: dir, PasswordFile: junk}, "not an http(s) URL"},
		{"missing ssh key", GitConfig{URL: "ssh://git@h/r", StateDir: dir, SSHKeyFile: filepath.Join(dir, "nope")}, "reading ssh key"},
		{"missing password file", GitConfig{URL: "https://h/r", StateDir: dir, PasswordFile: filepath.Join(dir, "nope")}, "reading password file"},
		{"missing verify keys", GitConfig{URL: "git://h/r", StateDir: dir, VerifyKeysFile: filepath.Join(dir, "nope")}, "reading verify keys"},
		{"junk verify keys", GitConfig{URL: "git://h/r", StateDir: dir, VerifyKeysFile: junk}, "reading verify keys " + junk},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewGit(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewGit(%+v) error = %v; want it to contain %q", tt.cfg, err, tt.want)
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://weir:tok3n@git.example/specs.git", "https://weir:xxxxx@git.example/specs.git"},
		{"https://weir@git.example/specs.git", "https://weir@git.example/specs.git"},
		{"git://127.0.0.1:9418/specs.git", "git://127.0.0.1:9418/specs.git"},
		{"git@github.com:org/specs.git", "git@github.com:org/specs.git"},
		{"file:///srv/specs.git", "file:///srv/specs.git"},
		{"weir:tok3n@git.example:org/specs.git", "weir:xxxxx@git.example:org/specs.git"},
		{"http://weir:tok3n@git.example:bad/specs.git", "http:xxxxx@git.example:bad/specs.git"},
	}
	for _, tt := range tests {
		if got := RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
	// And in a real error message.
	g, err := NewGit(GitConfig{URL: "http://weir:tok3n@127.0.0.1:1/specs.git", StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	err = latestErr(t, g, ErrUnreachable, "http://127.0.0.1:1/specs.git unreachable")
	if strings.Contains(err.Error(), "tok3n") {
		t.Fatalf("error %q leaks the token", err)
	}
}

// TestGitStoppedServer: a server that accepts connections but never answers
// (git daemon stopped with SIGSTOP) costs a listing its Timeout, in Latest
// and in Watch, instead of hanging them; it answers again after SIGCONT.
func TestGitStoppedServer(t *testing.T) {
	f := newGitFixture(t)
	h1 := f.work.commit("first", map[string]string{"specs/hosts.yaml": hostYAML})
	f.work.push(false)
	g := f.source(t, func(c *GitConfig) {
		c.Timeout = 500 * time.Millisecond
		c.Poll = 50 * time.Millisecond
		c.Backoff = Backoff{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond}
	})
	latest(t, g)
	c := watch(t, g)

	f.daemon.signal(syscall.SIGSTOP)
	defer f.daemon.signal(syscall.SIGCONT)
	start := time.Now()
	latestErr(t, g, ErrUnreachable, "got no answer within 500ms")
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Latest against a stopped server took %v; want about its 500ms timeout", took)
	}
	// Latest reported it already; Watch goes on listing, each listing cut
	// off by the timeout.
	lists := g.Stats().Lists
	waitFor(t, 5*time.Second, "Watch to keep listing", func() bool { return g.Stats().Lists >= lists+2 })

	f.daemon.signal(syscall.SIGCONT)
	waitFor(t, 10*time.Second, "Watch to report the server back", func() bool { return c.n() >= 1 })
	if snap := latest(t, g); snap.Revision != h1 {
		t.Fatalf("Latest() after SIGCONT = %s; want %s", snap.Revision, h1)
	}
}

// TestGitSnapshotReusesBlobs: a new commit's snapshot takes the files whose
// blobs the previous snapshot read from there (the same bytes, not a new
// read) and reads only the changed ones; both snapshots stay intact.
func TestGitSnapshotReusesBlobs(t *testing.T) {
	f := newGitFixture(t)
	f.work.commit("first", map[string]string{"specs/hosts.yaml": hostYAML, "specs/lb/b.yaml": balancerYAML})
	f.work.push(false)
	g := f.source(t, nil)
	first := latest(t, g)
	f.work.commit("second", map[string]string{"specs/lb/b.yaml": balancerYAML + "# v2\n", "specs/copy.yaml": hostYAML})
	f.work.push(false)
	second := latest(t, g)
	data := func(s Snapshot, name string) []byte { return s.FS.(memFS).nodes[name].data }
	if &data(first, "hosts.yaml")[0] != &data(second, "hosts.yaml")[0] || &data(first, "hosts.yaml")[0] != &data(second, "copy.yaml")[0] {
		t.Errorf("the unchanged blob of hosts.yaml was read again; want its bytes shared")
	}
	if got := readFS(t, second.FS); !maps.Equal(got, map[string]string{"hosts.yaml": hostYAML, "copy.yaml": hostYAML, "lb/b.yaml": balancerYAML + "# v2\n"}) {
		t.Errorf("second snapshot = %v", got)
	}
	if got := readFS(t, first.FS); !maps.Equal(got, map[string]string{"hosts.yaml": hostYAML, "lb/b.yaml": balancerYAML}) {
		t.Errorf("first snapshot changed: %v", got)
	}
}
