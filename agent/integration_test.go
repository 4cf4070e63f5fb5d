package agent

import (
	"context"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"weir/examples"
	"weir/internal/testsupport"
	"weir/reconcile/netfilter"
)

// The tests in this file drive the agent with the real spec loader, the real
// planner (plan.Assign and Render) and the real Syncer over the stateful
// fake netfilter of internal/testsupport; only the source, the cluster and the clock are fakes.

// yamlHosts is examples/basic/hosts.yaml (web-1 on host-a runs frontend;
// orders-1 and orders-2 on host-b and host-c run orders), ending a document.
var yamlHosts = func() string {
	b, err := fs.ReadFile(examples.FS, "basic/hosts.yaml")
	if err != nil {
		panic(err)
	}
	return string(b) + "---\n"
}()

func yamlBalancer(port int) string {
	return fmt.Sprintf(`apiVersion: weir/v1
kind: Balancer
metadata: {name: frontend-orders}
spec:
  source: frontend
  target: orders
  frontend: {address: 198.20.0.10, port: %d}
  targetPort: 8080
`, port)
}

// natTargets returns the sorted DNAT destinations in the fake's nat table.
func natTargets(t *testing.T, nf *testsupport.Fake) []string {
	t.Helper()
	b, err := nf.Save(context.Background(), "nat")
	if err != nil {
		t.Fatalf("Save(nat): %v", err)
	}
	var out []string
	for _, m := range regexp.MustCompile(`--to-destination (\S+)`).FindAllStringSubmatch(string(b), -1) {
		out = append(out, m[1])
	}
	slices.Sort(out)
	return out
}

func natText(t *testing.T, nf *testsupport.Fake) string {
	t.Helper()
	b, err := nf.Save(context.Background(), "nat")
	if err != nil {
		t.Fatalf("Save(nat): %v", err)
	}
	return string(b)
}

func newRealHarness(t *testing.T, cfg Config, src *fakeSource, cl *fakeCluster) (*harness, *testsupport.Fake) {
	t.Helper()
	nf := testsupport.NewFake()
	if cfg.Node == "" {
		cfg.Node = "host-a"
	}
	h := newHarnessDeps(t, cfg, Deps{Source: src, Cluster: cl, Syncer: NewSyncer(netfilter.NewSyncer(nf, netfilter.SyncerOptions{}))})
	h.src, h.cl = src, cl
	return h, nf
}

func TestRealBadRevisionKeepsLastGood(t *testing.T) {
	src := newFakeSource(yamlHosts + yamlBalancer(80))
	cl := newFakeCluster(true, "host-a", "host-b", "host-c")
	h, nf := newRealHarness(t, Config{StateDir: t.TempDir()}, src, cl)
	h.start()
	both := []string{"198.19.2.2:8080", "198.19.3.2:8080"}
	waitAdvancing(t, h.clk, 50*time.Millisecond, "both targets applied", func() bool { return slices.Equal(natTargets(t, nf), both) })
	good := natText(t, nf)

	// Port 0 is invalid: the whole revision is rejected with FILE:LINE.
	src.set(yamlHosts + yamlBalancer(0))
	src.notify()
	waitAdvancing(t, h.clk, 50*time.Millisecond, "the bad revision attempted", func() bool {
		return h.a.State().Latest == revisionOf(yamlHosts+yamlBalancer(0))
	})
	st := h.a.State()
	if !regexp.MustCompile(`spec\.yaml:\d+: `).MatchString(st.Error) {
		t.Errorf("State().Error = %q; want a spec.yaml:LINE: message", st.Error)
	}
	if st.Revision != revisionOf(yamlHosts+yamlBalancer(80)) {
		t.Errorf("State().Revision = %q; want the last good one", st.Revision)
	}
	if got := natText(t, nf); got != good {
		t.Errorf("a rejected revision changed the nat table:\n%s\nwant\n%s", got, good)
	}

	// The last good revision is re-planned when host-c dies.
	cl.setAlive("host-a", "host-b")
	waitAdvancing(t, h.clk, 50*time.Millisecond, "host-c's target removed", func() bool {
		return slices.Equal(natTargets(t, nf), []string{"198.19.2.2:8080"})
	})
	if got := h.a.State(); got.Revision != st.Revision || got.Error == "" {
		t.Errorf("after re-plan State() = %+v; want the last good revision and the error kept", got)
	}
}

