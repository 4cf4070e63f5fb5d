package render_test

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"

	ts "weir/internal/testsupport"
	"weir/reconcile/plan"
	"weir/reconcile/render"
	"weir/spec"
)

var (
	ipv6      = render.RenderOptions{Family: spec.IPv6}
	ipv6Modes = []struct {
		name string
		opts render.RenderOptions
	}{
		{"tree", render.RenderOptions{Family: spec.IPv6}},
		{"linear", render.RenderOptions{Family: spec.IPv6, Dispatch: render.LinearDispatch}},
	}
)

// An IPv6 balancer beside the IPv4 ones leaves the IPv4 ruleset byte for
// byte what it is without it, and IPv4 balancers never reach the IPv6 one.
func TestRenderFamiliesApart(t *testing.T) {
	all := []string{"host-a", "host-b", "host-c"}
	dual, demo := plan.Assign(ts.DualSpec(), all, nil), plan.Assign(ts.DemoSpec(), all, nil)
	for _, node := range all {
		rss := render.RenderAll(dual, node, render.RenderOptions{})
		if got, want := rss[spec.IPv4].Bytes(), render.Render(demo, node).Bytes(); !bytes.Equal(got, want) {
			t.Errorf("%s: IPv4 rules of the dual-stack spec differ from the IPv4-only spec's:\n%s\nwant\n%s", node, got, want)
		}
		for f, rs := range rss {
			if rs.Family != spec.Family(f) {
				t.Errorf("%s: RenderAll()[%d].Family = %s", node, f, rs.Family)
			}
			for _, fl := range rs.Flows {
				if spec.FamilyOf(fl.Frontend.Address) != rs.Family {
					t.Errorf("%s: %s ruleset has flow %s of frontend %s", node, rs.Family, fl.Balancer, fl.Frontend.Address)
				}
			}
		}
	}
	// host-c runs no source guest: no IPv6 table, no ip6tables jump.
	if rs := render.RenderWith(dual, "host-c", ipv6); len(rs.Tables) != 0 || len(rs.Bytes()) != 0 {
		t.Errorf("host-c's IPv6 ruleset has %d tables; want none", len(rs.Tables))
	}
}

// treeSpec6 is treeSpec in IPv6: frontends sharing long prefixes, one
// address with several ports and protocols, and addresses differing in
// their first, middle and last bits.
func treeSpec6() *spec.Spec {
	hosts := []spec.Host{
		ts.Host("host-a", "198.18.0.1",
			ts.Guest("web-1", "fd00:19:1::2", "web"),
			ts.Guest("web-2", "fd00:19:1::4", "web"),
			ts.Guest("db-1", "fd00:19:1::3", "db")),
		ts.Host("host-b", "198.18.0.2",
			ts.Guest("api-1", "fd00:19:2::2", "api"),
			ts.Guest("api-2", "fd00:19:2::3", "api")),
	}
	var bs []spec.Balancer
	for i, fe := range []string{
		"[fd00:20::10]:80/tcp", "[fd00:20::10]:443/tcp", "[fd00:20::10]:8080/tcp", "[fd00:20::10]:8081/tcp",
		"[fd00:20::10]:53/udp", "[fd00:20::10]:53/tcp", "[fd00:20::10]:9000/sctp",
		"[fd00:20::11]:80/tcp", "[fd00:20::12]:80/tcp", "[fd00:20::1:0]:80/tcp", "[fd00:20:0:1::5]:5353/udp",
		"[fd00:21::1]:80/tcp", "[2001:db8::1]:80/tcp", "[fd00:20::8000:0:0:1]:80/tcp",
	} {
		bs = append(bs, ts.Balancer(fmt.Sprintf("b%02d", i), "web", "api", fe))
	}
	bs = append(bs, ts.Balancer("db", "web", "db", "[fd00:20::20]:5432/tcp"))
	return ts.Spec(hosts, bs...)
}

func TestRenderGoldenIPv6(t *testing.T) {
	all := []string{"host-a", "host-b", "host-c"}
	tests := []struct {
		name  string
		spec  *spec.Spec
		alive []string
		node  string
		opts  render.RenderOptions
	}{
		{"dual-host-a-ipv6", ts.DualSpec(), all, "host-a", ipv6},
		{"dual-host-b-ipv6", ts.DualSpec(), all, "host-b", ipv6},
		{"dual-host-a-none-alive-ipv6", ts.DualSpec(), nil, "host-a", ipv6},
		{"tree-ipv6", treeSpec6(), []string{"host-a", "host-b"}, "host-a", ipv6},
		{"tree-linear-ipv6", treeSpec6(), []string{"host-a", "host-b"}, "host-a", render.RenderOptions{Family: spec.IPv6, Dispatch: render.LinearDispatch}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := render.RenderWith(plan.Assign(tt.spec, tt.alive, nil), tt.node, tt.opts)
			newTracer(t, rs)
			got := dump(rs)
			ts.Golden(t, tt.name+".rules", got)
			if again := dump(render.RenderWith(plan.Assign(tt.spec, tt.alive, nil), tt.node, tt.opts)); !bytes.Equal(again, got) {
				t.Errorf("rendering twice gave different bytes")
			}
		})
	}
}

