package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"weir/agent"
	"weir/e2e/lab"
	"weir/internal/testsupport"
	"weir/reconcile/plan"
)

// Health checks of the e2e scenarios: fastCheck probes every second, with
// the default thresholds of 2; defaultCheck takes every default (2 s).
const (
	fastCheck    = "{protocol: tcp, interval: 1s, timeout: 500ms}"
	defaultCheck = "{protocol: tcp}"
	orders2Addr  = "198.19.3.2"
)

// checked is examples/basic's balancer with a health check.
func checked(weights map[string]int, check string) balancerSpec {
	b := ordersBalancer(weights)
	b.healthCheck = check
	return b
}

// waitSends waits until host-a's nat rules send (or, with in false, no
// longer send) to addr, and returns how long that took.
func (e *env) waitSends(addr string, in bool) time.Duration {
	e.t.Helper()
	return e.waitRules(e.host("host-a"), "nat", func(got []string) error {
		if containsAddr(got, addr) != in {
			return fmt.Errorf("host-a sends to %s: %v; want %v", addr, !in, in)
		}
		return nil
	})
}

// balancer asks the agent on host h for GET /balancers/NAME.
func (e *env) balancer(h *lab.Host, name string) agent.BalancerStatus {
	e.t.Helper()
	code, body, err := e.weir.API(e.ctx, h, http.MethodGet, "/balancers/"+name)
	if err != nil || code != http.StatusOK {
		e.t.Fatalf("GET /balancers/%s on %s = %d %s, %v", name, h.Name, code, body, err)
	}
	var st agent.BalancerStatus
	if err := json.Unmarshal(body, &st); err != nil {
		e.t.Fatalf("GET /balancers/%s: %v in %s", name, err, body)
	}
	return st
}

// waitState waits until the agent on h reports guest in state in balancer
// name, and returns the balancer as it last saw it.
func (e *env) waitState(h *lab.Host, name, guest string, state plan.TargetState) agent.BalancerStatus {
	e.t.Helper()
	var st agent.BalancerStatus
	err := testsupport.Eventually(e.ctx, waitFor, 100*time.Millisecond, func() error {
		code, body, err := e.weir.API(e.ctx, h, http.MethodGet, "/balancers/"+name)
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("GET /balancers/%s = %d %s, %v", name, code, body, err)
		}
		if err := json.Unmarshal(body, &st); err != nil {
			return err
		}
		for _, ts := range st.Targets {
			if ts.Guest == guest && ts.State == state {
				return nil
			}
		}
		return fmt.Errorf("%s not %s: %+v", guest, state, st.Targets)
	})
	if err != nil {
		e.t.Fatalf("waiting on %s: %v", h.Name, err)
	}
	return st
}

// target returns the named target of st.
func target(t *testing.T, st agent.BalancerStatus, guest string) agent.TargetStatus {
	t.Helper()
	for _, ts := range st.Targets {
		if ts.Guest == guest {
			return ts
		}
	}
	t.Fatalf("balancer %s has no target %s: %+v", st.Name, guest, st.Targets)
	return agent.TargetStatus{}
}