func TestRealNotSettledKeepsTargets(t *testing.T) {
	src := newFakeSource(yamlHosts + yamlBalancer(80))
	cl := newFakeCluster(false, "host-a") // nobody else reached yet
	h, nf := newRealHarness(t, Config{}, src, cl)
	h.start()
	both := []string{"198.19.2.2:8080", "198.19.3.2:8080"}
	waitAdvancing(t, h.clk, 50*time.Millisecond, "both targets applied", func() bool { return slices.Equal(natTargets(t, nf), both) })

	cl.mu.Lock()
	cl.settled = true
	cl.mu.Unlock()
	waitAdvancing(t, h.clk, 50*time.Millisecond, "unseen targets removed once settled", func() bool {
		filter, err := nf.Save(context.Background(), "filter")
		return err == nil && len(natTargets(t, nf)) == 0 && strings.Contains(string(filter), "REJECT")
	})
	if st := h.a.State(); st.Rules == 0 || st.Balancers != 1 {
		t.Errorf("State() = %+v; want the balancer kept with its reject rule", st)
	}
}

func TestRealRestartAdoptsAndRestores(t *testing.T) {
	stateDir := t.TempDir()
	nf := testsupport.NewFake()
	src := newFakeSource(yamlHosts + yamlBalancer(80))
	h := newHarnessDeps(t, Config{Node: "host-a", StateDir: stateDir}, Deps{Source: src, Cluster: newFakeCluster(true, "host-a", "host-b", "host-c"), Syncer: NewSyncer(netfilter.NewSyncer(nf, netfilter.SyncerOptions{}))})
	h.start()
	waitAdvancing(t, h.clk, 50*time.Millisecond, "rules applied", func() bool { return len(natTargets(t, nf)) == 2 })
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	before := natText(t, nf)

	// Same kernel, new process, source down: the persisted revision is applied
	// by a fresh Syncer (a full, atomic apply) and the rules stay as they were.
	src.fail(fmt.Errorf("dial tcp: connection refused"))
	h2 := newHarnessDeps(t, Config{Node: "host-a", StateDir: stateDir}, Deps{Source: src, Cluster: newFakeCluster(true, "host-a", "host-b", "host-c"), Syncer: NewSyncer(netfilter.NewSyncer(nf, netfilter.SyncerOptions{}))})
	h2.start()
	waitAdvancing(t, h2.clk, 50*time.Millisecond, "the persisted revision applied", func() bool {
		return h2.a.State().Revision == revisionOf(yamlHosts+yamlBalancer(80))
	})
	if got := natText(t, nf); got != before {
		t.Errorf("after restart the nat table is\n%s\nwant it unchanged\n%s", got, before)
	}
}

func TestRealResyncRepairsDrift(t *testing.T) {
	src := newFakeSource(yamlHosts + yamlBalancer(80))
	h, nf := newRealHarness(t, Config{Resync: 30 * time.Second}, src, newFakeCluster(true, "host-a", "host-b", "host-c"))
	h.start()
	both := []string{"198.19.2.2:8080", "198.19.3.2:8080"}
	waitAdvancing(t, h.clk, 50*time.Millisecond, "both targets applied", func() bool { return slices.Equal(natTargets(t, nf), both) })

	// An admin flushes the chains holding the DNAT rules.
	for _, m := range regexp.MustCompile(`(?m)^-A (WEIR-\S+) .*--to-destination`).FindAllStringSubmatch(natText(t, nf), -1) {
		if err := nf.Run("nat", "-F", m[1]); err != nil {
			t.Fatalf("flushing %s: %v", m[1], err)
		}
	}
	if got := natTargets(t, nf); len(got) != 0 {
		t.Fatalf("after flushing, targets = %v; want none", got)
	}
	waitAdvancing(t, h.clk, time.Second, "the resync to repair the rules", func() bool { return slices.Equal(natTargets(t, nf), both) })
	waitFor(t, "the repair counted", func() bool { return counterValue(t, h.a, "weir_drift_repairs_total") == 1 })
}
