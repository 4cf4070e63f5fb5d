package source

import (
	"crypto/subtle"
	"io/fs"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// httpRepo is a bare repository served by the real `git http-backend`
// behind basic auth (user "weir").
type httpRepo struct {
	url      string // without credentials
	password string
	work     *workTree
}

func newHTTPRepo(t *testing.T, password string) *httpRepo {
	t.Helper()
	requireTools(t, "git")
	env := gitEnv(t, t.TempDir())
	root := t.TempDir()
	run(t, root, env, "git", "init", "--quiet", "--bare", "--initial-branch=main", filepath.Join(root, "specs.git"))
	w := newWorkTree(t, env, filepath.Join(root, "specs.git"))
	gitBin, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	backend := &cgi.Handler{
		Path: gitBin,
		Args: []string{"http-backend"},
		Env:  append(env, "GIT_PROJECT_ROOT="+root, "GIT_HTTP_EXPORT_ALL=1"),
	}
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
	return &httpRepo{url: srv.URL + "/specs.git", password: password, work: w}
}

// TestGitHTTPBasicAuth serves a bare repository with the real
// `git http-backend` behind basic auth and follows it with a password file.
func TestGitHTTPBasicAuth(t *testing.T) {
	repo := newHTTPRepo(t, "s3cret-token")
	h1 := repo.work.commit("first", map[string]string{"hosts.yaml": hostYAML})
	repo.work.push(false)
	url := repo.url

	pwFile := filepath.Join(t.TempDir(), "password")
	os.WriteFile(pwFile, []byte("wrong\n"), 0o600)
	g, err := NewGit(GitConfig{URL: url, StateDir: t.TempDir(), Username: "weir", PasswordFile: pwFile})
	if err != nil {
		t.Fatal(err)
	}
	latestErr(t, g, ErrAuth, "listing "+url)

	// The file is re-read on every request: a rotated token needs no restart.
	os.WriteFile(pwFile, []byte(repo.password+"\n"), 0o600)
	if snap := latest(t, g); snap.Revision != h1 {
		t.Fatalf("Latest() with the right password = %s; want %s", snap.Revision, h1)
	}
	h2 := repo.work.commit("second", map[string]string{"b.yaml": balancerYAML})
	repo.work.push(false)
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

// TestGitHTTPCredentialsInURL: a user and password in an http URL are sent
// as basic auth and kept off disk and out of every message: the clone's
// .git/config and every other file under the state directory hold the URL
// without them.
func TestGitHTTPCredentialsInURL(t *testing.T) {
	const password = "hunter2"
	repo := newHTTPRepo(t, password)
	h1 := repo.work.commit("first", map[string]string{"hosts.yaml": hostYAML})
	repo.work.push(false)
	withCreds := strings.Replace(repo.url, "http://", "http://weir:"+password+"@", 1)

	state := t.TempDir()
	g, err := NewGit(GitConfig{URL: withCreds, StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	if snap := latest(t, g); snap.Revision != h1 {
		t.Fatalf("Latest() with credentials in the URL = %s; want %s", snap.Revision, h1)
	}
	checkNoSecret(t, state, password)
	if strings.Contains(g.name, password) {
		t.Errorf("the source names itself %q", g.name)
	}

	// A wrong password: the error names the URL without it.
	bad, err := NewGit(GitConfig{URL: strings.Replace(withCreds, password, "hunter3", 1), StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := latestErr(t, bad, ErrAuth, repo.url); strings.Contains(err.Error(), "hunter3") {
		t.Errorf("error %q leaks the password", err)
	}

	// A clone made by an earlier version with the password in its remote
	// URL is replaced.
	os.RemoveAll(state)
	run(t, "", nil, "git", "init", "--quiet", filepath.Join(state, "repo"))
	run(t, filepath.Join(state, "repo"), nil, "git", "remote", "add", "origin", withCreds)
	g, err = NewGit(GitConfig{URL: withCreds, StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	latest(t, g)
	checkNoSecret(t, state, password)
}

// checkNoSecret fails when any file under dir contains secret.
func checkNoSecret(t *testing.T, dir, secret string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), secret) {
			t.Errorf("%s holds the secret %q", p, secret)
		}
		return err
	})
}

func TestCredentialsInURLRefused(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("x"), 0o600)
	tests := []struct {
		name string
		cfg  GitConfig
		want string
	}{
		{"password twice", GitConfig{URL: "https://a:hunter2@h/r", StateDir: dir, PasswordFile: pw}, "a password both in the URL and in a password file"},
		{"two users", GitConfig{URL: "https://a:hunter2@h/r", StateDir: dir, Username: "b"}, `user "a" in the URL but "b"`},
		{"ssh password", GitConfig{URL: "ssh://a:hunter2@h/r", StateDir: dir}, "a password in a ssh URL is not supported"},
		{"unparsable", GitConfig{URL: "https://a:hunter2@h:port/r", StateDir: dir}, `parsing URL "https:xxxxx@h:port/r"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewGit(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("NewGit(%s) error = %v; want %q without the password", tt.cfg.URL, err, tt.want)
			}
		})
	}
}
