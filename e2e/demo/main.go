// Command demo is `make demo`: it builds a 3-host network of namespaces with
// guests and a Git server, pushes examples/basic, runs a real `weir agent` on
// every host, shows `weir status` and how 100 connections from the source
// guest spread over the targets, commits a weight change, shows the new split,
// commits a health check, stops one target's server and shows the failover
// and the return, and tears everything down (also on Ctrl-C). It needs root.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"weir/e2e/lab"
)

func main() {
	lab.Main(func(ctx context.Context) int {
		if err := run(ctx, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "demo:", err)
			return 1
		}
		return 0
	})
}

// frontend is examples/basic's balancer address.
const frontend = "198.20.0.10:80"

// demo is one run of the demo: its lab, its agents, and where it prints.
type demo struct {
	out     io.Writer
	start   time.Time
	bin     string // the weir binary
	lab     *lab.Lab
	weir    *lab.Weir
	web     *lab.Guest           // the guest the connections come from
	files   map[string]string    // the specs last pushed
	commit  string               // and their commit
	servers map[string]*lab.Proc // the orders servers, by guest name
}

func run(ctx context.Context, out io.Writer) error {
	d := &demo{out: out, start: time.Now()}
	if err := d.prepare(ctx); err != nil {
		return err
	}
	d.step("building 3 hosts with one guest each, a bridge and a Git server (network namespaces)")
	l, err := lab.New(ctx, lab.Options{Hosts: 3, GuestsPerHost: 1, Git: true})
	if err != nil {
		return err
	}
	// Convergence is polled on the agents' API; the table shown is the CLI's.
	d.lab, d.weir = l, &lab.Weir{Bin: d.bin, Lab: l, StatusFromAPI: true}
	defer d.tearDown()
	steps := []func(context.Context) error{d.startServers, d.pushBasic, d.startAgents, d.showStatus, d.firstSplit,
		d.changeWeight, d.secondSplit, d.addHealthCheck, d.failover, d.recover}
	for _, next := range steps {
		if err := next(ctx); err != nil {
			return err
		}
	}
	d.showRules(ctx)
	return nil
}

// step prints the heading of a step with the time since the start.
func (d *demo) step(format string, args ...any) {
	fmt.Fprintf(d.out, "\n[%5.1fs] %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(format, args...))
}

// prepare checks for root and the tools, finds the weir binary and sweeps
// the leftovers of earlier runs.
func (d *demo) prepare(ctx context.Context) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root: the demo creates network namespaces, veth pairs and a bridge, and weir programs iptables rules inside them (try: sudo make demo)")
	}
	if err := checkTools(); err != nil {
		return err
	}
	bin, err := filepath.Abs("bin/weir")
	if err != nil {
		return err
	}
	if d.bin, err = lab.WeirBinary(ctx, ".", bin); err != nil {
		return err
	}
	if removed, err := lab.Sweep(""); err != nil {
		return fmt.Errorf("sweeping labs of earlier runs: %w", err)
	} else if len(removed) > 0 {
		fmt.Fprintf(d.out, "removed leftovers of earlier runs: %v\n", removed)
	}
	return nil
}

// tearDown removes the lab with everything in it.
func (d *demo) tearDown() {
	d.weir.CloseIdleConnections()
	d.lab.Close()
	d.lab.RemoveDir()
	fmt.Fprintf(d.out, "\n[%5.1fs] torn down: no namespace, process or rule of the demo is left\n", time.Since(d.start).Seconds())
}

// startServers draws the network and starts the orders servers on the
// guests of host-b and host-c.
func (d *demo) startServers(ctx context.Context) error {
	fmt.Fprint(d.out, topology)
	d.web = d.lab.Guest(1, 1)
	d.servers = map[string]*lab.Proc{}
	for i, name := range []string{"orders-1", "orders-2"} {
		p, err := d.lab.Serve(ctx, d.lab.Guest(i+2, 1), name, "tcp:8080")
		if err != nil {
			return err
		}
		d.servers[name] = p
	}
	return nil
}

// pushBasic pushes examples/basic to the Git server.
func (d *demo) pushBasic(ctx context.Context) error {
	files, from, err := specFiles()
	if err != nil {
		return err
	}
	if d.commit, err = d.lab.Git.PushFiles(ctx, "examples/basic", files); err != nil {
		return err
	}
	d.files = files
	d.step("git push %s → %s (commit %.12s)", from, d.lab.Git.URL(), d.commit)
	return nil
}