func TestTraceIPv6(t *testing.T) {
	s := ts.Spec([]spec.Host{
		ts.Host("host-a", "198.18.0.1",
			ts.Guest("web-1", "198.19.1.2,fd00:19:1::2", "frontend", "orders"),
			ts.Guest("orders-1", "198.19.1.3,fd00:19:1::3", "orders")),
		ts.Host("host-b", "198.18.0.2",
			ts.Guest("orders-2", "198.19.2.3,fd00:19:2::3", "orders"),
			ts.Guest("orders-3", "198.19.2.4,fd00:19:2::4", "orders")),
	},
		ts.Balancer("v4", "frontend", "orders", "198.20.0.10:80/tcp", ts.TargetPort(8080)),
		ts.Balancer("v6", "frontend", "orders", "[fd00:20::10]:80/tcp", ts.TargetPort(8080),
			ts.Weights(map[string]int{"web-1": 1, "orders-1": 1, "orders-2": 2, "orders-3": 4})),
		ts.Balancer("v6-dns", "frontend", "dns", "[fd00:20::53]:53/udp"),
	)
	p := plan.Assign(s, []string{"host-a", "host-b"}, nil)
	for _, m := range ipv6Modes {
		t.Run(m.name, func(t *testing.T) {
			tr := newTracer(t, render.RenderWith(p, "host-a", m.opts))
			// Weights 1:1:2:4; the two targets on host-a (web-1 is its own
			// target) are masqueraded (hairpin).
			got := shares(tr.trace(pkt("fd00:19:1::2", "fd00:20::10", "tcp", 80)))
			want := map[string]float64{"[fd00:19:1::2]:8080 masq": 0.125, "[fd00:19:1::3]:8080 masq": 0.125,
				"[fd00:19:2::3]:8080": 0.25, "[fd00:19:2::4]:8080": 0.5}
			if !sharesEqual(got, want, 1e-9) {
				t.Errorf("shares = %s; want %s", formatShares(got), formatShares(want))
			}
			for _, tt := range []struct {
				p          tracePacket
				want, with string
			}{
				{pkt("fd00:19:1::2", "fd00:20::53", "udp", 53), "REJECT", "icmp6-port-unreachable"},
				{pkt("fd00:19:1::3", "fd00:20::10", "tcp", 80), "none", ""}, // not a source guest
				{pkt("fd00:19:1::2", "fd00:20::10", "tcp", 81), "none", ""},
				{pkt("fd00:19:1::2", "fd00:20::11", "tcp", 80), "none", ""},
			} {
				paths := tr.trace(tt.p)
				if got := shares(paths); !sharesEqual(got, map[string]float64{tt.want: 1}, 0) || paths[0].reject != tt.with {
					t.Errorf("trace(%v) = %s rejecting with %q; want %s=1 with %q", tt.p, formatShares(got), paths[0].reject, tt.want, tt.with)
				}
			}
		})
	}
	// The IPv4 balancer of the same guests is in the IPv4 ruleset only.
	tr4 := newTracer(t, render.Render(p, "host-a"))
	if got := shares(tr4.trace(pkt("198.19.1.2", "198.20.0.10", "tcp", 80))); len(got) != 4 || got["none"] != 0 {
		t.Errorf("IPv4 shares = %s; want four targets", formatShares(got))
	}
}

