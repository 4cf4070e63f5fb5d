package agent

import (
	"testing"
	"time"

	"weir/reconcile/netfilter"
)

// TestDriftChecksKeepToTheirBudget: a drift check that takes 1 s (as
// iptables-save of a large table does) puts the next one 1 s /
// netfilter.DriftCheckBudget = 200 s later rather than at --resync (30 s); the agent
// stays healthy meanwhile, and the gauge says so.
func TestDriftChecksKeepToTheirBudget(t *testing.T) {
	sy := &fakeSyncer{}
	h := newHarness(t, Config{Resync: 30 * time.Second}, newFakeSource(specA), newFakeCluster(true, "h1", "h2", "h3"), sy).start()
	h.waitRules("WEIR-fo", "orders-1", "orders-2")
	sy.mu.Lock()
	sy.clk, sy.cost = h.clk, time.Second
	sy.mu.Unlock()
	checked := func() []time.Time {
		sy.mu.Lock()
		defer sy.mu.Unlock()
		return append([]time.Time(nil), sy.checkedAt...)
	}
	waitAdvancing(t, h.clk, time.Second, "two drift checks", func() bool { return len(checked()) >= 2 })
	at := checked()
	want := netfilter.DriftCheckGap(30*time.Second, sy.cost)
	if gap := at[1].Sub(at[0]); gap < want {
		t.Errorf("second drift check %v after the first; want at least %v (a 1 s check at a budget of %.1f %% of a core)", gap, want, 100*netfilter.DriftCheckBudget)
	}
	if hl := h.a.Health(); !hl.OK {
		t.Errorf("Health after spaced drift checks = %+v; want OK", hl)
	}
	if got := counterValue(t, h.a, "weir_drift_check_interval_seconds"); got != want.Seconds() {
		t.Errorf("weir_drift_check_interval_seconds = %v; want %v", got, want.Seconds())
	}

	// A cheap check brings --resync back.
	sy.mu.Lock()
	sy.cost = 10 * time.Millisecond
	sy.mu.Unlock()
	waitAdvancing(t, h.clk, time.Second, "two more drift checks", func() bool { return len(checked()) >= 4 })
	at = checked()
	if gap := at[3].Sub(at[2]); gap > 31*time.Second {
		t.Errorf("drift check after a cheap one came %v later; want --resync (30 s)", gap)
	}
}

// TestCheapDriftChecksKeepResync: a check under netfilter.DriftCheckFree never spaces
// the next one, even when it is a large share of a short --resync.
func TestCheapDriftChecksKeepResync(t *testing.T) {
	sy := &fakeSyncer{}
	h := newHarness(t, Config{Resync: time.Second}, newFakeSource(specA), newFakeCluster(true, "h1", "h2", "h3"), sy).start()
	h.waitRules("WEIR-fo", "orders-1", "orders-2")
	sy.mu.Lock()
	sy.clk, sy.cost = h.clk, netfilter.DriftCheckFree/2 // 5 % of a core at --resync 1s
	sy.mu.Unlock()
	waitAdvancing(t, h.clk, 100*time.Millisecond, "three drift checks", func() bool {
		sy.mu.Lock()
		defer sy.mu.Unlock()
		return len(sy.checkedAt) >= 3
	})
	sy.mu.Lock()
	defer sy.mu.Unlock()
	if gap := sy.checkedAt[2].Sub(sy.checkedAt[1]); gap > 1500*time.Millisecond {
		t.Errorf("a %v drift check put the next one %v later; want --resync (1s)", sy.cost, gap)
	}
}
