package agent

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	ts "weir/internal/testsupport"
	"weir/reconcile/netfilter"
)

// TestHeldXtablesLock drives the agent over the real legacy iptables in a
// namespace while another program holds the xtables lock: the apply fails
// with a clear error within the lock wait, the loop goes on, health and
// status say why, and the rules follow once the lock is free.
func TestHeldXtablesLock(t *testing.T) {
	nf, ns := ts.NewIPTablesWith(t, netfilter.IPTablesOptions{Backend: netfilter.BackendLegacy, LockWait: time.Second})
	src := newFakeSource(yamlHosts + yamlBalancer(80))
	cl := newFakeCluster(true, "host-a", "host-b", "host-c")
	h := newHarnessDeps(t, Config{Node: "host-a"}, Deps{Source: src, Cluster: cl,
		Syncer: NewSyncer(netfilter.NewSyncer(nf, netfilter.SyncerOptions{}))})
	h.src, h.cl = src, cl
	h.start()
	rules := func() string { out, _ := ns.Output("iptables-legacy-save", "-t", "nat"); return out }
	waitAdvancing(t, h.clk, 50*time.Millisecond, "both targets applied", func() bool {
		return strings.Contains(rules(), "198.19.2.2") && strings.Contains(rules(), "198.19.3.2")
	})

	release := ts.HoldXtablesLock(t)
	start := time.Now()
	cl.setAlive("host-a", "host-b")
	waitAdvancing(t, h.clk, 50*time.Millisecond, "the failed apply reported", func() bool {
		return strings.Contains(h.a.State().Error, "xtables lock")
	})
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the apply gave up after %v; want about the 1s lock wait", took)
	}
	hl := h.a.Health()
	if hl.OK || !strings.Contains(hl.Reason, "the last pass failed") || !strings.Contains(hl.Reason, "xtables lock") {
		t.Errorf("Health() = %+v; want the failed apply and the lock", hl)
	}
	srv := httptest.NewServer(h.a.Handler())
	defer srv.Close()
	if code, body := get(t, srv, "/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "xtables lock") {
		t.Errorf("GET /healthz = %d %q; want 503 naming the lock", code, body)
	}
	// The loop goes on: it keeps retrying.
	errs := labelledValue(t, h.a, "weir_applies_total", "result", "error")
	waitAdvancing(t, h.clk, 500*time.Millisecond, "a retry", func() bool {
		return labelledValue(t, h.a, "weir_applies_total", "result", "error") > errs
	})
	if !strings.Contains(rules(), "198.19.3.2") {
		t.Errorf("host-c's target left the kernel while the lock was held")
	}

	release()
	waitAdvancing(t, h.clk, 500*time.Millisecond, "the change applied once the lock is free", func() bool {
		return !strings.Contains(rules(), "198.19.3.2") && h.a.Health().OK
	})
}
