package main

import (
	"context"
	"fmt"
	"io"

	"weir/reconcile/netfilter"
)

// runCleanup removes every WEIR- chain and every jump into one from the host's
// netfilter, and nothing else. It prints one line per thing removed.
func runCleanup(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("cleanup", stderr)
	backend := fs.String("backend", netfilter.BackendAuto, "iptables backend: auto, nft or legacy")
	ns := fs.String("netns", "", "run inside this network namespace (a name under /run/netns; for tests and demos)")
	if err := parseFlags(fs, args); err != nil {
		return exitUsage
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "weir cleanup: unexpected arguments %q\n", fs.Args())
		return exitUsage
	}
	nf, err := netfilter.NewIPTables(netfilter.IPTablesOptions{Backend: *backend, Netns: *ns})
	if err != nil {
		fmt.Fprintf(stderr, "weir cleanup: %v\n", err)
		return exitUsage
	}
	res, err := netfilter.Cleanup(ctx, nf)
	for _, j := range res.Jumps {
		fmt.Fprintf(stdout, "removed jump %s\n", j)
	}
	for _, c := range res.Chains {
		fmt.Fprintf(stdout, "removed chain %s\n", c)
	}
	if err != nil {
		fmt.Fprintf(stderr, "weir cleanup: %v\n", err)
		return exitFail
	}
	if len(res.Jumps)+len(res.Chains) == 0 {
		fmt.Fprintf(stdout, "nothing to remove (%s backend)\n", nf.Backend())
	}
	return exitOK
}
