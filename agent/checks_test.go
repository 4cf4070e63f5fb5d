package agent

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"weir/cluster"
	"weir/internal/testsupport"
	"weir/reconcile/netfilter"
	"weir/reconcile/plan"
	"weir/reconcile/render"
	"weir/spec"
)

// checkedSpec is host-a running the source guest web-1 and a target,
// orders-1, and host-b running orders-2; a TCP and a UDP balancer from
// frontend to orders, both health-checked over TCP on 8080 with thresholds
// of 1, so one probe moves a state. weights2 is orders-2's weight.
func checkedSpec(weight2 int) string {
	return fmt.Sprintf(`apiVersion: weir/v1
kind: Host
metadata: {name: host-a}
spec:
  address: 198.18.0.1
  guests:
    - {name: web-1, address: 198.19.1.2, services: [frontend]}
    - {name: orders-1, address: 198.19.1.3, services: [orders]}
---
apiVersion: weir/v1
kind: Host
metadata: {name: host-b}
spec:
  address: 198.18.0.2
  guests:
    - {name: orders-2, address: 198.19.2.2, services: [orders]}
---
apiVersion: weir/v1
kind: Balancer
metadata: {name: orders-tcp}
spec:
  source: frontend
  target: orders
  frontend: {address: 198.20.0.10, port: 80}
  targetPort: 8080
  weights: {orders-2: %d}
  healthCheck: {protocol: tcp, port: 8080, interval: 1s, timeout: 500ms, healthyThreshold: 1, unhealthyThreshold: 1}
---
apiVersion: weir/v1
kind: Balancer
metadata: {name: orders-udp}
spec:
  source: frontend
  target: orders
  frontend: {address: 198.20.0.53, port: 53, protocol: udp}
  targetPort: 8053
  weights: {orders-2: %d}
  healthCheck: {protocol: tcp, port: 8080, interval: 1s, timeout: 500ms, healthyThreshold: 1, unhealthyThreshold: 1}
`, weight2, weight2)
}

// fakeProbe fails the checks of the addresses a test marks, and passes the
// others.
type fakeProbe struct {
	mu      sync.Mutex
	failing map[netip.Addr]bool
	probes  int
}

func (p *fakeProbe) Probe(_ context.Context, c spec.EndpointCheck) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.probes++
	if p.failing[c.Address] {
		return errors.New("connection refused")
	}
	return nil
}

func (p *fakeProbe) fail(addr string, failing bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failing == nil {
		p.failing = map[netip.Addr]bool{}
	}
	p.failing[netip.MustParseAddr(addr)] = failing
}

// checkID is the ID of the TCP check on 8080 of the guest at addr, as in
// checkedSpec.
func checkID(addr string) spec.CheckID {
	return spec.EndpointCheck{Address: netip.MustParseAddr(addr), HealthCheck: spec.HealthCheck{
		Protocol: spec.CheckTCP, Port: 8080, Interval: time.Second, Timeout: 500 * time.Millisecond,
		HealthyThreshold: 1, UnhealthyThreshold: 1}}.ID()
}

// healthHarness runs host-a's agent over checkedSpec with the real loader,
// planner and Syncer on the fake netfilter, a fake probe and counters.
func healthHarness(t *testing.T) (*harness, *testsupport.Fake, *fakeProbe) {
	t.Helper()
	nf := testsupport.NewFake()
	probe := &fakeProbe{}
	src := newFakeSource(checkedSpec(1))
	cl := newFakeCluster(true, "host-a", "host-b")
	h := newHarnessDeps(t, Config{Node: "host-a"}, Deps{Source: src, Cluster: cl, Probe: probe.Probe,
		Syncer: NewSyncer(netfilter.NewSyncer(nf, netfilter.SyncerOptions{})), Live: [2]LiveRules{spec.IPv4: fakeCounters{nf: nf}}})
	h.src, h.cl = src, cl
	return h, nf, probe
}

