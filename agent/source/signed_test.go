package source

import (
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// gpgHome is a throwaway GnuPG home with generated signing keys.
type gpgHome struct {
	dir string
	env []string
}

// newGPGHome creates a GnuPG home under a short temporary path (gpg-agent's
// socket path must fit in a sockaddr) and stops its agent when the test ends.
func newGPGHome(t *testing.T, env []string) *gpgHome {
	t.Helper()
	requireTools(t, "gpg", "gpgconf")
	dir, err := os.MkdirTemp("", "wgpg")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o700)
	h := &gpgHome{dir: dir, env: append(append([]string(nil), env...), "GNUPGHOME="+dir)}
	t.Cleanup(func() {
		tryRun(dir, h.env, "gpgconf", "--kill", "gpg-agent")
		os.RemoveAll(dir)
	})
	return h
}

// genKey generates an ed25519 signing key for uid and returns its fingerprint.
func (h *gpgHome) genKey(t *testing.T, uid string) string {
	t.Helper()
	run(t, h.dir, h.env, "gpg", "--batch", "--quiet", "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never")
	out := run(t, h.dir, h.env, "gpg", "--batch", "--with-colons", "--list-keys", uid)
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Split(line, ":"); f[0] == "fpr" {
			return f[9]
		}
	}
	t.Fatalf("no fingerprint for %s in %q", uid, out)
	return ""
}

// export writes the armored public key fpr to a file and returns its path.
func (h *gpgHome) export(t *testing.T, fpr string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "keys.asc")
	if err := os.WriteFile(p, []byte(run(t, h.dir, h.env, "gpg", "--batch", "--armor", "--export", fpr)), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGitSignedCommits(t *testing.T) {
	f := newGitFixture(t)
	gpg := newGPGHome(t, f.daemon.env)
	trusted := gpg.genKey(t, "Weir Trusted <trusted@weir.test>")
	foreign := gpg.genKey(t, "Someone Else <else@weir.test>")
	f.work.env = gpg.env // git commit -S finds the keys through GNUPGHOME
	sign := func(fpr string) []string { return []string{"-S" + fpr} }

	h1 := f.work.commit("signed", map[string]string{"specs/hosts.yaml": hostYAML}, sign(trusted)...)
	f.work.push(false)
	g := f.source(t, func(c *GitConfig) { c.VerifyKeysFile = gpg.export(t, trusted) })
	if snap := latest(t, g); snap.Revision != h1 {
		t.Fatalf("Latest() of a commit signed by the trusted key = %s; want %s", snap.Revision, h1)
	}

	tests := []struct {
		name  string
		flags []string
		want  string
	}{
		{"unsigned", nil, " is not signed"},
		{"foreign key", sign(foreign), " is signed by unknown key " + foreign},
	}
	for _, tt := range tests {
		h := f.work.commit(tt.name, map[string]string{"specs/hosts.yaml": hostYAML + "# " + tt.name + "\n"}, tt.flags...)
		f.work.push(false)
		latestErr(t, g, ErrSignature, "commit "+h[:7]+tt.want)
		last, ok := g.Last()
		if !ok || last.Revision != h1 {
			t.Fatalf("Last() after refusing %s = %q; want %s", tt.name, last.Revision, h1)
		}
		// Refused commits are never checked out either.
		b, err := os.ReadFile(filepath.Join(g.RepoDir(), "specs", "hosts.yaml"))
		if err != nil || string(b) != hostYAML {
			t.Fatalf("worktree after refusing %s = %q, %v; want the last accepted content", tt.name, b, err)
		}
	}

	// A new commit by the trusted key is accepted again.
	h4 := f.work.commit("signed again", map[string]string{"specs/hosts.yaml": hostYAML + "# v4\n"}, sign(trusted)...)
	f.work.push(false)
	snap := latest(t, g)
	if snap.Revision != h4 {
		t.Fatalf("Latest() after a trusted commit = %s; want %s", snap.Revision, h4)
	}
	if got, want := readFS(t, snap.FS), map[string]string{"hosts.yaml": hostYAML + "# v4\n"}; !maps.Equal(got, want) {
		t.Fatalf("Latest().FS = %v; want %v", got, want)
	}

	// Without verify keys the same source config accepts anything.
	open := f.source(t, nil)
	h5 := f.work.commit("unsigned, unverified", map[string]string{"specs/hosts.yaml": hostYAML + "# v5\n"})
	f.work.push(false)
	if snap := latest(t, open); snap.Revision != h5 {
		t.Fatalf("Latest() without verify keys = %s; want %s", snap.Revision, h5)
	}
}
