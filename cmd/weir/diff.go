package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/pmezard/go-difflib/difflib"
	"github.com/spf13/cobra"

	"weir/cluster"
	"weir/reconcile/netfilter"
)

// diffOptions are the flags of `weir diff`.
type diffOptions struct {
	client         apiClient
	backend, netns string
	context        int
}

func (c *cli) newDiffCmd() *cobra.Command {
	var o diffOptions
	cmd := &cobra.Command{
		Use:   "diff [--api ADDR]",
		Short: "show how the live rules differ from what the local agent wants applied",
		Long: "Compares the rules weir owns in this host's netfilter (WEIR- chains and the jumps into\n" +
			"them) with the ones the local agent wants applied (its GET /rules), both in the form\n" +
			"iptables-save prints them, and prints the differences as a unified diff: lines with -\n" +
			"are live only, lines with + are what the agent would write. Exit 0 when they agree, 1\n" +
			"when they differ, 2 when either side cannot be read. The agent repairs drift on its\n" +
			"next --resync; run it where the agent runs, as root.",
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error { return c.diff(o) },
	}
	fs := cmd.Flags()
	o.client.flags(cmd, 10*time.Second, "how long to wait for the agent's answer")
	fs.StringVar(&o.backend, "backend", netfilter.BackendAuto, "iptables backend to read the live rules with: auto (the one the agent names), nft or legacy")
	fs.IntVarP(&o.context, "unified", "U", 3, "lines of context around each difference")
	fs.StringVar(&o.netns, "netns", "", "read the rules inside this network namespace (a name under /run/netns; for tests)")
	_ = fs.MarkHidden("netns")
	completeWords(cmd, "backend", netfilter.BackendAuto, netfilter.BackendNFT, netfilter.BackendLegacy)
	return cmd
}

// diff is `weir diff`, one address family after the other.
func (c *cli) diff(o diffOptions) error {
	if err := o.client.readToken(); err != nil {
		return failed(exitUsage, err)
	}
	fams, skipped, err := families(o.backend, o.netns)
	if err != nil {
		return failed(exitUsage, err)
	}
	for _, s := range skipped {
		fmt.Fprintln(c.stderr, "weir diff: warning: "+s)
	}
	differ := false
	for _, f := range fams {
		d, err := familyDiff(c.ctx, o, f)
		if err != nil {
			return failed(exitUsage, err)
		}
		if d != "" {
			differ = true
			io.WriteString(c.stdout, d)
		}
	}
	if differ {
		return exit(exitFail)
	}
	return nil
}

// familyDiff returns the unified diff of f's live owned rules against the
// agent's, "" when they agree.
func familyDiff(ctx context.Context, o diffOptions, f family) (string, error) {
	want, hdr, err := o.client.do(ctx, http.MethodGet, "/rules?family="+f.name, nil, 256<<20)
	if err != nil {
		return "", err
	}
	if f, err = agentsBackend(o, f, hdr.Get("Weir-Backend")); err != nil {
		return "", err
	}
	live, err := netfilter.LiveText(ctx, f.nf)
	if err != nil {
		return "", fmt.Errorf("%s: %w", f.command, err)
	}
	if bytes.Equal(live, want) {
		return "", nil
	}
	return difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A:        lines(live),
		B:        lines(want),
		FromFile: fmt.Sprintf("live %s (%s backend)", f.command, f.nf.Backend()),
		ToFile: fmt.Sprintf("agent wants (revision %s, digest %s)",
			cluster.ShortRevision(hdr.Get("Weir-Revision")), cluster.ShortDigest(hdr.Get("Weir-Digest"))),
		Context: o.context,
	})
}

// agentsBackend returns f read through the backend the agent named
// (Weir-Backend), unless --backend chose one: on a host where both
// iptables-nft and iptables-legacy hold rules, the live side must be the
// agent's.
func agentsBackend(o diffOptions, f family, backend string) (family, error) {
	if o.backend != netfilter.BackendAuto || backend == "" || backend == f.nf.Backend() {
		return f, nil
	}
	nf, err := netfilter.NewIPTables(netfilter.IPTablesOptions{Family: f.nf.Family(), Backend: backend, Netns: o.netns})
	if err != nil {
		return f, fmt.Errorf("%s with the agent's %s backend: %w", f.command, backend, err)
	}
	f.nf = nf
	return f, nil
}

// lines splits text into lines that keep their "\n", as difflib wants them.
func lines(text []byte) []string {
	return difflib.SplitLines(strings.TrimSuffix(string(text), "\n"))
}
