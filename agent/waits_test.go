package agent

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestHangingSourceBlocksNoRepair: a source that never answers (a Git server
// stopped with SIGSTOP, a read that ignores its context) holds up neither a
// membership change nor a drift repair, and after the fetch deadline health
// and status say why.
func TestHangingSourceBlocksNoRepair(t *testing.T) {
	sy := &fakeSyncer{}
	cfg := Config{Resync: 30 * time.Second, FetchTimeout: time.Minute}
	h := newHarness(t, cfg, newFakeSource(specA), newFakeCluster(true, "h1", "h2", "h3"), sy).start()
	h.waitRules("WEIR-fo", "orders-1", "orders-2")

	release := h.src.hangs(false)
	defer release()
	fetches := h.src.fetchCount()
	h.a.Refresh()
	waitAdvancing(t, h.clk, 50*time.Millisecond, "the hanging fetch to start", func() bool { return h.src.fetchCount() > fetches })

	h.cl.setAlive("h1", "h2")
	h.waitRules("WEIR-fo", "orders-1")

	sy.mu.Lock()
	sy.drifted = true
	sy.mu.Unlock()
	waitAdvancing(t, h.clk, time.Second, "the drift repaired while the fetch hangs", func() bool {
		return counterValue(t, h.a, "weir_drift_repairs_total") == 1
	})

	waitAdvancing(t, h.clk, time.Second, "the fetch reported overdue", func() bool { return !h.a.Health().OK })
	if got := h.a.Health().Reason; !strings.Contains(got, "a fetch from the spec source has run for") {
		t.Errorf("Health().Reason = %q; want the overdue fetch", got)
	}
	if st := h.a.Status(); st.Healthy || !strings.Contains(st.Error, "no answer from the source within 1m0s") {
		t.Errorf("Status() healthy=%v error=%q; want unhealthy and the overdue fetch", st.Healthy, st.Error)
	}
	srv := httptest.NewServer(h.a.Handler())
	defer srv.Close()
	if code, body := get(t, srv, "/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "fetch") {
		t.Errorf("GET /healthz = %d %q; want 503 naming the fetch", code, body)
	}
	if got := h.src.fetchCount(); got != fetches+1 {
		t.Errorf("%d fetches started while one hangs; want 1", got-fetches)
	}

	// The source answers again: the loop takes the answer and is healthy.
	release()
	waitAdvancing(t, h.clk, time.Second, "health back", func() bool { return h.a.Health().OK })
	if st := h.a.State(); st.Error != "" {
		t.Errorf("after the source answered, State().Error = %q; want empty", st.Error)
	}
}

// TestFetchDeadline: a source that honours its context is cut off at the
// fetch deadline, and the failure shows in status and health.
func TestFetchDeadline(t *testing.T) {
	h := newHarness(t, Config{FetchTimeout: 50 * time.Millisecond}, newFakeSource(specA), newFakeCluster(true, "h1", "h2", "h3"), &fakeSyncer{}).start()
	h.waitRules("WEIR-fo", "orders-1", "orders-2")
	release := h.src.hangs(true)
	defer release()
	h.a.Refresh()
	waitAdvancing(t, h.clk, 10*time.Millisecond, "the fetch cut off", func() bool {
		return strings.Contains(h.a.State().Error, "deadline exceeded")
	})
	if hl := h.a.Health(); hl.OK || !strings.Contains(hl.Reason, "the last pass failed: fetching specs") {
		t.Errorf("Health() = %+v; want the failed fetch", hl)
	}
}

// TestPassDeadline: an apply that waits (for the xtables lock, say) is cut
// off at the pass deadline; the loop goes on and reports it.
func TestPassDeadline(t *testing.T) {
	sy := &fakeSyncer{}
	h := newHarness(t, Config{PassTimeout: 50 * time.Millisecond}, newFakeSource(specA), newFakeCluster(true, "h1", "h2", "h3"), sy).start()
	h.waitRules("WEIR-fo", "orders-1", "orders-2")
	sy.mu.Lock()
	sy.stallNext = true
	sy.mu.Unlock()
	h.cl.setAlive("h1", "h2")
	waitAdvancing(t, h.clk, 10*time.Millisecond, "the overrun reported", func() bool {
		return strings.Contains(h.a.State().Error, "overran its 50ms deadline")
	})
	if hl := h.a.Health(); hl.OK || !strings.Contains(hl.Reason, "deadline exceeded") {
		t.Errorf("Health() = %+v; want the failed apply", hl)
	}
	if got := counterValue(t, h.a, "weir_reconcile_deadline_exceeded_total"); got != 1 {
		t.Errorf("weir_reconcile_deadline_exceeded_total = %v; want 1", got)
	}
	// The retry applies and the agent is healthy again.
	h.waitRules("WEIR-fo", "orders-1")
	waitAdvancing(t, h.clk, 100*time.Millisecond, "health back", func() bool { return h.a.Health().OK })
}

// TestHealthNoPassForTooLong: a loop that finishes no pass for longer than
// resync plus the pass deadline is reported, even between passes.
func TestHealthNoPassForTooLong(t *testing.T) {
	h := newHarness(t, Config{Resync: 30 * time.Second, PassTimeout: time.Minute}, newFakeSource(specA), newFakeCluster(true, "h1", "h2", "h3"), &fakeSyncer{})
	h.a.running.Store(true) // a loop that hangs between passes
	h.a.markLoopStart(h.clk.Now())
	if hl := h.a.Health(); !hl.OK {
		t.Fatalf("Health() at start = %+v; want OK", hl)
	}
	h.clk.Advance(91 * time.Second)
	if hl := h.a.Health(); hl.OK || !strings.Contains(hl.Reason, "no reconcile pass has finished for 1m31s") {
		t.Errorf("Health() = %+v; want no pass for 1m31s", hl)
	}
	h.a.passBegins(h.clk.Now())
	h.clk.Advance(61 * time.Second)
	if hl := h.a.Health(); hl.OK || !strings.Contains(hl.Reason, "a reconcile pass has run for 1m1s, over its 1m0s deadline") {
		t.Errorf("Health() = %+v; want the overrunning pass", hl)
	}
	h.a.running.Store(false)
}
