package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"weir/agent"
	"weir/cluster"
)

// statusPoll is how often `weir status --wait` asks again.
const statusPoll = 500 * time.Millisecond

// runStatus shows the cluster as gossip tells it: by asking the local agent's
// API (GET /status), or, with --join, by joining the cluster itself as an
// observer for a moment. Exit 0 when the cluster has converged on the newest
// revision, 1 when it has not (with --wait: not by the deadline), 2 when no
// answer could be had.
func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("status", stderr)
	api := fs.String("api", "127.0.0.1:7947", "the local agent's HTTP API address")
	tokenFile := fs.String("api-token-file", "", "file holding the agent's API token (its --api-token-file)")
	output := fs.String("o", "table", "output: table or json")
	wait := fs.Duration("wait", 0, "poll until converged on the newest revision, up to this long (e.g. 60s)")
	revision := fs.String("revision", "", "converged means every alive host is on this revision: a commit or dir:HASH, full or abbreviated (at least 4 hex digits)")
	timeout := fs.Duration("timeout", 10*time.Second, "how long one attempt to reach the agent or to join the cluster may take")
	join := fs.String("join", "", "observer mode: join the cluster at these seeds IP:PORT,... instead of asking an agent")
	keyFile := fs.String("gossip-key-file", "", "observer mode: gossip key file (one base64 key per line)")
	clusterName := fs.String("cluster", "", "observer mode: cluster name (memberlist label)")
	bind := fs.String("bind", "", "observer mode: IP:PORT to gossip from (default: the local address that routes to the first seed, any port)")
	profile := fs.String("gossip-profile", "lan", "observer mode: memberlist profile lan, local or wan")
	name := fs.String("observer-name", "", "observer mode: node name (default weir-status-HOSTNAME-PID)")
	settle := fs.Duration("settle", time.Second, "observer mode: how long to listen after joining before reporting")
	balancer := fs.String("balancer", "", "show one balancer's targets (state, share, connections) as the local agent sees them")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: weir status [--api ADDR] [-o table|json] [--wait DURATION [--revision REV]]\n"+
			"       weir status --balancer NAME [--api ADDR] [-o table|json]\n"+
			"       weir status --join IP:PORT[,...] [--gossip-key-file F] [--cluster NAME] [-o table|json] [--wait DURATION [--revision REV]]\n\nflags:")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return exitUsage
	}
	if *balancer != "" {
		return runStatusBalancer(ctx, fs, balancerQuery{name: *balancer, api: *api, tokenFile: *tokenFile, output: *output, timeout: *timeout}, stdout, stderr)
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "weir status: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if *output != "table" && *output != "json" {
		fmt.Fprintf(stderr, "weir status: -o %q: want table or json\n", *output)
		return exitUsage
	}
	if *revision != "" && !cluster.ValidRevisionPrefix(*revision) {
		fmt.Fprintf(stderr, "weir status: --revision %q: want a commit or dir:HASH, at least 4 hex digits\n", *revision)
		return exitUsage
	}
	done := doneWhen(*revision)

	var token []byte
	if *tokenFile != "" {
		var err error
		if token, err = agent.ReadSecretFile("API token", *tokenFile); err != nil {
			fmt.Fprintf(stderr, "weir status: %v\n", err)
			return exitUsage
		}
	}
	fetch := agentStatus(*api, token, *timeout)
	if *join != "" {
		obs, err := startObserver(ctx, observerOptions{
			seeds: splitList(*join), keyFile: *keyFile, label: *clusterName, bind: *bind,
			profile: *profile, name: *name, timeout: *timeout, settle: *settle, stderr: stderr,
		})
		if err != nil {
			fmt.Fprintf(stderr, "weir status: %v\n", err)
			return exitUsage
		}
		defer leaveObserver(obs, stderr)
		fetch = observerStatus(obs, *keyFile != "")
	}

	s, err := waitStatus(ctx, fetch, done, *wait)
	if err != nil && s == nil {
		fmt.Fprintf(stderr, "weir status: %v\n", err)
		if *wait > 0 {
			return exitFail
		}
		return exitUsage
	}
	if perr := printStatus(stdout, *output, *s); perr != nil {
		fmt.Fprintf(stderr, "weir status: %v\n", perr)
		return exitUsage
	}
	if ok, reason := done(*s); !ok {
		if *wait > 0 {
			fmt.Fprintf(stderr, "weir status: not converged after %v: %s\n", *wait, reason)
		}
		return exitFail
	}
	return exitOK
}

// doneWhen is what `weir status` waits for: the cluster converged on the
// newest revision, or, with --revision, on that revision.
func doneWhen(revision string) func(cluster.Status) (bool, string) {
	if revision == "" {
		return cluster.Status.Current
	}
	return func(s cluster.Status) (bool, string) { return s.OnRevision(revision) }
}

// agentStatus asks the agent's API at api for the status, with the API
// token when one is given.
func agentStatus(api string, token []byte, timeout time.Duration) func(context.Context) (cluster.Status, error) {
	client := &http.Client{Timeout: timeout}
	url := statusURL(api)
	return func(ctx context.Context) (cluster.Status, error) { return getStatus(ctx, client, url, token) }
}

