package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"weir/internal/testsupport"
)

// GitServer is the real `git daemon` serving a bare repository specs.git on
// git://198.18.0.250/specs.git, plus a work clone that tests change with the
// real git CLI (commit, push over git://, from inside the Git namespace).
type GitServer struct {
	NS     string
	Bare   string // path of the bare repository
	Work   string // path of the work clone
	Branch string
	Daemon *Proc

	lab *Lab
}

// URL is the repository's address as agents see it.
func (g *GitServer) URL() string { return "git://" + GitAddr + "/specs.git" }

func (l *Lab) startGit(ctx context.Context) (*GitServer, error) {
	g := &GitServer{
		NS:     l.Prefix + "git",
		Bare:   filepath.Join(l.Dir, "git", "specs.git"),
		Work:   filepath.Join(l.Dir, "work"),
		Branch: "main",
		lab:    l,
	}
	if err := l.addNS(ctx, g.NS); err != nil {
		return nil, err
	}
	if err := l.uplink(ctx, g.NS, "git", GitAddr); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(g.Bare), 0o755); err != nil {
		return nil, fmt.Errorf("creating git dir: %w", err)
	}
	if _, err := g.git(ctx, "", "init", "-q", "--bare", "-b", g.Branch, g.Bare); err != nil {
		return nil, err
	}
	if _, err := g.git(ctx, "", "init", "-q", "-b", g.Branch, g.Work); err != nil {
		return nil, err
	}
	if _, err := g.git(ctx, g.Work, "remote", "add", "origin", g.URL()); err != nil {
		return nil, err
	}
	d, err := l.Start("git-daemon", g.NS, []string{"git", "daemon", "--reuseaddr",
		"--base-path=" + filepath.Dir(g.Bare), "--export-all", "--enable=receive-pack",
		"--listen=" + GitAddr, "--port=9418"})
	if err != nil {
		return nil, err
	}
	g.Daemon = d
	err = testsupport.Eventually(ctx, 20*time.Second, 50*time.Millisecond, func() error {
		if !d.Running() {
			return fmt.Errorf("git daemon exited: %v (log %s)", d.ExitErr(), d.Log)
		}
		_, err := g.git(ctx, "", "ls-remote", g.URL())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("waiting for git daemon: %w", err)
	}
	return g, nil
}

// gitEnv keeps the git CLI away from the machine's and the user's
// configuration and from prompting.
var gitEnv = []string{"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0"}

// git runs the git CLI inside the Git namespace, in dir when non-empty, with a
// fixed identity and no user or system configuration.
func (g *GitServer) git(ctx context.Context, dir string, args ...string) (string, error) {
	full := []string{"git", "-c", "user.name=weir lab", "-c", "user.email=lab@weir.invalid"}
	if dir != "" {
		full = append(full, "-C", dir)
	}
	cmd := testsupport.NetnsCommand(ctx, g.NS, append(full, args...)...)
	cmd.Env = append(os.Environ(), gitEnv...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Commit lets change edit the work tree, then commits everything (also when
// nothing changed) and pushes to the daemon. It returns the new commit hash.
func (g *GitServer) Commit(ctx context.Context, msg string, change func(work string) error) (string, error) {
	c, err := g.commitLocal(ctx, msg, change)
	if err != nil {
		return "", err
	}
	if err := g.Push(ctx); err != nil {
		return "", err
	}
	return c, nil
}

// PushFiles replaces the work tree with files (path → content) and pushes.
func (g *GitServer) PushFiles(ctx context.Context, msg string, files map[string]string) (string, error) {
	return g.Commit(ctx, msg, replaceTree(files))
}

// CommitFiles is PushFiles without the push, so a caller can time the push
// alone. It returns the new commit hash.
func (g *GitServer) CommitFiles(ctx context.Context, msg string, files map[string]string) (string, error) {
	return g.commitLocal(ctx, msg, replaceTree(files))
}

// Push pushes the work clone's HEAD to the daemon's branch (`git push` over
// git://, from inside the Git namespace).
func (g *GitServer) Push(ctx context.Context) error {
	_, err := g.git(ctx, g.Work, "push", "-q", "origin", "HEAD:refs/heads/"+g.Branch)
	return err
}

// commitLocal lets change edit the work tree and commits everything (also
// when nothing changed) in the work clone. It returns the new commit hash.
func (g *GitServer) commitLocal(ctx context.Context, msg string, change func(work string) error) (string, error) {
	if err := change(g.Work); err != nil {
		return "", fmt.Errorf("changing work tree for %q: %w", msg, err)
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

// replaceTree is a change for Commit: the work tree then holds files only.
func replaceTree(files map[string]string) func(work string) error {
	return func(work string) error {
		if err := clearTree(work); err != nil {
			return err
		}
		return WriteFiles(work, files)
	}
}

// Clone clones the repository over git:// into dir from inside namespace ns,
// proving that the daemon serves what was pushed.
func (g *GitServer) Clone(ctx context.Context, ns, dir string) error {
	cmd := testsupport.NetnsCommand(ctx, ns, "git", "clone", "-q", "-b", g.Branch, g.URL(), dir)
	cmd.Env = append(os.Environ(), gitEnv...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("git clone %s in %s: %w: %s", g.URL(), ns, err, strings.TrimSpace(string(out)))
	}
	return nil
}
