package e2e

import (
	"crypto/subtle"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"weir/e2e/lab"
	"weir/internal/testsupport"
)

// envGitHTTP makes the test binary, re-executed inside a namespace, serve
// Git over HTTP with basic auth: "ADDR ROOT USER:PASSWORD".
const envGitHTTP = "WEIR_E2E_GIT_HTTP"

// init runs the helper before TestMain when the environment asks for it.
func init() {
	if spec := os.Getenv(envGitHTTP); spec != "" {
		err := serveGitHTTP(spec)
		fmt.Fprintln(os.Stderr, "git http:", err)
		os.Exit(1)
	}
}

// serveGitHTTP serves the bare repositories under ROOT with the real `git
// http-backend`, to requests carrying USER:PASSWORD as basic auth.
func serveGitHTTP(spec string) error {
	var addr, root, cred string
	if _, err := fmt.Sscan(spec, &addr, &root, &cred); err != nil {
		return fmt.Errorf("%s=%q: want ADDR ROOT USER:PASSWORD: %w", envGitHTTP, spec, err)
	}
	user, pass, _ := strings.Cut(cred, ":")
	gitBin, err := exec.LookPath("git")
	if err != nil {
		return err
	}
	backend := &cgi.Handler{Path: gitBin, Args: []string{"http-backend"},
		Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"}}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != user || subtle.ConstantTimeCompare([]byte(p), []byte(pass)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, r)
	}))
}

// TestCredentialsNeverLeak: an agent given `--repo http://alice:hunter2@…`
// fetches with those credentials, yet the password appears in none of its
// logs, its /status, its /metrics or any file under its state directory —
// also after the server went away and the failures were logged and shown.
func TestCredentialsNeverLeak(t *testing.T) {
	const password = "hunter2"
	e := newEnv(t, 1, 1, 1)
	c := e.push("basic", renderSpecs(basicHosts(), []balancerSpec{ordersBalancer(nil)}))
	ha := e.host("host-a")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	const gitAddr = "127.0.0.1:8418"
	srv, err := e.lab.Start("git-http", ha.NS, []string{self},
		envGitHTTP+"="+gitAddr+" "+filepath.Dir(e.lab.Git.Bare)+" alice:"+password)
	if err != nil {
		t.Fatal(err)
	}
	repo := "http://alice:" + password + "@" + gitAddr + "/specs.git"
	p := e.startAgent(ha, "--repo", repo, "--poll", poll.String(), "--resync", resync.String(), "--fetch-timeout", "5s")
	if _, err := e.weir.WaitConverged(e.ctx, waitFor, []*lab.Host{ha}, c, []string{"host-a"}); err != nil {
		t.Fatalf("waiting for host-a on %.12s: %v", c, err)
	}

	// The server goes away: failures are logged and shown, with the URL.
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	e.api(ha, "POST", "/refresh")
	err = testsupport.Eventually(e.ctx, waitFor, 200*time.Millisecond, func() error {
		if _, body := e.api(ha, "GET", "/status"); !strings.Contains(body, gitAddr) {
			return fmt.Errorf("no fetch error naming %s in /status yet", gitAddr)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	places := map[string]string{}
	_, places["GET /status"] = e.api(ha, "GET", "/status")
	_, places["GET /metrics"] = e.api(ha, "GET", "/metrics")
	if b, err := os.ReadFile(p.Log); err == nil {
		// Without the lab's own "=== start" lines, which quote the command line.
		var lines []string
		for l := range strings.Lines(string(b)) {
			if !strings.HasPrefix(l, "=== ") {
				lines = append(lines, l)
			}
		}
		places["the agent's log"] = strings.Join(lines, "")
	}
	stateDir := filepath.Join(e.lab.Dir, "state", ha.Name)
	filepath.WalkDir(stateDir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			b, _ := os.ReadFile(path)
			places[path] = string(b)
		}
		return err
	})
	if !strings.Contains(places["the agent's log"], gitAddr) {
		t.Errorf("the agent's log never names the repository; the search below proves nothing")
	}
	for where, text := range places {
		if strings.Contains(text, password) {
			t.Errorf("%s holds the password %q", where, password)
		}
	}
	if fi, err := os.Stat(stateDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state directory %s: %v, %v; want mode 0700", stateDir, fi.Mode(), err)
	}
	t.Logf("searched %d places for the password", len(places))
}
