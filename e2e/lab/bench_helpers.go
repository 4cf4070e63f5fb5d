package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// NetnsDir is where `ip netns` keeps its named namespaces.
const NetnsDir = "/run/netns"

// DialIn opens a connection from inside network namespace ns without
// starting a process: the socket is created on a thread that has entered ns
// (a socket stays in the namespace it was created in) and the thread then
// returns to the caller's namespace. Benchmarks use it to poll many agents'
// APIs over kept-alive connections, where re-executing a helper per request
// (Lab.HTTP) would cost more than what is measured.
func DialIn(ctx context.Context, ns, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// Locked for the whole switch: no other goroutine may run on a thread
		// that is in ns. When returning fails the goroutine ends still locked,
		// and the runtime then destroys the thread instead of reusing it.
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, fmt.Errorf("opening own network namespace: %w", err)}
			return
		}
		defer self.Close()
		target, err := os.Open(filepath.Join(NetnsDir, ns))
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, fmt.Errorf("opening namespace %s: %w", ns, err)}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, fmt.Errorf("entering namespace %s: %w", ns, err)}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if rerr := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); rerr != nil {
			if c != nil {
				c.Close()
			}
			ch <- result{nil, errors.Join(err, fmt.Errorf("returning from namespace %s: %w", ns, rerr))}
			return
		}
		runtime.UnlockOSThread()
		if err != nil {
			err = fmt.Errorf("dialing %s %s in %s: %w", network, addr, ns, err)
		}
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// HTTPClientIn returns an HTTP client whose connections are made inside
// namespace ns (see DialIn) and kept alive between requests.
func HTTPClientIn(ns string) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return DialIn(ctx, ns, network, addr)
			},
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     time.Minute,
		},
	}
}

// CommitFiles replaces the work tree with files (path → content) and commits
// without pushing, so a caller can time the push alone. It returns the new
// commit hash.
func (g *GitServer) CommitFiles(ctx context.Context, msg string, files map[string]string) (string, error) {
	if err := clearTree(g.Work); err != nil {
		return "", err
	}
	if err := WriteFiles(g.Work, files); err != nil {
		return "", err
	}
	if _, err := g.git(ctx, g.Work, "add", "-A"); err != nil {
		return "", err
	}
	if _, err := g.git(ctx, g.Work, "commit", "-q", "--allow-empty", "-m", msg); err != nil {
		return "", err
	}
	out, err := g.git(ctx, g.Work, "rev-parse", "HEAD")
	return strings.TrimSpace(out), err
}

// Push pushes the work clone's HEAD to the daemon's branch (`git push` over
// git://, from inside the Git namespace).
func (g *GitServer) Push(ctx context.Context) error {
	_, err := g.git(ctx, g.Work, "push", "-q", "origin", "HEAD:refs/heads/"+g.Branch)
	return err
}
