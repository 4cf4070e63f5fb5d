package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

const specA = `host h1 web-1=frontend
host h2 orders-1=orders
host h3 orders-2=orders
balancer fo frontend orders
`

// specB drops orders-2 from the targets.
const specB = `host h1 web-1=frontend
host h2 orders-1=orders
host h3 orders-2=other
balancer fo frontend orders
`

const specBad = `host h1 web-1=frontend
host h2 orders-1
balancer fo frontend orders
`

type harness struct {
	t      *testing.T
	a      *Agent
	clk    *fakeClock
	src    *fakeSource
	cl     *fakeCluster
	sy     *fakeSyncer
	cancel context.CancelFunc
	done   chan error
}

func newHarness(t *testing.T, cfg Config, src *fakeSource, cl *fakeCluster, sy *fakeSyncer) *harness {
	t.Helper()
	h := newHarnessDeps(t, cfg, Deps{Source: src, Load: fakeLoad, Cluster: cl, Planner: PlannerFunc(fakePlan), Syncer: sy, Status: fakeStatus})
	h.src, h.cl, h.sy = src, cl, sy
	return h
}

// newHarnessDeps builds an agent over deps with a fake clock.
func newHarnessDeps(t *testing.T, cfg Config, deps Deps) *harness {
	t.Helper()
	if cfg.Node == "" {
		cfg.Node = "h1"
	}
	clk := newFakeClock()
	cfg.Clock = clk
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	a, err := New(cfg, deps)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return &harness{t: t, a: a, clk: clk}
}

func (h *harness) start() *harness {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.done = make(chan error, 1)
	go func() { h.done <- h.a.Run(ctx) }()
	h.t.Cleanup(func() {
		if h.cancel != nil {
			h.stop()
		}
	})
	return h
}

func (h *harness) stop() error {
	h.t.Helper()
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		return err
	case <-time.After(10 * time.Second):
		h.t.Fatal("Run did not return after cancel")
		return nil
	}
}

// waitRules waits until chain's live rules equal want, advancing the clock.
func (h *harness) waitRules(chain string, want ...string) {
	h.t.Helper()
	waitAdvancing(h.t, h.clk, 50*time.Millisecond, fmt.Sprintf("rules of %s = %v", chain, want), func() bool {
		return slices.Equal(h.sy.rules(chain), want)
	})
}

func TestAppliesFetchedRevisionAndAnnouncesIt(t *testing.T) {
	h := newHarness(t, Config{}, newFakeSource(specA), newFakeCluster(true, "h1", "h2", "h3"), &fakeSyncer{}).start()
	h.waitRules("WEIR-fo", "orders-1", "orders-2")

	st := h.a.State()
	if got, want := st.Revision, revisionOf(specA); got != want {
		t.Errorf("State().Revision = %q; want %q", got, want)
	}
	if st.Error != "" || st.Rules != 2 || st.Balancers != 1 {
		t.Errorf("State() = %+v; want no error, 2 rules, 1 balancer", st)
	}
	waitFor(t, "announced state", func() bool { return h.cl.lastLocal().Revision == revisionOf(specA) })
	if got := h.cl.lastLocal(); got.Digest != st.Digest || got.Rules != 2 || got.Balancers != 1 || got.Error != "" {
		t.Errorf("SetLocal(%+v); want digest %s, 2 rules, 1 balancer, no error", got, st.Digest)
	}
	// A new revision fetched by this agent is hinted to the others.
	if got, want := h.cl.hintList(), []string{revisionOf(specA)}; !slices.Equal(got, want) {
		t.Errorf("hints = %v; want %v", got, want)
	}
}

