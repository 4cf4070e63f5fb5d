package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// goTest runs `go <args>` from the repository root, keeps its combined output
// in the raw dir as <name>.txt and returns it.
func (s *suite) goTest(ctx context.Context, name string, args ...string) (string, error) {
	out, err := runCmd(ctx, filepath.Join(s.rawDir, name+".txt"), "go", args...)
	if err != nil {
		return out, fmt.Errorf("go %s: %w (output in %s)", strings.Join(args, " "), err, filepath.Join(s.rawDir, name+".txt"))
	}
	return out, nil
}

// runCmd runs a command, writing its combined output to logPath (when not
// empty) and returning it.
func runCmd(ctx context.Context, logPath, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if logPath != "" {
		header := fmt.Sprintf("# %s %s\n# %s\n", name, shellJoin(args), time.Now().Format(time.RFC3339))
		if werr := os.WriteFile(logPath, append([]byte(header), out...), 0o644); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		tail := string(out)
		if len(tail) > 2000 {
			tail = "…" + tail[len(tail)-2000:]
		}
		return string(out), fmt.Errorf("%w: %s", err, strings.TrimSpace(tail))
	}
	return string(out), nil
}

// shellJoin quotes args the way a user would type them in a shell.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " '\"$^*?[]|&;<>()\\") {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		} else {
			q[i] = a
		}
	}
	return strings.Join(q, " ")
}

// goCmd is the user-facing command line of go args.
func goCmd(args ...string) string { return "go " + shellJoin(args) }
