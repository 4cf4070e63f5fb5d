package agent

import (
	"testing"
	"time"

	"weir/reconcile/netfilter"
)

// TestDriftChecksKeepToTheirBudget: drift checks that take 1 s each (as
// iptables-save of a large table does) come 1 s / netfilter.DriftCheckBudget
// = 200 s apart once a window of them is measured, rather than at --resync
// (30 s); the agent stays healthy meanwhile, the gauge says so, and cheap
// checks bring --resync back.
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
	gapAfter := func(n int) time.Duration {
		t.Helper()
		waitAdvancing(t, h.clk, 5*time.Second, "drift checks", func() bool { return len(checked()) > n })
		at := checked()
		return at[n].Sub(at[n-1])
	}
	want := netfilter.DriftCheckGap(30*time.Second, sy.cost)
	if gap := gapAfter(driftWindow + 1); gap < want {
		t.Errorf("drift checks of 1 s each came %v apart; want at least %v (a budget of %.1f %% of a core)", gap, want, 100*netfilter.DriftCheckBudget)
	}
	if hl := h.a.Health(); !hl.OK {
		t.Errorf("Health after spaced drift checks = %+v; want OK", hl)
	}
	if got := counterValue(t, h.a, "weir_drift_check_interval_seconds"); got != want.Seconds() {
		t.Errorf("weir_drift_check_interval_seconds = %v; want %v", got, want.Seconds())
	}

	sy.mu.Lock()
	sy.cost = 10 * time.Millisecond
	sy.mu.Unlock()
	if gap := gapAfter(3*driftWindow + 1); gap > 31*time.Second {
		t.Errorf("drift checks of 10 ms came %v apart; want --resync (30 s)", gap)
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
