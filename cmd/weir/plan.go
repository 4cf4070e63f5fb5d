package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"weir/reconcile/plan"
	"weir/reconcile/render"
	"weir/spec"
)

// planOutput is the -o json output of weir plan: the part of the plan the node
// applies, with each target's share of new connections.
type planOutput struct {
	Node   string `json:"node"`
	Digest string `json:"digest"` // of the whole plan, as agents gossip it
	*plan.Plan
}

// runPlan implements `weir plan --specs DIR --node NAME [--alive a,b,...]
// [--unhealthy guest[:port],...] [-o rules|json]`: what NAME would apply for
// the spec tree in DIR when the hosts in --alive (default: every host of the
// tree) are alive and the health checks of the guests in --unhealthy fail.
// Exit 1 with FILE:LINE: message lines when the tree is invalid, 2 on usage
// or I/O errors.
func runPlan(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("plan", stderr)
	specs := fs.String("specs", "", "directory of the spec tree (required)")
	node := fs.String("node", "", "host name to plan for (required)")
	alive := fs.String("alive", "", "comma-separated alive hosts (default: every host in the specs)")
	unhealthy := fs.String("unhealthy", "", "comma-separated guest or guest:port whose health checks fail (default: none); the port picks the checks of that port")
	output := fs.String("o", "rules", "output: rules (iptables-restore text) or json (assignment with each target's state and share)")
	dispatch := fs.String("dispatch", "tree", "dispatch chain layout: tree (sublinear, the default) or linear (one rule per frontend, for comparison)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: weir plan --specs DIR --node NAME [--alive a,b,...] [--unhealthy guest[:port],...] [-o rules|json]")
		fmt.Fprintln(stderr, "\nPrints what NAME would apply: the iptables-restore text, or the assignment with")
		fmt.Fprintln(stderr, "each target's state and share of new connections. Exit 1 when the specs are invalid.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	opts, problems := planProblems(fs, *specs, *node, *output, *dispatch)
	sick, problem := parseGuestPorts(*unhealthy)
	if problem != "" {
		problems = append(problems, problem)
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(stderr, "weir plan: "+p)
		}
		fs.Usage()
		return exitUsage
	}

	s, code := loadPlanSpecs(*specs, stderr)
	if s == nil {
		return code
	}
	names := planAlive(s, *alive, *node, stderr)
	health, ok := planHealth(s, sick, stderr)
	if !ok {
		return exitUsage
	}
	p := plan.Assign(s, names, health)
	for _, w := range render.RenderWarnings(p, *node) {
		fmt.Fprintln(stderr, "weir plan: warning: "+w)
	}
	if *output == "json" {
		return writePlanJSON(stdout, stderr, *node, p)
	}
	return writePlanRules(stdout, p, *node, opts)
}

// planProblems lists what is wrong with the arguments of `weir plan`, and
// returns the render options --dispatch asks for.
func planProblems(fs *flag.FlagSet, specs, node, output, dispatch string) (render.RenderOptions, []string) {
	var problems []string
	if fs.NArg() > 0 {
		problems = append(problems, fmt.Sprintf("unexpected argument %q", fs.Arg(0)))
	}
	if specs == "" {
		problems = append(problems, "--specs is required")
	}
	if node == "" {
		problems = append(problems, "--node is required")
	}
	if output != "rules" && output != "json" {
		problems = append(problems, fmt.Sprintf("unknown output format %q (want rules or json)", output))
	}
	var opts render.RenderOptions
	switch dispatch {
	case "tree":
	case "linear":
		opts.Dispatch = render.LinearDispatch
	default:
		problems = append(problems, fmt.Sprintf("unknown dispatch %q (want tree or linear)", dispatch))
	}
	return opts, problems
}

// loadPlanSpecs loads the spec tree in dir. On failure it prints the
// FILE:LINE errors (exit 1) or the I/O error (exit 2) and returns nil.
func loadPlanSpecs(dir string, stderr io.Writer) (*spec.Spec, int) {
	s, err := spec.LoadDir(dir)
	if err != nil {
		var list spec.ErrorList
		if errors.As(err, &list) {
			for _, e := range list {
				fmt.Fprintln(stderr, e.Error())
			}
			return nil, exitFail
		}
		fmt.Fprintf(stderr, "weir plan: %v\n", err)
		return nil, exitUsage
	}
	return s, exitOK
}

// planAlive returns the hosts --alive names (every host of s when empty),
// warning about names that are not hosts of s, and about node.
func planAlive(s *spec.Spec, alive, node string, stderr io.Writer) []string {
	var names []string
	if alive == "" {
		for _, h := range s.Hosts {
			names = append(names, h.Name)
		}
	} else {
		for _, n := range strings.Split(alive, ",") {
			if n = strings.TrimSpace(n); n == "" {
				continue
			}
			if s.Host(n) == nil {
				fmt.Fprintf(stderr, "weir plan: warning: --alive names %q, which is not a host in the specs; ignored\n", n)
			}
			names = append(names, n)
		}
	}
	if s.Host(node) == nil {
		fmt.Fprintf(stderr, "weir plan: warning: %q is not a host in the specs; it sets no balancer\n", node)
	}
	return names
}

// writePlanJSON prints node's part of p with each target's share (-o json).
func writePlanJSON(stdout, stderr io.Writer, node string, p *plan.Plan) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(planOutput{Node: node, Digest: p.Digest(), Plan: p.ForHost(node)}); err != nil {
		fmt.Fprintf(stderr, "weir plan: %v\n", err)
		return exitUsage
	}
	return exitOK
}

// writePlanRules prints the iptables-restore text node would apply for p,
// under a comment header with the digest, the alive set, the counts and the
// jumps into the built-in chains.
func writePlanRules(stdout io.Writer, p *plan.Plan, node string, opts render.RenderOptions) int {
	rs := render.RenderWith(p, node, opts)
	var b strings.Builder
	fmt.Fprintf(&b, "# weir plan for %s, digest %s\n", node, p.Digest())
	fmt.Fprintf(&b, "# alive: %s\n", strings.Join(p.Alive, ","))
	writeHealthHeader(&b, p.ForHost(node))
	fmt.Fprintf(&b, "# %s, %s\n", plural(rs.Balancers(), "balancer"), plural(rs.Rules(), "rule"))
	fmt.Fprintln(&b, "# jumps weir ensures in the built-in chains:")
	for _, t := range rs.Tables {
		for _, j := range t.Jumps {
			fmt.Fprintf(&b, "#   -t %s -A %s %s\n", t.Name, j.Chain, strings.Join(j.Rule, " "))
		}
	}
	if _, err := io.WriteString(stdout, b.String()); err != nil {
		return exitUsage
	}
	if _, err := stdout.Write(rs.Bytes()); err != nil {
		return exitUsage
	}
	return exitOK
}
