package e2e

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"weir/e2e/lab"
	"weir/internal/testsupport"
)

// stopGit stops the lab's git daemon and the children it forked with
// SIGSTOP: connections are still accepted, but nothing is ever answered. It
// is resumed when the test ends.
func (e *env) stopGit() (resume func()) {
	e.t.Helper()
	pid := e.lab.Git.Daemon.Pid()
	if err := syscall.Kill(-pid, syscall.SIGSTOP); err != nil {
		e.t.Fatalf("stopping git daemon: %v", err)
	}
	resumed := false
	resume = func() {
		if !resumed {
			resumed = true
			_ = syscall.Kill(-pid, syscall.SIGCONT)
		}
	}
	e.t.Cleanup(resume)
	return resume
}

// api sends method path to host h's agent API and returns status and body.
func (e *env) api(h *lab.Host, method, path string) (int, string) {
	e.t.Helper()
	code, body, err := e.weir.API(e.ctx, h, method, path)
	if err != nil {
		e.t.Fatal(err)
	}
	return code, string(body)
}

// waitHealth waits until host h's /healthz answers code with a body
// containing want.
func (e *env) waitHealth(h *lab.Host, code int, want string) {
	e.t.Helper()
	err := testsupport.Eventually(e.ctx, waitFor, 200*time.Millisecond, func() error {
		got, body := e.api(h, "GET", "/healthz")
		if got != code || !strings.Contains(body, want) {
			return fmt.Errorf("GET /healthz = %d %q; want %d with %q", got, strings.TrimSpace(body), code, want)
		}
		return nil
	})
	if err != nil {
		e.t.Fatalf("%s: %v", h.Name, err)
	}
}

// TestHandFlushRepairedWhileGitHangs: with the Git server stopped (SIGSTOP)
// and a fetch hanging on it, a hand-flushed chain is still repaired within
// the resync period and a dead host's targets are still removed; /healthz
// says 503 once the fetch is past its deadline, and 200 again after the
// server resumes.
func TestHandFlushRepairedWhileGitHangs(t *testing.T) {
	e := newBasicEnv(t)
	c := e.push("basic", renderSpecs(basicHosts(), []balancerSpec{ordersBalancer(nil)}))
	for _, h := range e.lab.Hosts {
		e.startAgent(h, append(e.gitArgs(), "--fetch-timeout", "5s")...)
	}
	e.waitConverged(c)
	ha := e.host("host-a")
	want := e.rules(ha, "nat")

	resume := e.stopGit()
	// A fetch now hangs on the stopped server; before fetching ran beside
	// the loop, this one blocked every repair.
	if code, _ := e.api(ha, "POST", "/refresh"); code != 202 {
		t.Fatalf("POST /refresh = %d; want 202", code)
	}
	time.Sleep(200 * time.Millisecond) // let the fetch reach the stopped server
	for _, l := range want {
		if name, ok := strings.CutPrefix(l, ":WEIR-"); ok {
			if _, err := e.lab.Exec(e.ctx, ha.NS, "iptables", "-t", "nat", "-F", "WEIR-"+strings.Fields(name)[0]); err != nil {
				t.Fatal(err)
			}
		}
	}
	flushed := time.Now()
	e.waitRules(ha, "nat", func(got []string) error {
		if !slices.Equal(got, want) {
			return fmt.Errorf("nat table not yet repaired: %d lines, want %d", len(got), len(want))
		}
		return nil
	})
	took := time.Since(flushed)
	figure(t, "hand flush while the Git server is stopped (SIGSTOP) → repaired (resync "+resync.String()+")", took, "")
	if limit := resync + 5*time.Second; took > limit {
		t.Errorf("repair took %v with Git stopped; want within the resync period %v (+5s slack)", took, resync)
	}

	figure(t, "target host's agent killed while Git is stopped → its targets gone", e.killOrders2Host(), "")

	e.waitHealth(ha, 503, "fetch")
	if _, body := e.api(ha, "GET", "/status"); !strings.Contains(body, `"healthy": false`) || !strings.Contains(body, "fetching specs") {
		t.Errorf("host-a's GET /status = %s; want unhealthy and the fetch that got no answer", body)
	}
	resume()
	e.waitHealth(ha, 200, "ok")
}