// TestHealthCheckStopAndStart: a target's server process stops while its
// agent keeps running: once the check fails, host-a sends it nothing and
// no new connection fails; when it starts again, traffic returns. It is
// measured with a 1 s interval and with the defaults (FIGURE lines).
func TestHealthCheckStopAndStart(t *testing.T) {
	e := newEnv(t, 1, 1, 1)
	e.serve(e.lab.Guest(2, 1), "orders-1")
	server2, err := e.lab.Serve(e.ctx, e.lab.Guest(3, 1), "orders-2", "tcp:8080")
	if err != nil {
		t.Fatal(err)
	}
	c := e.push("checked", renderSpecs(basicHosts(), []balancerSpec{checked(nil, fastCheck)}))
	e.startAgents()
	e.waitConverged(c)
	web, ha := e.lab.Guest(1, 1), e.host("host-a")
	assertSplit(t, "200 connections, both healthy", e.dial(web, "tcp", frontend, 200), map[string]float64{"orders-1": 0.5, "orders-2": 0.5})

	for _, check := range []string{fastCheck, defaultCheck} {
		if check != fastCheck {
			c = e.push("default check", renderSpecs(basicHosts(), []balancerSpec{checked(nil, check)}))
			e.waitConverged(c)
		}
		for cycle := range 2 {
			if err := server2.Kill(); err != nil {
				t.Fatal(err)
			}
			figure(t, fmt.Sprintf("target's server stopped → gone from the setting host's rules (healthCheck %s)", check), e.waitSends(orders2Addr, false), fmt.Sprintf("cycle %d", cycle+1))
			r := e.dial(web, "tcp", frontend, 200)
			if got := r.Counts()["orders-1"]; got != 200 || r.Failures() != 0 {
				t.Errorf("with orders-2 failing its check: %v; want orders-1=200 and no failure", r)
			}
			st := e.balancer(ha, "frontend-orders")
			o1, o2 := target(t, st, "orders-1"), target(t, st, "orders-2")
			if o2.State != plan.Unhealthy || o2.Share != 0 || o1.Share != 1 || o1.Connections == nil || *o1.Connections != 200 {
				t.Errorf("GET /balancers/frontend-orders = %+v; want orders-2 unhealthy, orders-1 share 1 with 200 connections", st.Targets)
			}
			if err := server2.Restart(); err != nil {
				t.Fatal(err)
			}
			figure(t, fmt.Sprintf("target's server started → back in the setting host's rules (healthCheck %s)", check), e.waitSends(orders2Addr, true), fmt.Sprintf("cycle %d", cycle+1))
			assertSplit(t, "400 connections after orders-2's return", e.dial(web, "tcp", frontend, 400), map[string]float64{"orders-1": 0.5, "orders-2": 0.5})
		}
	}
	e.waitConverged(c)
}

// TestHTTPCheckAndFailOpen: a target whose health endpoint answers 500 is
// left out; when the other target's check fails too, the balancer fails
// open (traffic still spread over both) and status says so.
func TestHTTPCheckAndFailOpen(t *testing.T) {
	e := newEnv(t, 1, 1, 1)
	e.serve(e.lab.Guest(2, 1), "orders-1")
	health1, err := e.lab.Serve(e.ctx, e.lab.Guest(2, 1), "orders-1-health", "http:8081")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.lab.Serve(e.ctx, e.lab.Guest(3, 1), "orders-2", "tcp:8080", "http:8081=500"); err != nil {
		t.Fatal(err)
	}
	c := e.push("http check", renderSpecs(basicHosts(), []balancerSpec{
		checked(nil, "{protocol: http, port: 8081, path: /healthz, interval: 1s, timeout: 500ms}")}))
	e.startAgents()
	web, ha := e.lab.Guest(1, 1), e.host("host-a")
	e.waitState(ha, "frontend-orders", "orders-2", plan.Unhealthy)
	e.waitSends(orders2Addr, false)
	r := e.dial(web, "tcp", frontend, 200)
	if got := r.Counts()["orders-1"]; got != 200 || r.Failures() != 0 {
		t.Errorf("with orders-2's health endpoint answering 500: %v; want orders-1=200", r)
	}
	if st := e.balancer(ha, "frontend-orders"); target(t, st, "orders-2").State != plan.Unhealthy || st.FailOpen {
		t.Errorf("GET /balancers/frontend-orders = %+v; want orders-2 unhealthy, no fail-open", st)
	}
	e.waitConverged(c)
	table, _, _ := e.weir.Run(e.ctx, ha, "status", "--api", lab.APIAddr)
	if !strings.Contains(table, "unhealthy: frontend-orders/orders-2 (host-c)") {
		t.Errorf("weir status does not name the unhealthy target:\n%s", table)
	}

	// orders-1's health endpoint stops too: nothing passes, so both get traffic.
	if err := health1.Kill(); err != nil {
		t.Fatal(err)
	}
	if st := e.waitState(ha, "frontend-orders", "orders-1", plan.Unhealthy); !st.FailOpen {
		t.Errorf("GET /balancers/frontend-orders = %+v; want failOpen with both targets unhealthy", st)
	}
	e.waitSends(orders2Addr, true)
	assertSplit(t, "400 connections failing open", e.dial(web, "tcp", frontend, 400), map[string]float64{"orders-1": 0.5, "orders-2": 0.5})
	e.waitConverged(c)
	table, _, _ = e.weir.Run(e.ctx, ha, "status", "--api", lab.APIAddr)
	if !strings.Contains(table, "fail open: frontend-orders") {
		t.Errorf("weir status does not say the balancer fails open:\n%s", table)
	}
	out, _, err := e.weir.Run(e.ctx, ha, "status", "--api", lab.APIAddr, "--balancer", "frontend-orders")
	if err != nil || !strings.Contains(out, "fail open:") {
		t.Errorf("weir status --balancer = %v\n%s; want the fail-open line", err, out)
	}
}

