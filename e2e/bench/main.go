// Command bench is `make bench`: it runs every row of weir's
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
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"weir/e2e/lab"
)

func main() {
	lab.Main(func(ctx context.Context) int { return run(ctx, os.Args[1:], os.Stdout, os.Stderr) })
}

// options is the bench's command line.
type options struct {
	out       string // the report file; "" writes none
	only      string
	list      bool
	raw       string
	agentArgs string
	pushes    int
	bin       string // the weir binary of the lab rows; "" builds one from the tree
}

// parseOptions reads the command line; with -only the report is written
// only when -out is given explicitly.
func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.out, "out", "BENCHMARKS.md", "file to write the report to (with -only: only when given explicitly)")
	fs.StringVar(&o.only, "only", "", "comma-separated steps to run (default: all; see -list)")
	fs.BoolVar(&o.list, "list", false, "list the steps and exit")
	fs.StringVar(&o.raw, "raw", "", "directory for raw outputs (default: a new temp dir)")
	fs.StringVar(&o.agentArgs, "agent-args", "", "extra flags for every lab agent, space-separated (e.g. \"--log-level debug\")")
	fs.IntVar(&o.pushes, "pushes", 9, "spec changes / pushes per convergence row (poll rows use 7 at most, the --dir row 30 at least)")
	fs.StringVar(&o.bin, "bin", "", "weir binary the lab rows run (default: build one from this tree), e.g. an older build to measure a before figure")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	outSet := false
	fs.Visit(func(f *flag.Flag) { outSet = outSet || f.Name == "out" })
	if o.only != "" && !outSet {
		o.out = ""
	}
	return o, nil
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseOptions(args, stderr)
	if err != nil {
		return 2
	}
	if o.list {
		for _, s := range allSteps() {
			fmt.Fprintf(stdout, "%-14s %s\n", s.name, s.title)
		}
		return 0
	}
	steps, err := pickSteps(o.only)
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 2
	}
	if code := checkMachine(stderr); code != 0 {
		return code
	}
	s, err := newSuite(ctx, o, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	rep := s.runSteps(ctx, steps)
	if err := s.writeReport(rep, o.out, stdout); err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	switch {
	case ctx.Err() != nil:
		fmt.Fprintln(stderr, "bench: interrupted")
		return 130
	case rep.failed():
		return 1
	}
	return 0
}

// pickSteps returns the steps named in only (comma-separated), or all.
func pickSteps(only string) ([]step, error) {
	steps := allSteps()
	if only == "" {
		return steps, nil
	}
	var picked []step
	for _, name := range strings.Split(only, ",") {
		i := slices.IndexFunc(steps, func(s step) bool { return s.name == name })
		if i < 0 {
			return nil, fmt.Errorf("no step %q (see -list)", name)
		}
		picked = append(picked, steps[i])
	}
	return picked, nil
}

// checkMachine returns a non-zero exit code when the bench cannot run here,
// and sweeps the labs of killed runs.
func checkMachine(stderr io.Writer) int {
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
	return 0
}

// newSuite makes the raw dir and finds the weir binary the lab rows run.
func newSuite(ctx context.Context, o options, stderr io.Writer) (*suite, error) {
	rawDir := o.raw
	if rawDir == "" {
		d, err := os.MkdirTemp("", "weir-bench-")
		if err != nil {
			return nil, err
		}
		rawDir = d
	} else if err := os.MkdirAll(rawDir, 0o755); err != nil {
		return nil, err
	}
	bin := o.bin
	if bin == "" {
		var err error
		if bin, err = lab.WeirBinary(ctx, ".", filepath.Join(rawDir, "weir")); err != nil {
			return nil, err
		}
	}
	return &suite{
		rawDir:    rawDir,
		bin:       bin,
		pushes:    o.pushes,
		agentArgs: strings.Fields(o.agentArgs),
		log:       slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo})),
		stderr:    stderr,
	}, nil
}

// runSteps runs steps in order until ctx ends, printing progress.
func (s *suite) runSteps(ctx context.Context, steps []step) *Report {
	rep := &Report{Machine: probeMachine(ctx), Started: time.Now(), RawDir: s.rawDir}
	for _, st := range steps {
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintf(s.stderr, "[%6.1fs] %s: %s\n", time.Since(rep.Started).Seconds(), st.name, st.title)
		load0 := loadavg()
		t0 := time.Now()
		rows, err := st.run(ctx, s)
		res := StepResult{Name: st.name, Title: st.title, Took: time.Since(t0), LoadBefore: load0, LoadAfter: loadavg(), Rows: withBaseline(rows)}
		if err != nil {
			res.Err = err.Error()
			fmt.Fprintf(s.stderr, "[%6.1fs] %s FAILED: %v\n", time.Since(rep.Started).Seconds(), st.name, err)
		}
		rep.Steps = append(rep.Steps, res)
	}
	rep.Took = time.Since(rep.Started)
	return rep
}

// writeReport prints the table and writes the markdown report to out
// unless out is empty.
func (s *suite) writeReport(rep *Report, out string, stdout io.Writer) error {
	fmt.Fprintln(stdout)
	rep.WriteText(stdout)
	fmt.Fprintf(stdout, "\nraw outputs: %s\n", s.rawDir)
	if out == "" {
		return nil
	}
	var b strings.Builder
	rep.WriteMarkdown(&b)
	if err := os.WriteFile(out, []byte(b.String()), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s\n", out)
	return nil
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
		{"apply-full-rendered6", "2. full apply of Render's 10k IPv6 output, nft and legacy, beside raw ip6tables-restore", stepApplyFullRendered6},
		{"apply-samehost", "2. full apply of 10k balancers with local and with remote targets, nft and legacy, beside the flat floor", stepApplySameHost},
		{"one-change", "2. one balancer changed on Render's 10k output, end to end", stepOneChange},
		{"change-e2e", "2. one balancer changed in a 10k tree, load included: dir and Git modes", stepChangeE2E},
		{"drift", "2. drift check on a 10k host", stepDrift},
		{"per-rule", "3. the per-rule peer: 2,000 rules one iptables process each", stepPerRule},
		{"converge-dir", "4. 10 agents, --dir: spec change → all converged", stepConvergeDir},
		{"converge-git", "4. 10 agents, Git: push → all converged (webhook+hints, poll+hints, poll only)", stepConvergeGit},
		{"gossip", "5. 100 memberlist nodes: hint and death propagation", stepGossip},
		{"rss", "6. agent RSS: examples/basic idle and 10k balancers", stepRSS},
		{"dispatch", "7. connect latency through 1 vs 10k balancers, tree vs linear dispatch", stepDispatch},
		{"dispatch6", "7. IPv6 connect latency through 1 vs 10k balancers, tree vs linear dispatch", stepDispatch6},
		{"health-failover", "8. a target's service stops and starts: out of and back in the setting host's rules", stepHealthFailover},
		{"health-cpu", "8. health-check CPU at 1,000 endpoints", stepHealthCPU},
		{"health-gossip", "8. health-report gossip bytes at 1,000 endpoints per host, 10 nodes", stepHealthGossip},
	}
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
