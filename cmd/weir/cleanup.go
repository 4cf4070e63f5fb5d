package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"weir/reconcile/netfilter"
)

// cleanupOptions are the flags of `weir cleanup`.
type cleanupOptions struct {
	backend, netns string
}

func (c *cli) newCleanupCmd() *cobra.Command {
	var o cleanupOptions
	cmd := &cobra.Command{
		Use:   "cleanup",
		Short: "remove every WEIR- chain and the jumps into them",
		Long: "Removes every chain whose name starts with WEIR- and every jump into one from the host's\n" +
			"netfilter (iptables and ip6tables), and nothing else; it prints one line per thing removed,\n" +
			"those of ip6tables ending in (ip6tables). Exit 0 when done, 1\n" +
			"when a removal failed, 2 when iptables cannot be used.",
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error { return c.cleanup(o) },
	}
	fs := cmd.Flags()
	fs.StringVar(&o.backend, "backend", netfilter.BackendAuto, "iptables backend: auto, nft or legacy")
	fs.StringVar(&o.netns, "netns", "", "run inside this network namespace (a name under /run/netns; for tests and demos)")
	_ = fs.MarkHidden("netns")
	completeWords(cmd, "backend", netfilter.BackendAuto, netfilter.BackendNFT, netfilter.BackendLegacy)
	return cmd
}

// cleanup is `weir cleanup`, one family after the other: iptables, then
// ip6tables, whose lines end in " (ip6tables)".
func (c *cli) cleanup(o cleanupOptions) error {
	fams, skipped, err := families(o.backend, o.netns)
	if err != nil {
		return failed(exitUsage, err)
	}
	for _, s := range skipped {
		fmt.Fprintln(c.stderr, "weir cleanup: warning: "+s)
	}
	removed := 0
	for _, f := range fams {
		res, err := netfilter.Cleanup(c.ctx, f.nf)
		for _, j := range res.Jumps {
			fmt.Fprintf(c.stdout, "removed jump %s%s\n", j, f.label())
		}
		for _, ch := range res.Chains {
			fmt.Fprintf(c.stdout, "removed chain %s%s\n", ch, f.label())
		}
		if err != nil {
			return failed(exitFail, fmt.Errorf("%s: %w", f.command, err))
		}
		removed += len(res.Jumps) + len(res.Chains)
	}
	if removed == 0 {
		fmt.Fprintf(c.stdout, "nothing to remove (%s backend)\n", fams[0].nf.Backend())
	}
	return nil
}