// echoBalancer sends frontend's connections to 198.20.0.11:9000 over the
// orders guests' echo ports.
func echoBalancer(weights map[string]int) balancerSpec {
	return balancerSpec{name: "frontend-echo", source: "frontend", target: "orders",
		addr: "198.20.0.11", port: 9000, protocol: "tcp", weights: weights}
}

// holdConnection opens connections from guest g to addr until one is
// answered by want, closes the others, and returns it with its reader.
func (e *env) holdConnection(g *lab.Guest, addr, want string) (*bufio.ReadWriter, func()) {
	e.t.Helper()
	for range 40 {
		c, err := lab.DialIn(e.ctx, g.NS, "tcp", addr)
		if err != nil {
			e.t.Fatal(err)
		}
		rw := bufio.NewReadWriter(bufio.NewReader(c), bufio.NewWriter(c))
		c.SetDeadline(time.Now().Add(5 * time.Second))
		name, err := rw.ReadString('\n')
		if err == nil && strings.TrimSpace(name) == want {
			c.SetDeadline(time.Time{})
			return rw, func() { c.Close() }
		}
		c.Close()
	}
	e.t.Fatalf("no connection to %s landed on %s in 40 attempts", addr, want)
	return nil, nil
}

// echo sends a line on an established connection and checks it comes back.
func echo(rw *bufio.ReadWriter, line string) error {
	if _, err := rw.WriteString(line + "\n"); err != nil {
		return err
	}
	if err := rw.Flush(); err != nil {
		return err
	}
	got, err := rw.ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(got) != line {
		return fmt.Errorf("echoed %q; want %q", got, line)
	}
	return nil
}

// TestDrainKeepsEstablishedConnection: weight 0 drains a target: no new
// connection goes to it, while a TCP connection established before keeps
// working.
func TestDrainKeepsEstablishedConnection(t *testing.T) {
	e := newEnv(t, 1, 1, 1)
	for i, name := range []string{"orders-1", "orders-2"} {
		if _, err := e.lab.Serve(e.ctx, e.lab.Guest(i+2, 1), name, "tcp:8080", "echo:9000"); err != nil {
			t.Fatal(err)
		}
	}
	c := e.push("echo", renderSpecs(basicHosts(), []balancerSpec{ordersBalancer(nil), echoBalancer(nil)}))
	e.startAgents()
	e.waitConverged(c)
	web := e.lab.Guest(1, 1)
	held, closeHeld := e.holdConnection(web, "198.20.0.11:9000", "orders-2")
	defer closeHeld()
	if err := echo(held, "before the drain"); err != nil {
		t.Fatal(err)
	}

	drained := map[string]int{"orders-2": 0}
	c = e.push("drain orders-2", renderSpecs(basicHosts(), []balancerSpec{ordersBalancer(drained), echoBalancer(drained)}))
	e.waitConverged(c)
	e.waitSends(orders2Addr, false)
	for _, fe := range []string{frontend, "198.20.0.11:9000"} {
		if r := e.dial(web, "tcp", fe, 100); r.Counts()["orders-1"] != 100 || r.Failures() != 0 {
			t.Errorf("new connections to %s with orders-2 drained: %v; want orders-1=100", fe, r)
		}
	}
	if err := echo(held, "after the drain"); err != nil {
		t.Errorf("the connection established before the drain broke: %v", err)
	}
	if st := e.balancer(e.host("host-a"), "frontend-echo"); target(t, st, "orders-2").State != plan.Drained {
		t.Errorf("GET /balancers/frontend-echo = %+v; want orders-2 drained", st.Targets)
	}
}