// observerStatus builds the status from an observer's member view. An
// observer has no specs, so it cannot tell strangers from hosts (README.md).
func observerStatus(obs *cluster.Cluster, encrypted bool) func(context.Context) (cluster.Status, error) {
	return func(context.Context) (cluster.Status, error) {
		s := cluster.BuildStatus("", obs.Members())
		s.GossipEncrypted = encrypted
		return s, nil
	}
}

// leaveObserver leaves the cluster and stops the observer.
func leaveObserver(obs *cluster.Cluster, stderr io.Writer) {
	if err := obs.Leave(2 * time.Second); err != nil {
		fmt.Fprintf(stderr, "weir status: %v\n", err)
	}
	_ = obs.Shutdown()
}

// waitStatus fetches once, or with wait > 0 polls until done says the
// cluster is where it should be or the wait is over. It returns the last
// status it got (nil if none) and the last fetch error.
func waitStatus(ctx context.Context, fetch func(context.Context) (cluster.Status, error), done func(cluster.Status) (bool, string), wait time.Duration) (*cluster.Status, error) {
	deadline := time.Now().Add(wait)
	var last *cluster.Status
	var lastErr error
	for {
		s, err := fetch(ctx)
		if err == nil {
			last, lastErr = &s, nil
			if ok, _ := done(s); ok {
				return last, nil
			}
		} else {
			lastErr = err
		}
		if wait <= 0 || !time.Now().Add(statusPoll).Before(deadline) {
			return last, lastErr
		}
		select {
		case <-ctx.Done():
			return last, errors.Join(lastErr, ctx.Err())
		case <-time.After(statusPoll):
		}
	}
}

// statusURL accepts the API as "host:port" or as a URL.
func statusURL(api string) string { return apiURL(api, "/status") }

func getStatus(ctx context.Context, client *http.Client, url string, token []byte) (cluster.Status, error) {
	var s cluster.Status
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return s, fmt.Errorf("asking the agent at %s: %w", url, err)
	}
	if len(token) > 0 {
		req.Header.Set("Authorization", "Bearer "+string(token))
	}
	resp, err := client.Do(req)
	if err != nil {
		return s, fmt.Errorf("asking the agent (is `weir agent` running with this --api?): %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return s, fmt.Errorf("agent at %s answered %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&s); err != nil {
		return s, fmt.Errorf("reading status from %s: %w", url, err)
	}
	return s, nil
}

func printStatus(w io.Writer, output string, s cluster.Status) error {
	if output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(s); err != nil {
			return fmt.Errorf("writing status JSON: %w", err)
		}
		return nil
	}
	return writeStatusTable(w, s)
}

type observerOptions struct {
	seeds                               []string
	keyFile, label, bind, profile, name string
	timeout, settle                     time.Duration
	stderr                              io.Writer
}

// startObserver joins the cluster as an observer (listed, never a host) and
// waits until it has a peer and has listened for a moment.
func startObserver(ctx context.Context, o observerOptions) (*cluster.Cluster, error) {
	if len(o.seeds) == 0 {
		return nil, errors.New("--join names no seed")
	}
	var keys [][]byte
	if o.keyFile != "" {
		var err error
		if keys, err = cluster.ReadKeyFile(o.keyFile); err != nil {
			return nil, err
		}
	}
	if o.bind == "" {
		o.bind = routeTo(o.seeds[0])
	}
	if o.name == "" {
		host, _ := os.Hostname()
		o.name = fmt.Sprintf("weir-status-%s-%d", host, os.Getpid())
	}
	c, err := cluster.New(cluster.Config{
		Node: o.name, Bind: o.bind, Join: o.seeds, Keys: keys, Label: o.label,
		Profile: o.profile, Observer: true, SettleTime: o.timeout,
		JoinBackoff: 200 * time.Millisecond, JoinBackoffMax: time.Second,
		Logger: slog.New(slog.NewTextHandler(o.stderr, &slog.HandlerOptions{Level: slog.LevelError})),
	})
	if err != nil {
		return nil, err
	}
	// Settled turns true on the first peer, or when the timeout passes alone.
	for !c.Settled() {
		select {
		case <-ctx.Done():
			_ = c.Shutdown()
			return nil, ctx.Err()
		case <-c.Changes():
		case <-time.After(50 * time.Millisecond):
		}
	}
	if len(c.AliveHosts()) == 0 {
		_ = c.Shutdown()
		return nil, fmt.Errorf("could not join the cluster at %s within %v (wrong address, --cluster or --gossip-key-file?)",
			strings.Join(o.seeds, ","), o.timeout)
	}
	// Joining synced the full member list; listen a moment longer for
	// state updates already on their way.
	select {
	case <-ctx.Done():
	case <-time.After(o.settle):
	}
	return c, nil
}

// routeTo picks the local address the kernel would use to reach seed, so an
// observer on a workstation binds where the cluster can reach it back.
// Dialing UDP sends nothing.
func routeTo(seed string) string {
	if _, _, err := net.SplitHostPort(seed); err != nil {
		seed = net.JoinHostPort(seed, fmt.Sprint(cluster.DefaultPort))
	}
	conn, err := net.Dial("udp", seed)
	if err != nil {
		return "0.0.0.0:0"
	}
	defer conn.Close()
	ip := conn.LocalAddr().(*net.UDPAddr).IP
	return net.JoinHostPort(ip.String(), "0")
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
