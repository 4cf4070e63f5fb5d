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
// [-o rules|json]`: what NAME would apply for the spec tree in DIR when the
// hosts in --alive (default: every host of the tree) are alive. Exit 1 with
// FILE:LINE: message lines when the tree is invalid, 2 on usage or I/O errors.
func runPlan(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("plan", stderr)
	specs := fs.String("specs", "", "directory of the spec tree (required)")
	node := fs.String("node", "", "host name to plan for (required)")
	alive := fs.String("alive", "", "comma-separated alive hosts (default: every host in the specs)")
	output := fs.String("o", "rules", "output: rules (iptables-restore text) or json (assignment with shares)")
	dispatch := fs.String("dispatch", "tree", "dispatch chain layout: tree (sublinear, the default) or linear (one rule per frontend, for comparison)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: weir plan --specs DIR --node NAME [--alive a,b,...] [-o rules|json]")
		fmt.Fprintln(stderr, "\nPrints what NAME would apply: the iptables-restore text, or the assignment with")
		fmt.Fprintln(stderr, "each target's share of new connections. Exit 1 when the specs are invalid.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	var problems []string
	if fs.NArg() > 0 {
		problems = append(problems, fmt.Sprintf("unexpected argument %q", fs.Arg(0)))
	}
	if *specs == "" {
		problems = append(problems, "--specs is required")
	}
	if *node == "" {
		problems = append(problems, "--node is required")
	}
	if *output != "rules" && *output != "json" {
		problems = append(problems, fmt.Sprintf("unknown output format %q (want rules or json)", *output))
	}
	var opts render.RenderOptions
	switch *dispatch {
	case "tree":
	case "linear":
		opts.Dispatch = render.LinearDispatch
	default:
		problems = append(problems, fmt.Sprintf("unknown dispatch %q (want tree or linear)", *dispatch))
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(stderr, "weir plan: "+p)
		}
		fs.Usage()
		return exitUsage
	}

	s, err := spec.LoadDir(*specs)
	if err != nil {
		var list spec.ErrorList
		if errors.As(err, &list) {
			for _, e := range list {
				fmt.Fprintln(stderr, e.Error())
			}
			return exitFail
		}
		fmt.Fprintf(stderr, "weir plan: %v\n", err)
		return exitUsage
	}

	var names []string
	if *alive == "" {
		for _, h := range s.Hosts {
			names = append(names, h.Name)
		}
	} else {
		for _, n := range strings.Split(*alive, ",") {
			if n = strings.TrimSpace(n); n == "" {
				continue
			}
			if s.Host(n) == nil {
				fmt.Fprintf(stderr, "weir plan: warning: --alive names %q, which is not a host in the specs; ignored\n", n)
			}
			names = append(names, n)
		}
	}
	if s.Host(*node) == nil {
		fmt.Fprintf(stderr, "weir plan: warning: %q is not a host in the specs; it sets no balancer\n", *node)
	}

	p := plan.Assign(s, names)
	for _, w := range render.RenderWarnings(p, *node) {
		fmt.Fprintln(stderr, "weir plan: warning: "+w)
	}
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(planOutput{Node: *node, Digest: p.Digest(), Plan: p.ForHost(*node)}); err != nil {
			fmt.Fprintf(stderr, "weir plan: %v\n", err)
			return exitUsage
		}
		return exitOK
	}

	rs := render.RenderWith(p, *node, opts)
	var b strings.Builder
	fmt.Fprintf(&b, "# weir plan for %s, digest %s\n", *node, p.Digest())
	fmt.Fprintf(&b, "# alive: %s\n", strings.Join(p.Alive, ","))
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