func TestBadRevisionKeepsLastGood(t *testing.T) {
	h := newHarness(t, Config{StateDir: t.TempDir()}, newFakeSource(specA), newFakeCluster(true, "h1", "h2", "h3"), &fakeSyncer{}).start()
	h.waitRules("WEIR-fo", "orders-1", "orders-2")
	applies := h.sy.applyCount()

	h.src.set(specBad)
	h.src.notify()
	waitAdvancing(t, h.clk, 50*time.Millisecond, "the bad revision to be attempted", func() bool {
		return h.a.State().Latest == revisionOf(specBad)
	})
	st := h.a.State()
	if st.Revision != revisionOf(specA) {
		t.Errorf("after a bad revision, applied revision = %q; want the last good %q", st.Revision, revisionOf(specA))
	}
	if !strings.Contains(st.Error, "spec.yaml:2: guest") || !strings.Contains(st.Error, revisionOf(specBad)) {
		t.Errorf("State().Error = %q; want the rejected revision and its FILE:LINE error", st.Error)
	}
	if got := h.sy.applyCount(); got != applies {
		t.Errorf("a rejected revision caused %d applies; want none", got-applies)
	}
	waitFor(t, "the error announced", func() bool { return strings.Contains(h.cl.lastLocal().Error, "spec.yaml:2:") })
	if got := h.cl.lastLocal().Revision; got != revisionOf(specA) {
		t.Errorf("announced revision %q; want the last good %q", got, revisionOf(specA))
	}

	// The last good revision keeps being re-planned on membership changes.
	h.cl.setAlive("h1", "h2")
	h.waitRules("WEIR-fo", "orders-1")
	if st := h.a.State(); st.Revision != revisionOf(specA) || st.Error == "" {
		t.Errorf("after re-plan, State() = %+v; want last good revision and the error still shown", st)
	}

	// A fixed revision clears the error.
	h.src.set(specB)
	h.src.notify()
	waitAdvancing(t, h.clk, 50*time.Millisecond, "the fixed revision", func() bool {
		return h.a.State().Revision == revisionOf(specB)
	})
	if st := h.a.State(); st.Error != "" {
		t.Errorf("after a good revision, State().Error = %q; want empty", st.Error)
	}
}

func TestRestartAppliesPersistedLastGood(t *testing.T) {
	stateDir := t.TempDir()
	first := newHarness(t, Config{StateDir: stateDir}, newFakeSource(specA), newFakeCluster(true, "h1", "h2", "h3"), &fakeSyncer{}).start()
	first.waitRules("WEIR-fo", "orders-1", "orders-2")
	if err := first.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	tests := []struct {
		name  string
		setup func(*fakeSource)
		error string
	}{
		{"source unreachable", func(s *fakeSource) { s.fail(errors.New("dial tcp 198.18.0.99:9418: connection refused")) }, "connection refused"},
		{"source offers an invalid revision", func(s *fakeSource) { s.set(specBad) }, "spec.yaml:2:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newFakeSource(specB)
			tt.setup(src)
			h := newHarness(t, Config{StateDir: stateDir}, src, newFakeCluster(true, "h1", "h2", "h3"), &fakeSyncer{}).start()
			h.waitRules("WEIR-fo", "orders-1", "orders-2")
			st := h.a.State()
			if st.Revision != revisionOf(specA) {
				t.Errorf("State().Revision = %q; want the persisted %q", st.Revision, revisionOf(specA))
			}
			if !strings.Contains(st.Error, tt.error) {
				t.Errorf("State().Error = %q; want it to mention %q", st.Error, tt.error)
			}
			if got := h.cl.hintList(); len(got) > 0 && slices.Contains(got, revisionOf(specA)) {
				t.Errorf("restored revision was hinted: %v", got)
			}
			h.cl.mu.Lock()
			rev := h.cl.expectedRev
			h.cl.mu.Unlock()
			if rev != revisionOf(specA) {
				t.Errorf("the cluster expects the Hosts of %.12s; want the persisted %.12s", rev, revisionOf(specA))
			}
		})
	}
}

func TestFetchFailureIsRetriedWithBackoff(t *testing.T) {
	src := newFakeSource(specA)
	src.fail(errors.New("connection refused"))
	h := newHarness(t, Config{}, src, newFakeCluster(true, "h1", "h2", "h3"), &fakeSyncer{}).start()
	waitFor(t, "the first fetch", func() bool { return src.fetchCount() >= 1 })
	if got := h.sy.applyCount(); got != 0 {
		t.Errorf("with nothing valid, %d applies; want 0 (adopt what is in place)", got)
	}
	src.set(specA)
	// The retry comes after a backoff of one second, without any trigger.
	h.waitRules("WEIR-fo", "orders-1", "orders-2")
	if st := h.a.State(); st.Error != "" {
		t.Errorf("after a successful retry, State().Error = %q; want empty", st.Error)
	}
}

