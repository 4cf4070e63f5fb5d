package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"weir/agent"
	"weir/cluster"
)

// balancerQuery is `weir status --balancer NAME` and the flags it takes.
type balancerQuery struct {
	name, api, tokenFile, output string
	timeout                      time.Duration
}

// errNoSuchBalancer is the agent's 404: the applied revision has no
// balancer of that name.
var errNoSuchBalancer = errors.New("no such balancer")

// runStatusBalancer prints one balancer as the local agent sees it (GET
// /balancers/NAME): exit 0, 1 when the agent has no balancer of that name,
// 2 when there is no answer or the flags do not go with --balancer.
func runStatusBalancer(ctx context.Context, fs *flag.FlagSet, q balancerQuery, stdout, stderr io.Writer) int {
	for _, name := range []string{"wait", "revision", "join"} {
		if f := fs.Lookup(name); f != nil && f.Value.String() != f.DefValue {
			fmt.Fprintf(stderr, "weir status: --%s does not go with --balancer\n", name)
			return exitUsage
		}
	}
	if fs.NArg() != 0 || (q.output != "table" && q.output != "json") {
		fmt.Fprintln(stderr, "weir status: --balancer NAME takes no arguments and -o table or json")
		return exitUsage
	}
	var token []byte
	if q.tokenFile != "" {
		var err error
		if token, err = agent.ReadSecretFile("API token", q.tokenFile); err != nil {
			fmt.Fprintf(stderr, "weir status: %v\n", err)
			return exitUsage
		}
	}
	client := &http.Client{Timeout: q.timeout}
	st, err := getBalancer(ctx, client, apiURL(q.api, "/balancers/"+url.PathEscape(q.name)), token)
	if errors.Is(err, errNoSuchBalancer) {
		fmt.Fprintf(stderr, "weir status: %v\n", err)
		return exitFail
	}
	if err != nil {
		fmt.Fprintf(stderr, "weir status: %v\n", err)
		return exitUsage
	}
	if err := printBalancer(stdout, q.output, st); err != nil {
		fmt.Fprintf(stderr, "weir status: %v\n", err)
		return exitUsage
	}
	return exitOK
}

// getBalancer asks the agent at u for one balancer.
func getBalancer(ctx context.Context, client *http.Client, u string, token []byte) (agent.BalancerStatus, error) {
	var st agent.BalancerStatus
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return st, fmt.Errorf("asking the agent at %s: %w", u, err)
	}
	if len(token) > 0 {
		req.Header.Set("Authorization", "Bearer "+string(token))
	}
	resp, err := client.Do(req)
	if err != nil {
		return st, fmt.Errorf("asking the agent (is `weir agent` running with this --api?): %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		err := fmt.Errorf("agent at %s answered %s: %s", u, resp.Status, strings.TrimSpace(string(body)))
		if resp.StatusCode == http.StatusNotFound {
			err = fmt.Errorf("%w: %w", errNoSuchBalancer, err)
		}
		return st, err
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&st); err != nil {
		return st, fmt.Errorf("reading the balancer from %s: %w", u, err)
	}
	return st, nil
}

// apiURL is path on the API given as "host:port" or as a URL.
func apiURL(api, path string) string {
	if strings.HasPrefix(api, "http://") || strings.HasPrefix(api, "https://") {
		return strings.TrimSuffix(api, "/") + path
	}
	return "http://" + api + path
}

// printBalancer writes st as JSON or as a table.
func printBalancer(w io.Writer, output string, st agent.BalancerStatus) error {
	if output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(st); err != nil {
			return fmt.Errorf("writing balancer JSON: %w", err)
		}
		return nil
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
