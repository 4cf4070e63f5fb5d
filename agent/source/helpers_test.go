package source

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"weir/internal/testsupport"
)

// pollEvery is how often waitFor and holdsFor look at their condition.
const pollEvery = 5 * time.Millisecond

// waitFor fails the test with what unless cond holds within timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testsupport.WaitFor(t, timeout, pollEvery, what, testsupport.Until(cond))
}

// holdsFor checks that cond keeps holding for the whole window (to assert
// that something, e.g. a second notification, does not happen).
func holdsFor(t testing.TB, window time.Duration, what string, cond func() bool) {
	t.Helper()
	testsupport.HoldsFor(t, window, pollEvery, what, testsupport.Until(cond))
}

// counter counts changed() notifications and records when each came.
type counter struct {
	mu    sync.Mutex
	times []time.Time
}

func (c *counter) changed() {
	c.mu.Lock()
	c.times = append(c.times, time.Now())
	c.mu.Unlock()
}

func (c *counter) n() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.times)
}

func (c *counter) last() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.times) == 0 {
		return time.Time{}
	}
	return c.times[len(c.times)-1]
}

// watch runs src.Watch in the background until the test ends.
func watch(t testing.TB, src Source) *counter {
	t.Helper()
	c := &counter{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		src.Watch(ctx, c.changed)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return c
}

// readFS returns every regular file of fsys as path → content.
func readFS(t testing.TB, fsys fs.FS) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			b, err := fs.ReadFile(fsys, p)
			if err != nil {
				return err
			}
			got[p] = string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking snapshot: %v", err)
	}
	return got
}

func requireTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: %v", tool, err)
		}
	}
}

// gitEnv is an environment isolating the git CLI from the machine's
// configuration, with a fixed identity.
func gitEnv(t testing.TB, home string) []string {
	t.Helper()
	cfg := filepath.Join(home, "gitconfig")
	if _, err := os.Stat(cfg); err != nil {
		text := "[user]\n\tname = Weir Test\n\temail = test@weir.test\n[init]\n\tdefaultBranch = main\n[receive]\n\tdenyDeleteCurrent = ignore\n"
		if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"HOME=" + home, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=" + cfg, "PATH=" + os.Getenv("PATH"), "LANG=C"}
	return env
}

// run runs a command in dir with env and returns its trimmed stdout.
func run(t testing.TB, dir string, env []string, name string, args ...string) string {
	t.Helper()
	out, err := tryRun(dir, env, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return out
}

func tryRun(dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%w: %s", err, stderr.String())
	}
	return strings.TrimSpace(stdout.String()), nil
}

// gitDaemon is a real `git daemon` serving the bare repositories under base
// on a loopback port, killed when the test ends.
type gitDaemon struct {
	t    testing.TB
	base string
	port int
	env  []string
	cmd  *exec.Cmd
}

func startGitDaemon(t testing.TB) *gitDaemon {
	t.Helper()
	requireTools(t, "git")
	home := t.TempDir()
	d := &gitDaemon{t: t, base: t.TempDir(), env: gitEnv(t, home)}
	d.port = testsupport.FreePort(t)
	d.start()
	t.Cleanup(d.stop)
	return d
}

// start runs the daemon on d.port and waits until it accepts connections.
func (d *gitDaemon) start() {
	d.t.Helper()
	cmd := exec.Command("git", "daemon", "--reuseaddr", "--base-path="+d.base, "--export-all",
		"--enable=receive-pack", "--listen=127.0.0.1", "--port="+strconv.Itoa(d.port), d.base)
	cmd.Env = d.env
	// Own process group: the daemon forks a child per connection, and stop
	// must end those too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		d.t.Fatalf("starting git daemon: %v", err)
	}
	d.cmd = cmd
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(d.port))
	waitFor(d.t, 10*time.Second, "git daemon on "+addr, func() bool {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// stop kills the daemon's process group and waits for it.
func (d *gitDaemon) stop() {
	if d.cmd == nil {
		return
	}
	_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
	_ = d.cmd.Wait()
	d.cmd = nil
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(d.port))
	waitFor(d.t, 10*time.Second, "git daemon to stop listening", func() bool {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
}

// signal sends sig to the daemon and the children it forked.
func (d *gitDaemon) signal(sig syscall.Signal) {
	if d.cmd != nil {
		_ = syscall.Kill(-d.cmd.Process.Pid, sig)
	}
}

// url returns the git:// URL of the repository name under the base path.
func (d *gitDaemon) url(name string) string {
	return fmt.Sprintf("git://127.0.0.1:%d/%s", d.port, name)
}

// newBare creates an empty bare repository name under the base path.
func (d *gitDaemon) newBare(name string) string {
	d.t.Helper()
	dir := filepath.Join(d.base, name)
	run(d.t, d.base, d.env, "git", "init", "--quiet", "--bare", "--initial-branch=main", dir)
	return dir
}

// workTree is a working clone pushed to a remote with the real git CLI.
type workTree struct {
	t   testing.TB
	dir string
	env []string
}

// newWorkTree makes an empty working repository whose origin is url.
func newWorkTree(t testing.TB, env []string, url string) *workTree {
	t.Helper()
	w := &workTree{t: t, dir: t.TempDir(), env: env}
	w.git("init", "--quiet", "--initial-branch=main")
	w.git("remote", "add", "origin", url)
	return w
}

func (w *workTree) git(args ...string) string {
	w.t.Helper()
	return run(w.t, w.dir, w.env, "git", args...)
}

// commit writes files (content "" deletes the file), commits with extra
// commit flags (e.g. -S), and returns the new commit hash.
func (w *workTree) commit(msg string, files map[string]string, flags ...string) string {
	w.t.Helper()
	for name, content := range files {
		p := filepath.Join(w.dir, filepath.FromSlash(name))
		if content == "" {
			if err := os.Remove(p); err != nil {
				w.t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			w.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			w.t.Fatal(err)
		}
	}
	w.git("add", "-A")
	w.git(append([]string{"commit", "--quiet", "--allow-empty", "-m", msg}, flags...)...)
	return w.git("rev-parse", "HEAD")
}

// push pushes main to origin, forced when force is set.
func (w *workTree) push(force bool) {
	w.t.Helper()
	args := []string{"push", "--quiet", "origin", "main"}
	if force {
		args = append(args, "--force")
	}
	w.git(args...)
}
