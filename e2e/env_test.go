package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"weir/e2e/lab"
	"weir/internal/testsupport"
)

// env is one scenario's lab with weir agents.
type env struct {
	t    *testing.T
	ctx  context.Context
	lab  *lab.Lab
	weir *lab.Weir
}

// newEnv builds a lab with a Git server and guests[i] guests behind host i+1.
func newEnv(t *testing.T, guests ...int) *env {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: the e2e tests need root to create network namespaces and program iptables (run as root, e.g. sudo make test)")
	}
	l := lab.ForTest(t, lab.Options{Hosts: len(guests), Guests: guests, Git: true})
	w := &lab.Weir{Bin: weirBin, Lab: l, StatusFromAPI: os.Getenv("WEIR_E2E_STATUS") == "api"}
	t.Cleanup(w.CloseIdleConnections)
	return &env{t: t, ctx: t.Context(), lab: l, weir: w}
}

// newBasicEnv builds examples/basic's network with name servers on the
// orders guests (TCP 8080, UDP 8053).
func newBasicEnv(t *testing.T) *env {
	e := newEnv(t, 1, 1, 1)
	e.serve(e.lab.Guest(2, 1), "orders-1")
	e.serve(e.lab.Guest(3, 1), "orders-2")
	return e
}

func (e *env) serve(g *lab.Guest, name string) {
	e.t.Helper()
	if _, err := e.lab.Serve(e.ctx, g, name, "tcp:8080", "udp:8053"); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) host(name string) *lab.Host {
	for _, h := range e.lab.Hosts {
		if h.Name == name {
			return h
		}
	}
	e.t.Fatalf("no host %s", name)
	return nil
}

// gitArgs are the source and timing flags of a Git-fed lab agent.
func (e *env) gitArgs() []string {
	return []string{"--repo", e.lab.Git.URL(), "--branch", "main", "--poll", poll.String(), "--resync", resync.String()}
}

// startAgent starts host h's agent with the join seeds plus extra (gitArgs
// when extra is empty).
func (e *env) startAgent(h *lab.Host, extra ...string) *lab.Proc {
	e.t.Helper()
	if len(extra) == 0 {
		extra = e.gitArgs()
	}
	p, err := e.weir.StartAgent(h, append(lab.JoinArgs(e.lab.Hosts, h), extra...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

// startAgents starts a Git-fed agent on every host.
func (e *env) startAgents() {
	e.t.Helper()
	err := e.weir.StartAgents(e.lab.Hosts, func(h *lab.Host) []string {
		return append(lab.JoinArgs(e.lab.Hosts, h), e.gitArgs()...)
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// agent returns the agent last started on the host called name.
func (e *env) agent(name string) *lab.Proc {
	e.t.Helper()
	p := e.weir.Agent(name)
	if p == nil {
		e.t.Fatalf("no agent started on %s", name)
	}
	return p
}

func (e *env) push(msg string, files map[string]string) string {
	e.t.Helper()
	c, err := e.lab.Git.PushFiles(e.ctx, msg, files)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// waitConverged waits until every host (or the given ones) reports the
// cluster converged on revision with exactly them alive.
func (e *env) waitConverged(revision string, hosts ...*lab.Host) time.Duration {
	e.t.Helper()
	if len(hosts) == 0 {
		hosts = e.lab.Hosts
	}
	d, err := e.weir.WaitConverged(e.ctx, waitFor, hosts, revision, lab.Names(hosts))
	if err != nil {
		e.t.Fatalf("waiting for convergence on %.12s: %v", revision, err)
	}
	return d
}

func (e *env) status(h *lab.Host) lab.Status {
	e.t.Helper()
	st, err := e.weir.Status(e.ctx, h)
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

func (e *env) dial(g *lab.Guest, network, addr string, n int) lab.Result {
	e.t.Helper()
	r, err := e.lab.Dial(e.ctx, g, network, addr, n)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// rules returns host h's table in iptables-save form without counters.
func (e *env) rules(h *lab.Host, table string) []string {
	e.t.Helper()
	r, err := e.lab.Rules(e.ctx, h.NS, table)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// waitRules polls host h's table until cond accepts it.
func (e *env) waitRules(h *lab.Host, table string, cond func([]string) error) time.Duration {
	e.t.Helper()
	start := time.Now()
	err := testsupport.Eventually(e.ctx, waitFor, 50*time.Millisecond, func() error {
		r, err := e.lab.Rules(e.ctx, h.NS, table)
		if err != nil {
			return err
		}
		return cond(r)
	})
	if err != nil {
		e.t.Fatalf("waiting for %s rules on %s: %v", table, h.Name, err)
	}
	return time.Since(start)
}

// killOrders2Host kills host-c's agent and waits until host-a sends nothing
// more to orders-2 (198.19.3.2), its guest; it returns how long that took.
func (e *env) killOrders2Host() time.Duration {
	e.t.Helper()
	if err := e.agent("host-c").Kill(); err != nil {
		e.t.Fatal(err)
	}
	killed := time.Now()
	e.waitRules(e.host("host-a"), "nat", func(got []string) error {
		if containsAddr(got, "198.19.3.2") {
			return fmt.Errorf("host-a still sends to orders-2")
		}
		return nil
	})
	return time.Since(killed)
}
