package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// The -benchtime of every step: small, so the whole suite stays near 20
// minutes on a 2-core machine, and a count (not a duration), so a slow op on a
// loaded machine cannot multiply the run time.
const (
	benchtimeAssign   = "3x"
	benchtimeLoad     = "3x"
	benchtimeApply    = "3x"
	benchtimeChange   = "10x"
	benchtimeDrift    = "1x"
	benchtimePerRule  = "1x"
	benchtimeDispatch = "10000x"
)

// benchArgs is `go test PKG -run '^$' -bench RE -benchmem -benchtime T -count C -timeout 20m`.
func benchArgs(pkg, re, benchtime string, count int) []string {
	return []string{"test", pkg, "-run", "^$", "-bench", re, "-benchmem", "-benchtime", benchtime, "-count", fmt.Sprint(count), "-timeout", "20m"}
}

// runBench runs a benchmark step and returns its parsed lines and command.
func (s *suite) runBench(ctx context.Context, name, pkg, re, benchtime string) (map[string]BenchLine, string, error) {
	count := 1
	if name == "dispatch" {
		// Single runs of connect latency swing by ±30 % on a shared
		// machine, and the first sub-benchmark runs cold: take the median of 3.
		count = 3
	}
	args := benchArgs(pkg, re, benchtime, count)
	out, err := s.goTest(ctx, name, args...)
	lines := ParseBench(out)
	if err == nil && len(lines) == 0 {
		err = errNoRows
	}
	return lines, goCmd(args...), err
}

// errNoRows is returned by a step whose output held none of its benchmarks.
var errNoRows = errors.New("no benchmark results in the output")

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
