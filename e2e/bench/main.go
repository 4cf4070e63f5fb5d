// Command bench is `make bench` (issue 7): it runs every row of weir's
// benchmark suite on this machine — the Go benchmarks of reconcile, spec and
// cluster as `go test` subprocesses, and the convergence and memory rows
// itself on real `weir agent` processes in network namespaces (weir/e2e/lab)
// — prints one table of weir's figure beside its floor, peer or anchor, and
// writes that table, the machine it ran on and the command reproducing each
// row to BENCHMARKS.md. Raw outputs stay in a temp dir whose path is printed.
//
//	sudo go run ./e2e/bench                     # everything, writes BENCHMARKS.md
//	sudo go run ./e2e/bench -only converge-git  # one step, prints its rows only
//	go run ./e2e/bench -list                    # the steps
//
// It needs root (namespaces, iptables) and runs from the repository root.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"weir/e2e/lab"
)

func main() {
	lab.MaybeServe() // a re-executed lab helper never returns from here
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "BENCHMARKS.md", "file to write the report to (with -only: only when given explicitly)")
	only := fs.String("only", "", "comma-separated steps to run (default: all; see -list)")
	list := fs.Bool("list", false, "list the steps and exit")
	raw := fs.String("raw", "", "directory for raw outputs (default: a new temp dir)")
	agentArgs := fs.String("agent-args", "", "extra flags for every lab agent, space-separated (e.g. \"--log-level debug\")")
	pushes := fs.Int("pushes", 9, "spec changes / pushes per convergence row (poll rows use 7 at most, the --dir row 30 at least)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	outSet := false
	fs.Visit(func(f *flag.Flag) { outSet = outSet || f.Name == "out" })
	steps := allSteps()
	if *list {
		for _, s := range steps {
			fmt.Fprintf(stdout, "%-14s %s\n", s.name, s.title)
		}
		return 0
	}
	if *only != "" {
		var picked []step
		for _, name := range strings.Split(*only, ",") {
			i := slices.IndexFunc(steps, func(s step) bool { return s.name == name })
			if i < 0 {
				fmt.Fprintf(stderr, "bench: no step %q (see -list)\n", name)
				return 2
			}
			picked = append(picked, steps[i])
		}
		steps = picked
		if !outSet {
			*out = ""
		}
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "bench: needs root: the apply, per-rule and dispatch benchmarks program iptables in network namespaces they create, and the convergence and memory rows run weir agents in a lab of namespaces (try: sudo make bench)")
		return 1
	}
	if _, err := os.Stat("go.mod"); err != nil {
		fmt.Fprintln(stderr, "bench: run from the repository root (go.mod not found)")
		return 2
	}
	if removed, err := lab.Sweep(""); err != nil {
		fmt.Fprintln(stderr, "bench: sweeping labs of killed runs:", err)
	} else if len(removed) > 0 {
		fmt.Fprintln(stderr, "bench: removed stale labs", removed)
	}
	rawDir := *raw
	if rawDir == "" {
		d, err := os.MkdirTemp("", "weir-bench-")
		if err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
		rawDir = d
	} else if err := os.MkdirAll(rawDir, 0o755); err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	s := &suite{
		rawDir:    rawDir,
		pushes:    *pushes,
		agentArgs: strings.Fields(*agentArgs),
		log:       slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo})),
		stderr:    stderr,
	}
	bin, err := weirBinary(ctx, rawDir)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	s.bin = bin
	rep := &Report{Machine: probeMachine(ctx), Started: time.Now()}
	failed := false
	for _, st := range steps {
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintf(stderr, "[%6.1fs] %s: %s\n", time.Since(rep.Started).Seconds(), st.name, st.title)
		load0 := loadavg()
		t0 := time.Now()
		rows, err := st.run(ctx, s)
		res := StepResult{Name: st.name, Title: st.title, Took: time.Since(t0), LoadBefore: load0, LoadAfter: loadavg(), Rows: rows}
		if err != nil {
			failed = true
			res.Err = err.Error()
			fmt.Fprintf(stderr, "[%6.1fs] %s FAILED: %v\n", time.Since(rep.Started).Seconds(), st.name, err)
		}
		rep.Steps = append(rep.Steps, res)
	}
	rep.Took = time.Since(rep.Started)
	rep.RawDir = rawDir
	fmt.Fprintln(stdout)
	rep.WriteText(stdout)
	fmt.Fprintf(stdout, "\nraw outputs: %s\n", rawDir)
	if *out != "" {
		var b strings.Builder
		rep.WriteMarkdown(&b)
		if err := os.WriteFile(*out, []byte(b.String()), 0o644); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
		fmt.Fprintf(stdout, "wrote %s\n", *out)
	}
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "bench: interrupted")
		return 130
	}
	if failed {
		return 1
	}
	return 0
}

// suite is what every step may use.
type suite struct {
	rawDir    string
	bin       string // the weir binary the lab rows run
	pushes    int
	agentArgs []string // added to every lab agent's flags
	log       *slog.Logger
	stderr    io.Writer
}

// step is one unit of the suite: a `go test` run or a lab measurement, which
// yields one or more table rows.
type step struct {
	name  string
	title string
	run   func(ctx context.Context, s *suite) ([]Row, error)
}

func allSteps() []step {
	return []step{
		{"assign-render", "1. Assign + Render, 1k/10k/50k balancers × 5 targets, 100 hosts", stepAssignRender},
		{"load", "1. spec loading, 10k balancers", stepLoad},
		{"apply-full", "2. full apply 1k/10k balancers, nft and legacy, beside raw iptables-restore", stepApplyFull},
		{"apply-change", "2. 1 and 100 balancers changed on a 10k host, nft and legacy", stepApplyChange},
		{"apply-full-rendered", "2. full apply of Render's real 10k output, nft and legacy, beside raw iptables-restore", stepApplyFullRendered},
		{"one-change", "2. one balancer changed on Render's 10k output, end to end", stepOneChange},
		{"drift", "2. drift check on a 10k host", stepDrift},
		{"per-rule", "3. the per-rule peer: 2,000 rules one iptables process each", stepPerRule},
		{"converge-dir", "4. 10 agents, --dir: spec change → all converged", stepConvergeDir},
		{"converge-git", "4. 10 agents, Git: push → all converged (webhook+hints, poll+hints, poll only)", stepConvergeGit},
		{"gossip", "5. 100 memberlist nodes: hint and death propagation", stepGossip},
		{"rss", "6. agent RSS: examples/basic idle and 10k balancers", stepRSS},
		{"dispatch", "7. connect latency through 1 vs 10k balancers, tree vs linear dispatch", stepDispatch},
	}
}

// weirBinary returns $WEIR_BIN, else bin/weir (make bench builds it), else
// builds one into dir.
func weirBinary(ctx context.Context, dir string) (string, error) {
	if p := os.Getenv("WEIR_BIN"); p != "" {
		return p, nil
	}
	if p, err := filepath.Abs("bin/weir"); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p := filepath.Join(dir, "weir")
	if _, err := runCmd(ctx, "", "go", "build", "-o", p, "./cmd/weir"); err != nil {
		return "", fmt.Errorf("building weir: %w", err)
	}
	return p, nil
}

// loadavg returns the first three fields of /proc/loadavg.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// errNoRows is returned by a step whose output held none of its benchmarks.
var errNoRows = errors.New("no benchmark results in the output")