func TestTriggersCoalesce(t *testing.T) {
	h := newHarness(t, Config{MinInterval: 200 * time.Millisecond}, newFakeSource(specA), newFakeCluster(true, "h1", "h2", "h3"), &fakeSyncer{}).start()
	h.waitRules("WEIR-fo", "orders-1", "orders-2")
	applies, fetches := h.sy.applyCount(), h.src.fetchCount()

	// 100 changes while the clock stands still: each a new revision, with
	// refreshes and membership signals mixed in.
	var last string
	for i := range 100 {
		last = specA + fmt.Sprintf("# change %d\n", i)
		h.src.set(last)
		h.src.notify()
		h.a.Refresh()
		h.cl.setAlive("h1", "h2", "h3")
	}
	waitFor(t, "the triggers to be consumed", func() bool {
		return len(h.a.refresh) == 0 && len(h.cl.changes) == 0
	})
	waitAdvancing(t, h.clk, 50*time.Millisecond, "the newest revision applied", func() bool {
		return h.a.State().Revision == revisionOf(last)
	})
	// Let more time pass: nothing is left to do.
	for range 10 {
		h.clk.Advance(100 * time.Millisecond)
	}
	if got := h.src.fetchCount() - fetches; got > 2 {
		t.Errorf("100 bursts of triggers caused %d fetches; want at most 2", got)
	}
	if got := h.sy.applyCount() - applies; got < 1 || got > 2 {
		t.Errorf("100 new revisions caused %d applies; want 1 or 2 (latest wins)", got)
	}
}

func TestMembershipChangeReplans(t *testing.T) {
	h := newHarness(t, Config{}, newFakeSource(specA), newFakeCluster(true, "h1", "h2", "h3"), &fakeSyncer{}).start()
	h.waitRules("WEIR-fo", "orders-1", "orders-2")
	fetches := h.src.fetchCount()

	h.cl.setAlive("h1", "h2")
	h.waitRules("WEIR-fo", "orders-1")
	h.cl.setAlive("h1", "h2", "h3")
	h.waitRules("WEIR-fo", "orders-1", "orders-2")
	if got := h.src.fetchCount(); got != fetches {
		t.Errorf("membership changes caused %d fetches; want none (re-plan only)", got-fetches)
	}
	if got, want := h.a.State().Alive, []string{"h1", "h2", "h3"}; !slices.Equal(got, want) {
		t.Errorf("State().Alive = %v; want %v", got, want)
	}

	// A change that gives the same plan applies nothing.
	applies := h.sy.applyCount()
	h.cl.setAlive("h1", "h2", "h3")
	waitFor(t, "the signal consumed", func() bool { return len(h.cl.changes) == 0 })
	for range 10 {
		h.clk.Advance(100 * time.Millisecond)
	}
	if got := h.sy.applyCount(); got != applies {
		t.Errorf("an unchanged plan was applied %d more times; want 0", got-applies)
	}
}

func TestNotSettledKeepsTargets(t *testing.T) {
	// Only itself seen so far: h2 and h3 are not yet reached, not dead.
	cl := newFakeCluster(false, "h1")
	h := newHarness(t, Config{SettleCheck: time.Second}, newFakeSource(specA), cl, &fakeSyncer{}).start()
	h.waitRules("WEIR-fo", "orders-1", "orders-2")
	if st := h.a.State(); st.Settled {
		t.Errorf("State().Settled = true before the cluster settled")
	}

	// A membership change before settling still removes nothing.
	cl.setAlive("h1", "h3")
	waitFor(t, "the signal consumed", func() bool { return len(cl.changes) == 0 })
	for range 10 {
		h.clk.Advance(100 * time.Millisecond)
	}
	if got, want := h.sy.rules("WEIR-fo"), []string{"orders-1", "orders-2"}; !slices.Equal(got, want) {
		t.Errorf("before settling, rules = %v; want %v (no target removed)", got, want)
	}

	// Once settled, a host never seen counts as not alive.
	cl.mu.Lock()
	cl.settled = true
	cl.mu.Unlock()
	h.waitRules("WEIR-fo", "orders-2")
	if st := h.a.State(); !st.Settled {
		t.Errorf("State().Settled = false after the cluster settled")
	}
}

