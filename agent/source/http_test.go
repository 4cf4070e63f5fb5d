package source

import (
	"crypto/subtle"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestGitHTTPBasicAuth serves a bare repository with the real
// `git http-backend` behind basic auth and follows it with a password file.
func TestGitHTTPBasicAuth(t *testing.T) {
	requireTools(t, "git")
	env := gitEnv(t, t.TempDir())
	root := t.TempDir()
	run(t, root, env, "git", "init", "--quiet", "--bare", "--initial-branch=main", filepath.Join(root, "specs.git"))
	w := newWorkTree(t, env, filepath.Join(root, "specs.git"))
	h1 := w.commit("first", map[string]string{"hosts.yaml": hostYAML})
	w.push(false)

	gitBin, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	backend := &cgi.Handler{
		Path: gitBin,
		Args: []string{"http-backend"},
		Env:  append(env, "GIT_PROJECT_ROOT="+root, "GIT_HTTP_EXPORT_ALL=1"),
	}
	password := "s3cret-token"
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if !ok || user != "weir" || subtle.ConstantTimeCompare([]byte(pass), []byte(password)) != 1 {
			rw.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(rw, "unauthorized", http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(rw, r)
	}))
	t.Cleanup(srv.Close)
	url := srv.URL + "/specs.git"

	pwFile := filepath.Join(t.TempDir(), "password")
	os.WriteFile(pwFile, []byte("wrong\n"), 0o600)
	g, err := NewGit(GitConfig{URL: url, StateDir: t.TempDir(), Username: "weir", PasswordFile: pwFile})
	if err != nil {
		t.Fatal(err)
	}
	latestErr(t, g, ErrAuth, "listing "+url)

	// The file is re-read on every request: a rotated token needs no restart.
	os.WriteFile(pwFile, []byte(password+"\n"), 0o600)
	if snap := latest(t, g); snap.Revision != h1 {
		t.Fatalf("Latest() with the right password = %s; want %s", snap.Revision, h1)
	}
	h2 := w.commit("second", map[string]string{"b.yaml": balancerYAML})
	w.push(false)
	if snap := latest(t, g); snap.Revision != h2 {
		t.Fatalf("Latest() over http after a push = %s; want %s", snap.Revision, h2)
	}

	// No credentials at all.
	anon, err := NewGit(GitConfig{URL: url, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	latestErr(t, anon, ErrAuth, "authentication required")
}
