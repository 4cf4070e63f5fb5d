package e2e

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"weir/e2e/lab"
	"weir/internal/testsupport"
)

// The dual-stack scenario: the lab of newBasicEnv with IPv6 (lab.Options.IPv6,
// docs/test-network.md's fd00: ranges), agents gossiping over their hosts'
// IPv6 addresses, and an IPv6 balancer beside an IPv4 one from the same
// source guest.

const frontend6 = "[fd00:20::10]:80"

// newDualEnv is newEnv on a dual-stack lab.
func newDualEnv(t *testing.T, guests ...int) *env {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: the e2e tests need root to create network namespaces and program iptables (run as root, e.g. sudo make test)")
	}
	l := lab.ForTest(t, lab.Options{Hosts: len(guests), Guests: guests, Git: true, IPv6: true})
	w := &lab.Weir{Bin: weirBin, Lab: l, StatusFromAPI: os.Getenv("WEIR_E2E_STATUS") == "api"}
	t.Cleanup(w.CloseIdleConnections)
	return &env{t: t, ctx: t.Context(), lab: l, weir: w}
}

// dualHosts is basicHosts with every guest dual-stack and every host at its
// IPv6 address, the one its agent gossips on.
func dualHosts(l *lab.Lab) []hostSpec {
	hosts := basicHosts()
	for i := range hosts {
		h := l.Hosts[i]
		hosts[i].addr = `"` + h.Addr6 + `"`
		hosts[i].guests[0].addr = h.Guests[0].Addr + "," + h.Guests[0].Addr6
	}
	return hosts
}

// dualBalancers are the IPv4 frontend-orders with weights v4, and the same
// in IPv6 on fd00:20::10 with weights v6, plus an IPv6 UDP balancer.
func dualBalancers(v4, v6 map[string]int) []balancerSpec {
	b6 := ordersBalancer(v6)
	b6.name, b6.addr = "frontend-orders-v6", `"fd00:20::10"`
	udp6 := balancerSpec{name: "orders-udp-v6", source: "frontend", target: "orders", addr: `"fd00:20::53"`, port: 53, protocol: "udp", targetPort: 8053}
	return []balancerSpec{ordersBalancer(v4), b6, udp6}
}

