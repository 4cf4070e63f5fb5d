package lab

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
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
	err = Eventually(ctx, 20*time.Second, 50*time.Millisecond, func() error {
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

// git runs the git CLI inside the Git namespace, in dir when non-empty, with a
// fixed identity and no user or system configuration.
func (g *GitServer) git(ctx context.Context, dir string, args ...string) (string, error) {
	full := []string{"netns", "exec", g.NS, "git", "-c", "user.name=weir lab", "-c", "user.email=lab@weir.invalid"}
	if dir != "" {
		full = append(full, "-C", dir)
	}
	cmd := exec.CommandContext(ctx, "ip", append(full, args...)...)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Commit lets change edit the work tree, then commits everything (also when
// nothing changed) and pushes to the daemon. It returns the new commit hash.
func (g *GitServer) Commit(ctx context.Context, msg string, change func(work string) error) (string, error) {
	if err := change(g.Work); err != nil {
		return "", fmt.Errorf("changing work tree for %q: %w", msg, err)
	}
	if _, err := g.git(ctx, g.Work, "add", "-A"); err != nil {
		return "", err
	}
	if _, err := g.git(ctx, g.Work, "commit", "-q", "--allow-empty", "-m", msg); err != nil {
		return "", err
	}
	if _, err := g.git(ctx, g.Work, "push", "-q", "origin", "HEAD:refs/heads/"+g.Branch); err != nil {
		return "", err
	}
	out, err := g.git(ctx, g.Work, "rev-parse", "HEAD")
	return strings.TrimSpace(out), err
}

// PushFiles replaces the work tree with files (path → content) and pushes.
func (g *GitServer) PushFiles(ctx context.Context, msg string, files map[string]string) (string, error) {
	return g.Commit(ctx, msg, func(work string) error {
		if err := clearTree(work); err != nil {
			return err
		}
		return WriteFiles(work, files)
	})
}

// PushDir replaces the work tree with a copy of src and pushes.
func (g *GitServer) PushDir(ctx context.Context, msg, src string) (string, error) {
	return g.Commit(ctx, msg, func(work string) error {
		if err := clearTree(work); err != nil {
			return err
		}
		return CopyDir(work, src)
	})
}

// Clone clones the repository over git:// into dir from inside namespace ns,
// proving that the daemon serves what was pushed.
func (g *GitServer) Clone(ctx context.Context, ns, dir string) error {
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "git", "clone", "-q", "-b", g.Branch, g.URL(), dir)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("git clone %s in %s: %w: %s", g.URL(), ns, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// clearTree removes everything in dir except .git.
func clearTree(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("reading %s: %w", dir, err)
	}
	for _, e := range entries {
		if e.Name() == ".git" {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("clearing %s: %w", dir, err)
		}
	}
	return nil
}

// WriteFiles writes files (slash-separated path relative to dir → content).
func WriteFiles(dir string, files map[string]string) error {
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
	}
	return nil
}

// CopyDir copies the regular files and directories of src into dst.
func CopyDir(dst, src string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("copying %s: %w", path, err)
		}
		return os.WriteFile(target, b, 0o644)
	})
}
