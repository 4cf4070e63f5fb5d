package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"weir/agent"
	"weir/cluster"
)

// errNoSuchBalancer is the agent's 404: the applied revision has no
// balancer of that name.
var errNoSuchBalancer = errors.New("no such balancer")

// statusBalancer prints one balancer as the local agent sees it (GET
// /balancers/NAME): exit 0, 1 when the agent has no balancer of that name,
// 2 when there is no answer or the flags do not go with --balancer.
func (c *cli) statusBalancer(cmd *cobra.Command, o statusOptions) error {
	for _, name := range []string{"wait", "revision", "join"} {
		if cmd.Flags().Changed(name) {
			return usageErr("--%s does not go with --balancer", name)
		}
	}
	if err := o.client.readToken(); err != nil {
		return failed(exitUsage, err)
	}
	var st agent.BalancerStatus
	err := o.client.getJSON(c.ctx, "/balancers/"+url.PathEscape(o.balancer), &st)
	if errors.Is(err, errNotFound) {
		return failed(exitFail, fmt.Errorf("%w: %w", errNoSuchBalancer, err))
	}
	if err != nil {
		return failed(exitUsage, err)
	}
	if err := printBalancer(c.stdout, o.output.value, st); err != nil {
		return failed(exitUsage, err)
	}
	return nil
}

// printBalancer writes st as JSON or as a table.
func printBalancer(w io.Writer, output string, st agent.BalancerStatus) error {
	if output == "json" {
		return writeJSON(w, st)
	}
	return writeBalancerTable(w, st)
}

// writeBalancerTable prints a balancer's line, then one row per target:
//
//	balancer frontend-orders: 198.20.0.10:80/tcp, random, revision 1a2b3c4, set by host-a
//	GUEST     HOST    ADDRESS          WEIGHT  STATE    SHARE  CONNECTIONS
//	orders-1  host-b  198.19.2.2:8080  3       healthy  75.0%  1200
func writeBalancerTable(w io.Writer, st agent.BalancerStatus) error {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "balancer %s: %s, %s, revision %s, set by %s\n", st.Name, st.Frontend, st.Strategy,
		cluster.ShortRevision(st.Revision), orNone(strings.Join(st.SettingHosts, ", ")))
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GUEST\tHOST\tADDRESS\tWEIGHT\tSTATE\tSHARE\tCONNECTIONS")
	counted := false
	for _, t := range st.Targets {
		conns := "-"
		if t.Connections != nil {
			conns, counted = strconv.FormatUint(*t.Connections, 10), true
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%.1f%%\t%s\n", t.Guest, t.Host, t.Address, t.Weight, t.State, 100*t.Share, conns)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("rendering balancer table: %w", err)
	}
	if st.FailOpen {
		buf.WriteString("fail open: no target with weight above 0 passes its health check, so all of them get connections\n")
	}
	if !counted {
		buf.WriteString("connections: - (this host does not set the balancer, or its counters could not be read)\n")
	}
	if _, err := w.Write(trimTrailing(buf.Bytes())); err != nil {
		return fmt.Errorf("writing balancer table: %w", err)
	}
	return nil
}

// trimTrailing removes the spaces tabwriter leaves at the ends of lines.
func trimTrailing(b []byte) []byte {
	var out bytes.Buffer
	for _, line := range strings.SplitAfter(string(b), "\n") {
		body, nl := strings.CutSuffix(line, "\n")
		out.WriteString(strings.TrimRight(body, " "))
		if nl {
			out.WriteByte('\n')
		}
	}
	return out.Bytes()
}

func orNone(s string) string {
	if s == "" {
		return "no host"
	}
	return s
}