// startAgents6 starts every agent gossiping on [fd00:18::i]:7946 and
// joining the others there.
func (e *env) startAgents6() {
	e.t.Helper()
	err := e.weir.StartAgents(e.lab.Hosts, func(h *lab.Host) []string {
		var seeds []string
		for _, o := range e.lab.Hosts {
			if o != h {
				seeds = append(seeds, fmt.Sprintf("[%s]:%d", o.Addr6, lab.AgentPort))
			}
		}
		return append([]string{"--bind", fmt.Sprintf("[%s]:%d", h.Addr6, lab.AgentPort), "--join", strings.Join(seeds, ",")}, e.gitArgs()...)
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// rules6 is rules of ip6tables.
func (e *env) rules6(h *lab.Host, table string) []string {
	e.t.Helper()
	r, err := e.lab.Rules6(e.ctx, h.NS, table)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// foreignSetup6 is foreignSetup in ip6tables.
var foreignSetup6 = [][]string{
	{"-t", "nat", "-N", "FOREIGN-NAT6"},
	{"-t", "nat", "-A", "FOREIGN-NAT6", "-d", "fd00:20::200/128", "-j", "RETURN"},
	{"-t", "nat", "-A", "PREROUTING", "-d", "fd00:20::200/128", "-j", "FOREIGN-NAT6"},
	{"-t", "nat", "-A", "OUTPUT", "-d", "fd00:20::202/128", "-j", "RETURN"},
	{"-t", "filter", "-A", "FORWARD", "-d", "fd00:19:9::9/128", "-j", "DROP"},
	{"-t", "filter", "-A", "OUTPUT", "-d", "fd00:20::203/128", "-j", "ACCEPT"},
	{"-t", "mangle", "-A", "PREROUTING", "-d", "fd00:20::204/128", "-j", "ACCEPT"},
}

// TestDualStack: agents gossiping over IPv6 converge on a tree with an IPv4
// and an IPv6 balancer from the same source guest; each splits by its own
// weights (chi-square), IPv6 UDP too; a hand flush of the ip6tables chains
// is repaired; foreign ip6tables rules survive the applies, a change, the
// repair and `weir cleanup`, which removes weir's chains of both families.
func TestDualStack(t *testing.T) {
	e := newDualEnv(t, 1, 1, 1)
	e.serve(e.lab.Guest(2, 1), "orders-1")
	e.serve(e.lab.Guest(3, 1), "orders-2")
	foreign := e.setUpForeign("ip6tables", foreignSetup6, e.rules6)
	check := func(stage string) {
		t.Helper()
		foreign.check(t, e.lab.Hosts, stage)
	}
	c := e.push("dual-stack", renderSpecs(dualHosts(e.lab), dualBalancers(map[string]int{"orders-1": 1, "orders-2": 3}, map[string]int{"orders-1": 3, "orders-2": 1})))
	e.startAgents6()
	e.waitConverged(c)
	st := e.status(e.host("host-a"))
	if m, _ := st.Member("host-b"); !strings.HasPrefix(m.Address, "[fd00:18::2]:") {
		t.Errorf("host-a sees host-b at %q; want [fd00:18::2]:%d (gossip over IPv6)", m.Address, lab.AgentPort)
	}
	if m, _ := st.Member("host-a"); m.Balancers != 3 {
		t.Errorf("host-a sets %d balancers; want 3 (one IPv4, two IPv6)", m.Balancers)
	}
	check("after the first apply")
	web := e.lab.Guest(1, 1)
	assertSplit(t, "IPv4: 400 connections at 1:3", e.dial(web, "tcp", frontend, 400), map[string]float64{"orders-1": 0.25, "orders-2": 0.75})
	assertSplit(t, "IPv6: 1,000 connections at 3:1", e.dial(web, "tcp", frontend6, 1000), map[string]float64{"orders-1": 0.75, "orders-2": 0.25})
	assertSplit(t, "IPv6 UDP: 400 datagrams at 1:1", e.dial(web, "udp", "[fd00:20::53]:53", 400), map[string]float64{"orders-1": 0.5, "orders-2": 0.5})

	c = e.push("IPv6 weights 1:1", renderSpecs(dualHosts(e.lab), dualBalancers(map[string]int{"orders-1": 1, "orders-2": 3}, nil)))
	e.waitConverged(c)
	check("after a change")
	assertSplit(t, "IPv6: 400 connections at 1:1 after the change", e.dial(web, "tcp", frontend6, 400), map[string]float64{"orders-1": 0.5, "orders-2": 0.5})

	ha := e.host("host-a")
	want := e.rules6(ha, "nat")
	flushed := 0
	for _, l := range want {
		if name, ok := strings.CutPrefix(l, ":WEIR-"); ok {
			if _, err := e.lab.Exec(e.ctx, ha.NS, "ip6tables", "-t", "nat", "-F", "WEIR-"+strings.Fields(name)[0]); err != nil {
				t.Fatal(err)
			}
			flushed++
		}
	}
	if flushed == 0 {
		t.Fatalf("no WEIR- chains in host-a's ip6tables nat table:\n%s", strings.Join(want, "\n"))
	}
	start := time.Now()
	err := testsupport.Eventually(e.ctx, waitFor, 50*time.Millisecond, func() error {
		got, err := e.lab.Rules6(e.ctx, ha.NS, "nat")
		if err == nil && !slices.Equal(got, want) {
			err = fmt.Errorf("%d lines, want %d", len(got), len(want))
		}
		return err
	})
	if err != nil {
		t.Fatalf("ip6tables nat on host-a not repaired: %v", err)
	}
	figure(t, fmt.Sprintf("hand flush of %d ip6tables chains → repaired (resync %s)", flushed, resync), time.Since(start), "")
	check("after a repair")
	assertSplit(t, "IPv6: 200 connections after the repair", e.dial(web, "tcp", frontend6, 200), map[string]float64{"orders-1": 0.5, "orders-2": 0.5})

	e.stopAndCleanUp(t, foreign, func(h *lab.Host) {
		for _, tb := range foreignTables {
			if got := weirLines(e.rules(h, tb)); len(got) != 0 {
				t.Errorf("after weir cleanup %s iptables %s still has %q", h.Name, tb, got)
			}
		}
	})
}

// TestHairpinIPv6: over IPv6, a source guest that is itself a target
// reaches itself, and the other target on its host too, through the
// masquerade of the setting host; the target on another host is not
// masqueraded.
func TestHairpinIPv6(t *testing.T) {
	e := newDualEnv(t, 2, 1)
	e.serve(e.lab.Guest(1, 1), "web-1")
	e.serve(e.lab.Guest(1, 2), "orders-1")
	e.serve(e.lab.Guest(2, 1), "orders-2")
	g := func(h, j int) string { return e.lab.Guest(h, j).Addr + "," + e.lab.Guest(h, j).Addr6 }
	hosts := []hostSpec{
		{"host-a", "198.18.0.1", []guestSpec{{"web-1", g(1, 1), []string{"frontend", "orders"}}, {"orders-1", g(1, 2), []string{"orders"}}}},
		{"host-b", "198.18.0.2", []guestSpec{{"orders-2", g(2, 1), []string{"orders"}}}},
	}
	b6 := ordersBalancer(nil)
	b6.name, b6.addr = "frontend-orders-v6", `"fd00:20::10"`
	c := e.push("hairpin over IPv6", renderSpecs(hosts, []balancerSpec{b6}))
	e.startAgents()
	e.waitConverged(c)
	r := e.dial(e.lab.Guest(1, 1), "tcp", frontend6, 300)
	assertSplit(t, "300 IPv6 connections, the source among the targets", r, map[string]float64{"web-1": 1.0 / 3, "orders-1": 1.0 / 3, "orders-2": 1.0 / 3})
	masq := 0
	for _, l := range e.rules6(e.host("host-a"), "nat") {
		if strings.HasPrefix(l, "-A WEIR-SEP-") && strings.Contains(l, "-j MARK --set-xmark") {
			masq++
		}
	}
	if masq != 2 {
		t.Errorf("host-a marks connections to %d targets for masquerading; want 2 (web-1 and orders-1)", masq)
	}
}