func TestHintTriggersFetchWithoutEcho(t *testing.T) {
	h := newHarness(t, Config{}, newFakeSource(specA), newFakeCluster(true, "h1", "h2", "h3"), &fakeSyncer{}).start()
	h.waitRules("WEIR-fo", "orders-1", "orders-2")
	fetches := h.src.fetchCount()

	// Another node fetched specB and hinted it; this agent fetches it itself.
	h.src.set(specB)
	h.cl.hints <- revisionOf(specB)
	h.waitRules("WEIR-fo", "orders-1")
	if got := h.src.fetchCount() - fetches; got != 1 {
		t.Errorf("a hint caused %d fetches; want 1", got)
	}
	if got, want := h.cl.hintList(), []string{revisionOf(specA)}; !slices.Equal(got, want) {
		t.Errorf("hints sent = %v; want %v (a hinted revision is not echoed)", got, want)
	}

	// A hint for the revision already applied fetches nothing.
	h.cl.hints <- revisionOf(specB)
	waitFor(t, "the hint consumed", func() bool { return len(h.cl.hints) == 0 })
	for range 10 {
		h.clk.Advance(100 * time.Millisecond)
	}
	if got := h.src.fetchCount() - fetches; got != 1 {
		t.Errorf("a hint for the applied revision caused a fetch (%d in all); want none", got)
	}
}

func TestResyncRepairsDrift(t *testing.T) {
	sy := &fakeSyncer{}
	h := newHarness(t, Config{Resync: 30 * time.Second}, newFakeSource(specA), newFakeCluster(true, "h1", "h2", "h3"), sy).start()
	h.waitRules("WEIR-fo", "orders-1", "orders-2")
	sy.mu.Lock()
	sy.drifted = true
	sy.mu.Unlock()
	waitAdvancing(t, h.clk, time.Second, "a drift check", func() bool {
		sy.mu.Lock()
		defer sy.mu.Unlock()
		return sy.checks > 0
	})
	waitFor(t, "the repair counted", func() bool { return counterValue(t, h.a, "weir_drift_repairs_total") == 1 })
}

func TestApplyFailureKeepsLastGood(t *testing.T) {
	sy := &fakeSyncer{}
	h := newHarness(t, Config{Resync: 30 * time.Second}, newFakeSource(specA), newFakeCluster(true, "h1", "h2", "h3"), sy).start()
	h.waitRules("WEIR-fo", "orders-1", "orders-2")

	sy.mu.Lock()
	sy.failNext = errors.New("iptables-restore: exit status 4: resource temporarily unavailable")
	sy.mu.Unlock()
	h.src.set(specB)
	h.src.notify()
	waitAdvancing(t, h.clk, 50*time.Millisecond, "the failed apply reported", func() bool {
		return strings.Contains(h.a.State().Error, "resource temporarily unavailable")
	})
	if got, want := h.sy.rules("WEIR-fo"), []string{"orders-1", "orders-2"}; !slices.Equal(got, want) {
		t.Errorf("after a failed apply, rules = %v; want the last good %v re-applied", got, want)
	}
	if got := h.a.State().Revision; got != revisionOf(specA) {
		t.Errorf("after a failed apply, revision = %q; want the last good %q", got, revisionOf(specA))
	}
	// The next resync retries the revision that failed to apply.
	h.waitRules("WEIR-fo", "orders-1")
	if st := h.a.State(); st.Revision != revisionOf(specB) || st.Error != "" {
		t.Errorf("after the retry, State() = %+v; want revision %s and no error", st, revisionOf(specB))
	}
}