// At 10,000 random IPv6 frontends the tree over 128-bit addresses agrees
// with linear dispatch, stays within nf_tables' chain depth (newTracer
// checks it) and keeps a packet's dispatch rules logarithmic. The bound is
// looser than TestTreeDispatchDepth's 2·log2(n)+6: the frontends' varying
// bits sit in three bytes far apart, and a stride window that straddles a
// byte's end splits on fewer bits than it could (measured: 44 rules at
// most, against about 5,000 on average for linear dispatch).
func TestTreeDispatchIPv6(t *testing.T) {
	const n = 10000
	rng := rand.New(rand.NewPCG(61, 62))
	s := ts.RandomSpec(rng, ts.RandomSpecConfig{Balancers: n, Hosts: 20, GuestsPerHost: 6, Targets: 3, Family: spec.IPv6})
	p := plan.Assign(s, ts.HostNames(s), nil)
	tree := newTracer(t, render.RenderWith(p, "host-001", ipv6))
	linear := newTracer(t, render.RenderWith(p, "host-001", render.RenderOptions{Family: spec.IPv6, Dispatch: render.LinearDispatch}))
	src := netip.MustParseAddr("fd00:19:1::2")
	bound := 3*int(math.Ceil(math.Log2(n))) + 6
	maxTree := 0
	for i := range p.Balancers {
		bp := &p.Balancers[i]
		pk := tracePacket{src: src, dst: bp.Frontend.Address, proto: string(bp.Frontend.Protocol), dport: bp.Frontend.Port}
		got := observed(tree, pk, bp)
		if want := wantShares(bp, "host-001"); !sharesEqual(got, want, 1e-9) {
			t.Fatalf("%s: tree %s; want %s", bp.Name, formatShares(got), formatShares(want))
		}
		_, d := maxRules(tree.trace(pk))
		maxTree = max(maxTree, d)
		if i%50 == 0 {
			if got := observed(linear, pk, bp); !sharesEqual(got, wantShares(bp, "host-001"), 1e-9) {
				t.Fatalf("%s: linear %s", bp.Name, formatShares(got))
			}
		}
	}
	t.Logf("IPv6 tree: at most %d dispatch rules per new connection at %d balancers (bound %d)", maxTree, n, bound)
	if maxTree > bound {
		t.Errorf("IPv6 tree dispatch evaluates up to %d rules; want ≤ %d", maxTree, bound)
	}
	// Every frontend is in fd00::/8, so a packet elsewhere meets the root's
	// rules (2^stride of them at most, stride ≤ 4) and no more.
	if _, d := maxRules(tree.trace(pkt("fd00:19:1::2", "2001:db8::1", "tcp", 80))); d > 16 {
		t.Errorf("a packet to no frontend evaluated %d dispatch rules; want ≤ 16", d)
	}
}

// A Renderer of the IPv6 family gives RenderWith's bytes over successive
// plans, as TestRendererIncremental checks for IPv4.
func TestRendererIncrementalIPv6(t *testing.T) {
	base := ts.RandomSpec(rand.New(rand.NewPCG(13, 5)), ts.RandomSpecConfig{Balancers: 300, Hosts: 6, GuestsPerHost: 8, Targets: 3, Family: spec.IPv6})
	all := ts.HostNames(base)
	changed := *base
	changed.Balancers = append([]spec.Balancer(nil), base.Balancers...)
	changed.Balancers[7].TargetPort++
	r := render.NewRenderer("host-002", ipv6)
	for i, st := range []struct {
		s     *spec.Spec
		alive []string
	}{{base, all}, {base, all}, {&changed, all}, {&changed, all[:4]}, {base, all}} {
		p := plan.Assign(st.s, st.alive, nil)
		if got, want := r.Render(p).Bytes(), render.RenderWith(p, "host-002", ipv6).Bytes(); !bytes.Equal(got, want) {
			t.Fatalf("step %d: Renderer's IPv6 bytes differ from RenderWith's", i)
		}
	}
}

// TestRenderCanonicalOnKernelIPv6 is TestRenderCanonicalOnKernel for
// ip6tables: every rendered IPv6 rule, after SaveForm, is what
// ip6tables-save prints back, jumps included, so drift checks of the IPv6
// family compare like with like.
func TestRenderCanonicalOnKernelIPv6(t *testing.T) {
	all := []string{"host-a", "host-b", "host-c"}
	for _, pl := range []struct {
		name string
		rs   *render.Ruleset
	}{
		{"tree", render.RenderWith(plan.Assign(treeSpec6(), []string{"host-a", "host-b"}, nil), "host-a", ipv6)},
		{"hairpin and weights", render.RenderWith(plan.Assign(ts.DualSpec(), all, nil), "host-a", ipv6)},
		{"reject", render.RenderWith(plan.Assign(ts.DualSpec(), nil, nil), "host-a", ipv6)},
	} {
		t.Run(pl.name, func(t *testing.T) {
			ns := iptablesNetns(t)
			if _, err := exec.LookPath("ip6tables-restore"); err != nil {
				t.Skip("ip6tables-restore not installed")
			}
			ns.RunInput(pl.rs.Bytes(), "ip6tables-restore", "--noflush", "-w")
			for _, tb := range pl.rs.Tables {
				var want, got []string
				for _, j := range tb.Jumps {
					ns.Run(append([]string{"ip6tables", "-w", "-t", tb.Name, "-A", j.Chain}, j.Rule...)...)
					want = append(want, "-A "+j.Chain+" "+strings.Join(j.Rule, " "))
				}
				for _, c := range tb.Chains {
					for _, r := range c.Rules {
						want = append(want, "-A "+c.Name+" "+render.SaveForm(r))
					}
				}
				for _, line := range strings.Split(ns.Run("ip6tables-save", "-t", tb.Name), "\n") {
					if strings.HasPrefix(line, "-A ") {
						got = append(got, line)
					}
				}
				slices.Sort(want)
				slices.Sort(got)
				if n, g, w := ts.FirstDiff(got, want); n > 0 {
					t.Fatalf("table %s: ip6tables-save line differs:\n got: %s\nwant: %s", tb.Name, g, w)
				}
			}
		})
	}
}
