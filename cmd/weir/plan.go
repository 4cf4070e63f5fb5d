package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"weir/reconcile/netfilter"
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

// planOptions are the flags of `weir plan`.
type planOptions struct {
	specs, node, alive, unhealthy string
	output, dispatch              *enum
}

func (c *cli) newPlanCmd() *cobra.Command {
	o := planOptions{dispatch: &enum{what: "dispatch", value: "tree", allowed: []string{"tree", "linear"}}}
	cmd := &cobra.Command{
		Use:   "plan [DIR] --node NAME",
		Short: "print what a node would apply (iptables-restore text or JSON)",
		Long: "Prints what host NAME would apply for the spec tree in DIR (or --specs) when the hosts\n" +
			"in --alive (default: every host of the tree) are alive and the health checks of the\n" +
			"guests in --unhealthy fail: the iptables-restore text, or the assignment with each\n" +
			"target's state and share of new connections (-o json). Exit 1 with FILE:LINE: message\n" +
			"lines when the tree is invalid, 2 on usage or I/O errors, including a NAME or a guest\n" +
			"that is not in the specs.",
		Example: "  weir plan examples/basic --node host-a\n  weir plan examples/basic --node host-a --alive host-a,host-b -o json",
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := c.specDir(cmd, o.specs, args)
			if err != nil {
				return err
			}
			o.specs = dir
			return c.plan(o)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.specs, "specs", "", "directory of the spec tree (instead of DIR)")
	fs.StringVar(&o.node, "node", "", "host name to plan for (required)")
	fs.StringVar(&o.alive, "alive", "", "comma-separated alive hosts (default: every host in the specs)")
	fs.StringVar(&o.unhealthy, "unhealthy", "", "comma-separated guest or guest:port whose health checks fail (default: none); the port picks the checks of that port")
	o.output = outputFlag(cmd, "rules", "json")
	fs.Var(o.dispatch, "dispatch", "dispatch chain layout: tree (sublinear, the default) or linear (one rule per frontend, for comparison)")
	completeWords(cmd, "dispatch", "tree", "linear")
	_ = cmd.MarkFlagDirname("specs")
	return cmd
}

// plan is `weir plan` once the spec directory is known.
func (c *cli) plan(o planOptions) error {
	if o.node == "" {
		return usageErr("--node is required")
	}
	sick, problem := parseGuestPorts(o.unhealthy)
	if problem != "" {
		return usageErr("%s", problem)
	}
	var opts render.RenderOptions
	if o.dispatch.value == "linear" {
		opts.Dispatch = render.LinearDispatch
	}
	s, err := c.loadPlanSpecs(o.specs, o.output.value)
	if err != nil {
		return err
	}
	if s.Host(o.node) == nil {
		return usageErr("--node %q is not a host in the specs (hosts: %s)", o.node, hostNames(s))
	}
	names := planAlive(s, o.alive, c.stderr)
	health, err := planHealth(s, sick, c.stderr)
	if err != nil {
		return err
	}
	p := plan.Assign(s, names, health)
	if o.output.value == "json" {
		return writePlanJSON(c.stdout, o.node, p)
	}
	return writePlanRules(c.stdout, p, o.node, opts)
}

// hostNames lists the hosts of s for an error message.
func hostNames(s *spec.Spec) string {
	names := make([]string, 0, len(s.Hosts))
	for _, h := range s.Hosts {
		names = append(names, h.Name)
	}
	return strings.Join(names, ", ")
}

// loadPlanSpecs loads the spec tree in dir. Invalid specs print their
// FILE:LINE errors (on stderr, or as JSON on stdout with -o json) and exit
// 1; an unreadable dir exits 2.
func (c *cli) loadPlanSpecs(dir, output string) (*spec.Spec, error) {
	s, err := spec.LoadDir(dir)
	if err == nil {
		return s, nil
	}
	var list spec.ErrorList
	if !errors.As(err, &list) {
		return nil, failed(exitUsage, err)
	}
	if output == "json" {
		res := planError{Error: "invalid specs", Errors: []validateError{}}
		for _, e := range list {
			res.Errors = append(res.Errors, validateError{File: e.File, Line: e.Line, Message: e.Msg})
		}
		if err := writeJSON(c.stdout, res); err != nil {
			return nil, failed(exitUsage, err)
		}
	}
	for _, e := range list {
		fmt.Fprintln(c.stderr, e.Error())
	}
	return nil, exit(exitFail)
}

// planError is the -o json output of weir plan for an invalid tree.
type planError struct {
	Error  string          `json:"error"`
	Errors []validateError `json:"errors"`
}

// planAlive returns the hosts --alive names (every host of s when empty),
// warning about names that are not hosts of s.
func planAlive(s *spec.Spec, alive string, stderr io.Writer) []string {
	var names []string
	if alive == "" {
		for _, h := range s.Hosts {
			names = append(names, h.Name)
		}
		return names
	}
	for _, n := range strings.Split(alive, ",") {
		if n = strings.TrimSpace(n); n == "" {
			continue
		}
		if s.Host(n) == nil {
			fmt.Fprintf(stderr, "weir plan: warning: --alive names %q, which is not a host in the specs; ignored\n", n)
		}
		names = append(names, n)
	}
	return names
}

// writePlanJSON prints node's part of p with each target's share (-o json).
func writePlanJSON(stdout io.Writer, node string, p *plan.Plan) error {
	if err := writeJSON(stdout, planOutput{Node: node, Digest: p.Digest(), Plan: p.ForHost(node)}); err != nil {
		return failed(exitUsage, err)
	}
	return nil
}

// writePlanRules prints the restore text node would apply for p, under a
// comment header with the digest, the alive set, the counts and the jumps
// into the built-in chains. When node sets IPv6 balancers, each family
// follows under a header of its own ("# IPv4 (iptables-restore): …",
// "# IPv6 (ip6tables-restore): …"); otherwise the IPv4 text alone follows,
// as it always did (README.md, "weir plan").
func writePlanRules(stdout io.Writer, p *plan.Plan, node string, opts render.RenderOptions) error {
	rss := render.RenderAll(p, node, opts)
	var b strings.Builder
	fmt.Fprintf(&b, "# weir plan for %s, digest %s\n", node, p.Digest())
	fmt.Fprintf(&b, "# alive: %s\n", strings.Join(p.Alive, ","))
	writeHealthHeader(&b, p.ForHost(node))
	fmt.Fprintf(&b, "# %s, %s\n", plural(rss.Balancers(), "balancer"), plural(rss.Rules(), "rule"))
	if rss[spec.IPv6].Balancers() == 0 {
		writeFamilyRules(&b, rss[spec.IPv4])
	} else {
		for _, f := range spec.Families() {
			fmt.Fprintf(&b, "# %s (%s-restore): %s, %s\n", f, netfilter.Command(f),
				plural(rss[f].Balancers(), "balancer"), plural(rss[f].Rules(), "rule"))
			writeFamilyRules(&b, rss[f])
		}
	}
	if _, err := io.WriteString(stdout, b.String()); err != nil {
		return failed(exitUsage, err)
	}
	return nil
}

// writeFamilyRules writes the jumps of one family's ruleset, as comments,
// and its restore text.
func writeFamilyRules(b *strings.Builder, rs *render.Ruleset) {
	fmt.Fprintln(b, "# jumps weir ensures in the built-in chains:")
	for _, t := range rs.Tables {
		for _, j := range t.Jumps {
			fmt.Fprintf(b, "#   -t %s -A %s %s\n", t.Name, j.Chain, strings.Join(j.Rule, " "))
		}
	}
	b.Write(rs.Bytes())
}