func TestShutdownLeavesClusterAndKeepsRules(t *testing.T) {
	h := newHarness(t, Config{}, newFakeSource(specA), newFakeCluster(true, "h1", "h2", "h3"), &fakeSyncer{}).start()
	h.waitRules("WEIR-fo", "orders-1", "orders-2")
	if !h.a.Running() {
		t.Errorf("Running() = false while Run runs")
	}
	if err := h.stop(); err != nil {
		t.Fatalf("Run returned %v; want nil", err)
	}
	h.cl.mu.Lock()
	left := h.cl.left
	h.cl.mu.Unlock()
	if !left {
		t.Errorf("the agent did not leave the cluster on shutdown")
	}
	if got, want := h.sy.rules("WEIR-fo"), []string{"orders-1", "orders-2"}; !slices.Equal(got, want) {
		t.Errorf("after shutdown, rules = %v; want them kept %v", got, want)
	}
	if h.a.Running() {
		t.Errorf("Running() = true after Run returned")
	}
}

func TestNewRequiresDependencies(t *testing.T) {
	if _, err := New(Config{}, Deps{}); err == nil {
		t.Errorf("New without a node name succeeded")
	}
	if _, err := New(Config{Node: "h1"}, Deps{}); err == nil {
		t.Errorf("New without dependencies succeeded")
	}
}

func TestFirstApplyFailureIsRetried(t *testing.T) {
	sy := &fakeSyncer{failNext: errors.New("iptables-restore: exit status 1")}
	h := newHarness(t, Config{Resync: time.Hour}, newFakeSource(specA), newFakeCluster(true, "h1", "h2", "h3"), sy).start()
	waitFor(t, "the failed apply", func() bool { return sy.applyCount() == 1 })
	if st := h.a.State(); st.Revision != "" || !strings.Contains(st.Error, "exit status 1") {
		t.Errorf("after a failed first apply State() = %+v; want no revision and the error", st)
	}
	// Retried after a backoff of about a second, long before the hourly resync.
	start := h.clk.Now()
	h.waitRules("WEIR-fo", "orders-1", "orders-2")
	if waited := h.clk.Now().Sub(start); waited > 5*time.Second {
		t.Errorf("the retry came after %v; want about 1s", waited)
	}
	if st := h.a.State(); st.Error != "" || st.Revision != revisionOf(specA) {
		t.Errorf("after the retry State() = %+v; want revision %s and no error", st, revisionOf(specA))
	}
}

func TestFetchRetrySurvivesReplan(t *testing.T) {
	src := newFakeSource(specA)
	h := newHarness(t, Config{Resync: time.Hour}, src, newFakeCluster(true, "h1", "h2", "h3"), &fakeSyncer{}).start()
	h.waitRules("WEIR-fo", "orders-1", "orders-2")

	src.fail(errors.New("connection refused"))
	src.notify()
	waitAdvancing(t, h.clk, 50*time.Millisecond, "the fetch error", func() bool {
		return strings.Contains(h.a.State().Error, "connection refused")
	})
	// A membership change re-plans in between; the failed fetch is still retried.
	h.cl.setAlive("h1", "h2")
	h.waitRules("WEIR-fo", "orders-1")
	src.set(specB + "# fixed\n")
	waitAdvancing(t, h.clk, 100*time.Millisecond, "the retried fetch", func() bool {
		return h.a.State().Revision == revisionOf(specB+"# fixed\n")
	})
	if st := h.a.State(); st.Error != "" {
		t.Errorf("after the retry State().Error = %q; want empty", st.Error)
	}
}

// TestTellsTheClusterItsHosts checks that the cluster learns the Hosts of a
// revision before it is planned, so that only they count as alive.
func TestTellsTheClusterItsHosts(t *testing.T) {
	h := newHarness(t, Config{}, newFakeSource(specA), newFakeCluster(true, "h1", "h2", "h3"), &fakeSyncer{}).start()
	h.waitRules("WEIR-fo", "orders-1", "orders-2")
	h.cl.mu.Lock()
	rev, hosts := h.cl.expectedRev, slices.Sorted(maps.Keys(h.cl.expected))
	h.cl.mu.Unlock()
	if rev != revisionOf(specA) || !slices.Equal(hosts, []string{"h1", "h2", "h3"}) {
		t.Errorf("SetExpected(%.12s, %v); want %.12s and h1, h2, h3", rev, hosts, revisionOf(specA))
	}
}