// startAgents starts an agent on every host and waits until they converge.
func (d *demo) startAgents(ctx context.Context) error {
	hosts := d.lab.Hosts
	err := d.weir.StartAgents(hosts, func(h *lab.Host) []string {
		return append(lab.JoinArgs(hosts, h), "--repo", d.lab.Git.URL(), "--poll", "2s", "--resync", "5s")
	})
	if err != nil {
		return err
	}
	d.step("started weir agent on host-a, host-b, host-c (gossip encrypted: --gossip-key-file from weir keygen, mode 0600); waiting for them to converge")
	took, err := d.weir.WaitConverged(ctx, 40*time.Second, hosts, d.commit, lab.Names(hosts))
	if err != nil {
		d.lab.DumpLogs(func(f string, a ...any) { fmt.Fprintf(d.out, f+"\n", a...) }, 15)
		return fmt.Errorf("agents did not converge: %w", err)
	}
	fmt.Fprintf(d.out, "converged on %.12s in %v\n", d.commit, took.Round(time.Millisecond))
	return nil
}

// showStatus prints `weir status` as host-a's CLI shows it.
func (d *demo) showStatus(ctx context.Context) error {
	d.step("weir status (on host-a)")
	table, _, err := d.weir.Run(ctx, d.lab.Hosts[0], "status", "--api", lab.APIAddr)
	if err != nil {
		// An older binary without the status command: show the API's JSON.
		_, body, herr := d.weir.API(ctx, d.lab.Hosts[0], http.MethodGet, "/status")
		if herr != nil {
			return errors.Join(err, herr)
		}
		table = fmt.Sprintf("(%v)\nGET /status: %s\n", err, body)
	}
	fmt.Fprint(d.out, table)
	return nil
}

// firstSplit shows how examples/basic spreads connections.
func (d *demo) firstSplit(ctx context.Context) error {
	d.step("100 connections from web-1 (198.19.1.2) to %s", frontend)
	return chart(ctx, d.out, d.lab, d.web)
}

// changeWeight pushes a weight of 3 for orders-2, sends the push webhook to
// host-b's agent and waits until every agent converged on it.
func (d *demo) changeWeight(ctx context.Context) error {
	changed, err := withWeight(d.files, "orders-2", 3)
	if err != nil {
		return err
	}
	if d.commit, err = d.lab.Git.PushFiles(ctx, "orders-2: weight 3", changed); err != nil {
		return err
	}
	d.files = changed
	pushed := time.Now()
	// The push webhook: one agent fetches now and hints the others over gossip.
	if _, _, err := d.weir.API(ctx, d.lab.Hosts[1], http.MethodPost, "/refresh"); err != nil {
		fmt.Fprintf(d.out, "(POST /refresh failed, waiting for the poll: %v)\n", err)
	}
	d.step("git push: orders-2 gets weight 3 (commit %.12s); POST /refresh to host-b's agent", d.commit)
	if _, err := d.weir.WaitConverged(ctx, 40*time.Second, d.lab.Hosts, d.commit, lab.Names(d.lab.Hosts)); err != nil {
		return fmt.Errorf("agents did not converge on the weight change: %w", err)
	}
	fmt.Fprintf(d.out, "every agent converged %v after the push\n", time.Since(pushed).Round(time.Millisecond))
	return nil
}

// secondSplit shows the split after the weight change.
func (d *demo) secondSplit(ctx context.Context) error {
	d.step("100 connections again: orders-1 should get about 25, orders-2 about 75")
	return chart(ctx, d.out, d.lab, d.web)
}

// showRules prints weir's part of host-a's nat table, when it can be read.
func (d *demo) showRules(ctx context.Context) {
	rules, err := d.lab.Exec(ctx, d.lab.Hosts[0].NS, "iptables-save", "-t", "nat")
	if err != nil {
		return
	}
	d.step("host-a's nat rules (weir's part)")
	for _, line := range strings.Split(rules, "\n") {
		if strings.Contains(line, "WEIR-") {
			fmt.Fprintln(d.out, "  "+line)
		}
	}
}

const topology = `
                        switch namespace: bridge 198.18.0.0/24
       ┌───────────────────────┬────────────────────┬───────────────────┐
   host-a 198.18.0.1      host-b 198.18.0.2     host-c 198.18.0.3    git 198.18.0.250
   weir agent             weir agent            weir agent           git daemon
       │                      │                     │
   web-1 198.19.1.2       orders-1 198.19.2.2   orders-2 198.19.3.2
   (frontend)             (orders :8080)        (orders :8080)
   web-1 → 198.20.0.10:80 is DNAT-ed by host-a to orders-1 / orders-2
`

// chart sends 100 connections from g to the frontend and prints the replies
// per target as a bar chart.
func chart(ctx context.Context, out io.Writer, l *lab.Lab, g *lab.Guest) error {
	r, err := l.Dial(ctx, g, "tcp", frontend, 100)
	if err != nil {
		return err
	}
	counts := r.Counts()
	for _, n := range slices.Sorted(maps.Keys(counts)) {
		fmt.Fprintf(out, "  %-9s %-50s %3d\n", n, strings.Repeat("█", counts[n]/2), counts[n])
	}
	if f := r.Failures(); f > 0 {
		fmt.Fprintf(out, "  %-9s %-50s %3d  (%s)\n", "failed", strings.Repeat("░", f/2), f, r.Errors[0])
	}
	return nil
}