// dnatTo returns the sorted DNAT destinations of port in the fake's nat table.
func dnatTo(t *testing.T, nf *testsupport.Fake, port string) []string {
	var out []string
	for _, d := range natTargets(t, nf) {
		if strings.HasSuffix(d, ":"+port) {
			out = append(out, d)
		}
	}
	return out
}

func TestHealthReportsAndReplans(t *testing.T) {
	h, nf, probe := healthHarness(t)
	h.start()
	both := []string{"198.19.1.3:8080", "198.19.2.2:8080"}
	step := func(what string, cond func() bool) { waitAdvancing(t, h.clk, 20*time.Millisecond, what, cond) }
	step("both targets applied", func() bool { return slices.Equal(dnatTo(t, nf, "8080"), both) })
	nf.AddConntrack(netfilter.ConntrackFlow{Protocol: spec.UDP, Frontend: netip.MustParseAddrPort("198.20.0.53:53"), Target: netip.MustParseAddrPort("198.19.1.3:8053")})
	fetches := h.src.fetchCount()

	// orders-1, on this host, fails: the agent reports it and leaves it out.
	probe.fail("198.19.1.3", true)
	step("orders-1 reported and removed", func() bool {
		return slices.Equal(h.cl.ownReport(), []spec.CheckID{checkID("198.19.1.3")}) &&
			slices.Equal(dnatTo(t, nf, "8080"), []string{"198.19.2.2:8080"})
	})
	// The Syncer deletes the entries just after the restore the step saw.
	waitFor(t, "the UDP conntrack entries to the unhealthy target deleted", func() bool { return len(nf.Conntrack()) == 0 })
	if got := h.a.Status().Health; got.Total() != 2 || got.Unhealthy[0] != (cluster.TargetRef{Balancer: "orders-tcp", Guest: "orders-1", Host: "host-a"}) {
		t.Errorf("Status().Health = %+v; want orders-1 unhealthy in both balancers", got)
	}

	// host-b reports orders-2 failing too: nothing passes, so both balancers fail open.
	h.cl.report("host-b", checkID("198.19.2.2"))
	step("fail open to both", func() bool {
		st := h.a.Status().Health
		return slices.Equal(dnatTo(t, nf, "8080"), both) && st != nil && st.FailOpenTotal == 2
	})
	// A report of host-b about host-a's guest counts for nothing.
	probe.fail("198.19.1.3", false)
	h.cl.report("host-b", checkID("198.19.1.3"))
	step("orders-1 back, host-b's report about it ignored", func() bool {
		return len(h.cl.ownReport()) == 0 && slices.Equal(dnatTo(t, nf, "8080"), both) && h.a.Status().Health == nil
	})
	if got := h.src.fetchCount(); got != fetches {
		t.Errorf("health changes caused %d fetches; want replans only", got-fetches)
	}
	if got := transitions(t, h.a, "unhealthy"); got != 1 {
		t.Errorf("weir_health_transitions_total{to=unhealthy} = %v; want 1", got)
	}
}

// transitions reads weir_health_transitions_total{to}.
func transitions(t *testing.T, a *Agent, to string) float64 {
	t.Helper()
	mfs, err := a.metrics.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "weir_health_transitions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == to {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("weir_health_transitions_total{to=%q} not found", to)
	return 0
}

