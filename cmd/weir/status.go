package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"weir/cluster"
)

// statusPoll is how often `weir status --wait` asks again.
const statusPoll = 500 * time.Millisecond

// statusOptions are the flags of `weir status`.
type statusOptions struct {
	client                           apiClient
	output                           *enum
	wait, settle                     time.Duration
	revision, join, keyFile, cluster string
	bind, profile, name              string
	balancer                         string
}

func (c *cli) newStatusCmd() *cobra.Command {
	var o statusOptions
	cmd := &cobra.Command{
		Use:   "status [--api ADDR | --join IP:PORT,...] [-o table|json] [--wait DURATION [--revision REV]] [--balancer NAME]",
		Short: "show the cluster as gossip tells it",
		Long: "Shows the cluster as gossip tells it: by asking the local agent's API (GET /status), or,\n" +
			"with --join, by joining the cluster as an observer for a moment. Exit 0 when the cluster\n" +
			"has converged on the newest revision (on REV with --revision), 1 when it has not (with\n" +
			"--wait: not by the deadline), 2 when no answer could be had. With -o json the answer,\n" +
			"or {\"error\": \"...\"} when there is none, is one JSON object on stdout.\n\n" +
			"With --balancer NAME it shows that balancer's targets as the local agent sees them\n" +
			"(GET /balancers/NAME): state, share and the new connections this host's rules sent\n" +
			"each; exit 1 when the agent has no balancer of that name.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.balancer != "" {
				return c.statusBalancer(cmd, o)
			}
			return c.status(o)
		},
	}
	fs := cmd.Flags()
	o.client.flags(cmd, 10*time.Second, "how long one attempt to reach the agent or to join the cluster may take")
	o.output = outputFlag(cmd, "table", "json")
	fs.DurationVar(&o.wait, "wait", 0, "poll until converged on the newest revision, up to this long (e.g. 60s)")
	fs.StringVar(&o.revision, "revision", "", "converged means every alive host is on this revision: a commit or dir:HASH, full or abbreviated (at least 4 hex digits)")
	fs.StringVar(&o.join, "join", "", "observer mode: join the cluster at these seeds IP:PORT,... instead of asking an agent")
	fs.StringVar(&o.keyFile, "gossip-key-file", "", "observer mode: gossip key file (one base64 key per line)")
	fs.StringVar(&o.cluster, "cluster", "", "observer mode: cluster name (memberlist label)")
	fs.StringVar(&o.bind, "bind", "", "observer mode: IP:PORT to gossip from (default: the local address that routes to the first seed, any port)")
	fs.StringVar(&o.profile, "gossip-profile", "lan", "observer mode: memberlist profile lan, local or wan")
	fs.StringVar(&o.name, "observer-name", "", "observer mode: node name (default weir-status-HOSTNAME-PID)")
	fs.DurationVar(&o.settle, "settle", time.Second, "observer mode: how long to listen after joining before reporting")
	fs.StringVar(&o.balancer, "balancer", "", "show one balancer's targets (state, share, connections) as the local agent sees them")
	completeWords(cmd, "gossip-profile", "lan", "local", "wan")
	return cmd
}

// status is `weir status`: exit 0 when the cluster has converged on the
// newest revision, 1 when it has not (with --wait: not by the deadline), 2
// when no answer could be had.
func (c *cli) status(o statusOptions) error {
	if o.revision != "" && !cluster.ValidRevisionPrefix(o.revision) {
		return usageErr("--revision %q: want a commit or dir:HASH, at least 4 hex digits", o.revision)
	}
	done := doneWhen(o.revision)
	if err := o.client.readToken(); err != nil {
		return failed(exitUsage, err)
	}
	fetch := agentStatus(o.client)
	if o.join != "" {
		obs, err := startObserver(c.ctx, observerOptions{
			seeds: splitList(o.join), keyFile: o.keyFile, label: o.cluster, bind: o.bind,
			profile: o.profile, name: o.name, timeout: o.client.timeout, settle: o.settle, stderr: c.stderr,
		})
		if err != nil {
			return failed(exitUsage, err)
		}
		defer leaveObserver(obs, c.stderr)
		fetch = observerStatus(obs, o.keyFile != "")
	}

	s, err := waitStatus(c.ctx, fetch, done, o.wait)
	if err != nil && s == nil {
		if o.wait > 0 {
			return failed(exitFail, err)
		}
		return failed(exitUsage, err)
	}
	if perr := printStatus(c.stdout, o.output.value, *s); perr != nil {
		return failed(exitUsage, perr)
	}
	if ok, reason := done(*s); !ok {
		if o.wait > 0 {
			fmt.Fprintf(c.stderr, "weir status: not converged after %v: %s\n", o.wait, reason)
		}
		return exit(exitFail)
	}
	return nil
}

// doneWhen is what `weir status` waits for: the cluster converged on the
// newest revision, or, with --revision, on that revision.
func doneWhen(revision string) func(cluster.Status) (bool, string) {
	if revision == "" {
		return cluster.Status.Current
	}
	return func(s cluster.Status) (bool, string) { return s.OnRevision(revision) }
}

// agentStatus asks the agent's API for the status.
func agentStatus(a apiClient) func(context.Context) (cluster.Status, error) {
	return func(ctx context.Context) (cluster.Status, error) {
		var s cluster.Status
		err := a.getJSON(ctx, "/status", &s)
		return s, err
	}
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

func printStatus(w io.Writer, output string, s cluster.Status) error {
	if output == "json" {
		return writeJSON(w, s)
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