// TestDrainDeletesUDPConntrack: weight 0 takes a target out of both
// balancers; its UDP conntrack entries are deleted, its TCP ones are not
// (established TCP connections go on).
func TestDrainDeletesUDPConntrack(t *testing.T) {
	h, nf, _ := healthHarness(t)
	h.start()
	step := func(what string, cond func() bool) { waitAdvancing(t, h.clk, 20*time.Millisecond, what, cond) }
	step("both targets applied", func() bool { return len(dnatTo(t, nf, "8053")) == 2 && len(dnatTo(t, nf, "8080")) == 2 })
	udp := netfilter.ConntrackFlow{Protocol: spec.UDP, Frontend: netip.MustParseAddrPort("198.20.0.53:53"), Target: netip.MustParseAddrPort("198.19.2.2:8053")}
	tcp := netfilter.ConntrackFlow{Protocol: spec.TCP, Frontend: netip.MustParseAddrPort("198.20.0.10:80"), Target: netip.MustParseAddrPort("198.19.2.2:8080")}
	nf.AddConntrack(udp)
	nf.AddConntrack(tcp)
	h.src.set(checkedSpec(0))
	h.src.notify()
	step("orders-2 drained", func() bool { return len(dnatTo(t, nf, "8053")) == 1 && len(dnatTo(t, nf, "8080")) == 1 })
	if got := nf.Conntrack(); !slices.Equal(got, []netfilter.ConntrackFlow{tcp}) {
		t.Errorf("conntrack after the drain = %v; want only the TCP entry %v", got, tcp)
	}
	st, err := h.a.Balancer(context.Background(), "orders-tcp")
	if err != nil || st.Targets[1].State != plan.Drained || st.Targets[1].Share != 0 {
		t.Errorf("Balancer(orders-tcp) = %+v, %v; want orders-2 drained with share 0", st, err)
	}
}

// fakeCounters serves the rules of the fake netfilter with a packet count
// of 10 × (rule index + 1), and names backend (nft when empty).
type fakeCounters struct {
	nf      *testsupport.Fake
	backend string
}

func (f fakeCounters) Backend() string { return cmp.Or(f.backend, netfilter.BackendNFT) }

func (f fakeCounters) ChainCounters(ctx context.Context, table, chain string) ([]netfilter.RuleCount, error) {
	rules, err := f.nf.ListRules(ctx, table, []string{chain})
	if err != nil {
		return nil, err
	}
	out := make([]netfilter.RuleCount, len(rules[chain]))
	for i, r := range rules[chain] {
		out[i] = netfilter.RuleCount{Rule: r, Packets: uint64(10 * (i + 1))}
	}
	return out, nil
}

func TestBalancerAPI(t *testing.T) {
	h, nf, probe := healthHarness(t)
	srv := httptest.NewServer(h.a.Handler())
	defer srv.Close()
	if code, _ := get(t, srv, "/balancers/orders-tcp"); code != http.StatusServiceUnavailable {
		t.Errorf("GET /balancers/orders-tcp before any apply = %d; want 503", code)
	}
	h.start()
	probe.fail("198.19.2.2", true) // this host probes only its own guests: no effect
	h.cl.report("host-b", checkID("198.19.2.2"))
	waitAdvancing(t, h.clk, 20*time.Millisecond, "orders-2 out", func() bool { return len(dnatTo(t, nf, "8080")) == 1 })

	code, body := get(t, srv, "/balancers/orders-tcp")
	if code != http.StatusOK {
		t.Fatalf("GET /balancers/orders-tcp = %d %s", code, body)
	}
	want := `{"name":"orders-tcp","revision":"` + revisionOf(checkedSpec(1)) + `","frontend":"198.20.0.10:80/tcp","strategy":"random",` +
		`"failOpen":false,"settingHosts":["host-a"],"targets":[` +
		`{"guest":"orders-1","host":"host-a","address":"198.19.1.3:8080","weight":1,"state":"healthy","share":1,"connections":10},` +
		`{"guest":"orders-2","host":"host-b","address":"198.19.2.2:8080","weight":1,"state":"unhealthy","share":0,"connections":0}]}`
	var compact bytes.Buffer
	if err := json.Compact(&compact, []byte(body)); err != nil || compact.String() != want {
		t.Errorf("GET /balancers/orders-tcp =\n%s\nwant\n%s", compact.String(), want)
	}
	if code, _ := get(t, srv, "/balancers/nope"); code != http.StatusNotFound {
		t.Errorf("GET /balancers/nope = %d; want 404", code)
	}
	// Rules that are not the plan's (drift) give no counts rather than wrong ones.
	if err := nf.Run("nat", "-F", render.ServiceChain("orders-tcp")); err != nil {
		t.Fatal(err)
	}
	st, err := h.a.Balancer(context.Background(), "orders-tcp")
	if err != nil || st.Targets[0].Connections != nil {
		t.Errorf("Balancer over drifted rules = %+v, %v; want no counts", st, err)
	}
}
