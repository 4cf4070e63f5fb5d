package render_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	ts "weir/internal/testsupport"
	"weir/reconcile/plan"
	"weir/reconcile/render"
	"weir/spec"
)

var dispatchModes = []struct {
	name string
	opts render.RenderOptions
}{
	{"tree", render.RenderOptions{Dispatch: render.TreeDispatch}},
	{"linear", render.RenderOptions{Dispatch: render.LinearDispatch}},
}

func pkt(src, dst string, proto string, port uint16) tracePacket {
	return tracePacket{src: netip.MustParseAddr(src), dst: netip.MustParseAddr(dst), proto: proto, dport: port}
}

// weightedSpec: web-1 on host-a sends to 198.20.0.10:80, spread over three
// orders guests on host-b and host-c with weights 1:2:5.
func weightedSpec(opts ...ts.BalancerOpt) *spec.Spec {
	return ts.Spec([]spec.Host{
		ts.Host("host-a", "198.18.0.1",
			ts.Guest("web-1", "198.19.1.2", "frontend"),
			ts.Guest("other-1", "198.19.1.9", "other")),
		ts.Host("host-b", "198.18.0.2",
			ts.Guest("orders-1", "198.19.2.2", "orders"),
			ts.Guest("orders-2", "198.19.2.3", "orders")),
		ts.Host("host-c", "198.18.0.3",
			ts.Guest("orders-3", "198.19.3.3", "orders"),
			ts.Guest("web-3", "198.19.3.2", "frontend")),
	},
		ts.Balancer("frontend-orders", "frontend", "orders", "198.20.0.10:80/tcp", append([]ts.BalancerOpt{ts.TargetPort(8080)}, opts...)...),
		// A neighbour on the same address, other port, so dispatch must tell them apart.
		ts.Balancer("frontend-orders-tls", "frontend", "orders", "198.20.0.10:443/tcp"),
	)
}

func TestTraceWeights(t *testing.T) {
	s := weightedSpec(ts.Weights(map[string]int{"orders-1": 1, "orders-2": 2, "orders-3": 5}))
	p := plan.Assign(s, []string{"host-a", "host-b", "host-c"}, nil)
	for _, m := range dispatchModes {
		t.Run(m.name, func(t *testing.T) {
			tr := newTracer(t, render.RenderWith(p, "host-a", m.opts))
			got := shares(tr.trace(pkt("198.19.1.2", "198.20.0.10", "tcp", 80)))
			want := map[string]float64{"198.19.2.2:8080": 0.125, "198.19.2.3:8080": 0.25, "198.19.3.3:8080": 0.625}
			if !sharesEqual(got, want, 1e-9) {
				t.Errorf("shares = %s; want %s", formatShares(got), formatShares(want))
			}
		})
	}
}

func TestTraceUntouched(t *testing.T) {
	p := plan.Assign(weightedSpec(), []string{"host-a", "host-b", "host-c"}, nil)
	tests := []struct {
		name string
		pkt  tracePacket
	}{
		{"guest not running the source", pkt("198.19.1.9", "198.20.0.10", "tcp", 80)},
		{"source guest of another host", pkt("198.19.3.2", "198.20.0.10", "tcp", 80)},
		{"other port", pkt("198.19.1.2", "198.20.0.10", "tcp", 81)},
		{"other protocol", pkt("198.19.1.2", "198.20.0.10", "udp", 80)},
		{"other address", pkt("198.19.1.2", "198.20.0.11", "tcp", 80)},
		{"target address itself", pkt("198.19.1.2", "198.19.2.2", "tcp", 8080)},
	}
	for _, m := range dispatchModes {
		for _, tt := range tests {
			t.Run(m.name+"/"+tt.name, func(t *testing.T) {
				tr := newTracer(t, render.RenderWith(p, "host-a", m.opts))
				got := shares(tr.trace(tt.pkt))
				if want := map[string]float64{"none": 1}; !sharesEqual(got, want, 0) {
					t.Errorf("shares = %s; want %s", formatShares(got), formatShares(want))
				}
			})
		}
	}
	// And the positive control: the second balancer on the same address works.
	tr := newTracer(t, render.Render(p, "host-a"))
	got := shares(tr.trace(pkt("198.19.1.2", "198.20.0.10", "tcp", 443)))
	want := map[string]float64{"198.19.2.2:443": 1.0 / 3, "198.19.2.3:443": 1.0 / 3, "198.19.3.3:443": 1.0 / 3}
	if !sharesEqual(got, want, 1e-9) {
		t.Errorf("port 443 shares = %s; want %s", formatShares(got), formatShares(want))
	}
}

func TestTraceRoundRobin(t *testing.T) {
	for _, n := range []int{2, 3} {
		s := weightedSpec(ts.RoundRobin)
		alive := []string{"host-a", "host-b", "host-c"}
		if n == 2 {
			alive = alive[:2]
		}
		p := plan.Assign(s, alive, nil)
		tr := newTracer(t, render.Render(p, "host-a"))
		var seq []string
		for range 3 * n {
			paths := tr.trace(pkt("198.19.1.2", "198.20.0.10", "tcp", 80))
			if len(paths) != 1 || paths[0].prob != 1 || paths[0].verdict != "DNAT" {
				t.Fatalf("roundrobin trace = %+v; want one certain DNAT", paths)
			}
			seq = append(seq, paths[0].to)
		}
		// Every window of n consecutive connections visits each target once,
		// and the rotation repeats.
		for i := 0; i+n <= len(seq); i++ {
			seen := map[string]bool{}
			for _, d := range seq[i : i+n] {
				seen[d] = true
			}
			if len(seen) != n {
				t.Fatalf("n=%d: connections %d..%d went to %v; want %d distinct targets (sequence %v)", n, i, i+n-1, seq[i:i+n], n, seq)
			}
			if i+n < len(seq) && seq[i] != seq[i+n] {
				t.Fatalf("n=%d: rotation does not repeat: %v", n, seq)
			}
		}
		if n == 2 && seq[0] == seq[1] {
			t.Fatalf("roundrobin 1:1 does not alternate: %v", seq)
		}
	}
}

func TestTraceHairpin(t *testing.T) {
	// web-1 runs both services on host-a: traffic to itself and to the other
	// local target must be masqueraded; the remote target must not.
	s := ts.Spec([]spec.Host{
		ts.Host("host-a", "198.18.0.1",
			ts.Guest("web-1", "198.19.1.2", "frontend", "orders"),
			ts.Guest("orders-1", "198.19.1.3", "orders")),
		ts.Host("host-b", "198.18.0.2",
			ts.Guest("orders-2", "198.19.2.3", "orders")),
	}, ts.Balancer("frontend-orders", "frontend", "orders", "198.20.0.10:80/tcp"))
	tr := newTracer(t, render.Render(plan.Assign(s, []string{"host-a", "host-b"}, nil), "host-a"))
	got := shares(tr.trace(pkt("198.19.1.2", "198.20.0.10", "tcp", 80)))
	want := map[string]float64{"198.19.1.2:80 masq": 1.0 / 3, "198.19.1.3:80 masq": 1.0 / 3, "198.19.2.3:80": 1.0 / 3}
	if !sharesEqual(got, want, 1e-9) {
		t.Errorf("shares = %s; want %s", formatShares(got), formatShares(want))
	}
}

// TestTraceSharedEndpoints: balancers that send to the same target endpoint
// on the host share its WEIR-SEP chain, one per (protocol, address, port);
// each still gets its own shares, only the local targets are masqueraded,
// and a packet to a local guest that no balancer rewrote is left alone.
func TestTraceSharedEndpoints(t *testing.T) {
	s := ts.Spec([]spec.Host{
		ts.Host("host-a", "198.18.0.1",
			ts.Guest("web-1", "198.19.1.2", "frontend"),
			ts.Guest("orders-1", "198.19.1.3", "orders", "billing"),
			ts.Guest("orders-2", "198.19.1.4", "orders")),
		ts.Host("host-b", "198.18.0.2",
			ts.Guest("orders-3", "198.19.2.3", "orders", "billing")),
	},
		ts.Balancer("a", "frontend", "orders", "198.20.0.10:80/tcp", ts.TargetPort(8080)),
		ts.Balancer("b", "frontend", "orders", "198.20.0.11:80/tcp", ts.TargetPort(8080), ts.Weights(map[string]int{"orders-2": 2})),
		ts.Balancer("c", "frontend", "billing", "198.20.0.12:80/tcp", ts.TargetPort(8080)),
		ts.Balancer("d", "frontend", "billing", "198.20.0.13:80/tcp", ts.TargetPort(9090)),
		ts.Balancer("e", "frontend", "billing", "198.20.0.13:80/udp", ts.TargetPort(8080)),
	)
	p := plan.Assign(s, []string{"host-a", "host-b"}, nil)
	rs := render.Render(p, "host-a")
	var seps []string
	for _, c := range rs.Tables[1].Chains {
		if strings.HasPrefix(c.Name, "WEIR-"+render.KindSEP+"-") {
			seps = append(seps, c.Rules[1])
		}
	}
	slices.Sort(seps)
	want := []string{
		"-p tcp -m comment --comment weir -j DNAT --to-destination 198.19.1.3:8080",
		"-p tcp -m comment --comment weir -j DNAT --to-destination 198.19.1.3:9090",
		"-p tcp -m comment --comment weir -j DNAT --to-destination 198.19.1.4:8080",
		"-p udp -m comment --comment weir -j DNAT --to-destination 198.19.1.3:8080",
	}
	if !slices.Equal(seps, want) {
		t.Errorf("WEIR-SEP chains DNAT to\n%s\nwant one per local endpoint:\n%s", strings.Join(seps, "\n"), strings.Join(want, "\n"))
	}
	tr := newTracer(t, rs)
	for _, bp := range p.Balancers {
		got := shares(tr.trace(tracePacket{src: netip.MustParseAddr("198.19.1.2"), dst: bp.Frontend.Address,
			proto: string(bp.Frontend.Protocol), dport: bp.Frontend.Port}))
		if want := wantShares(&bp, "host-a"); !sharesEqual(got, want, 1e-9) {
			t.Errorf("%s: %s; want %s", bp.Name, formatShares(got), formatShares(want))
		}
	}
	for _, dst := range []string{"198.19.1.3", "198.19.1.4"} {
		paths := tr.trace(pkt("198.19.1.2", dst, "tcp", 8080))
		if got := shares(paths); !sharesEqual(got, map[string]float64{"none": 1}, 0) || paths[0].masq || paths[0].mark != 0 {
			t.Errorf("a packet straight to the local guest %s: %s, masq %v, mark %#x; want untouched", dst, formatShares(got), paths[0].masq, paths[0].mark)
		}
	}
}

func TestTraceReject(t *testing.T) {
	p := plan.Assign(ts.DemoSpec(), nil, nil) // no host alive: no targets anywhere
	for _, m := range dispatchModes {
		t.Run(m.name, func(t *testing.T) {
			tr := newTracer(t, render.RenderWith(p, "host-a", m.opts))
			tests := []struct {
				pkt        tracePacket
				want       string
				rejectWith string
			}{
				{pkt("198.19.1.2", "198.20.0.10", "tcp", 80), "REJECT", "tcp-reset"},
				{pkt("198.19.1.2", "198.20.0.53", "udp", 53), "REJECT", "icmp-port-unreachable"},
				{pkt("198.19.1.3", "198.20.0.10", "tcp", 80), "none", ""}, // not a source guest
				{pkt("198.19.1.2", "198.20.0.10", "tcp", 8080), "none", ""},
			}
			for _, tt := range tests {
				paths := tr.trace(tt.pkt)
				got := shares(paths)
				if !sharesEqual(got, map[string]float64{tt.want: 1}, 0) {
					t.Errorf("trace(%v) = %s; want %s=1", tt.pkt, formatShares(got), tt.want)
				}
				if paths[0].reject != tt.rejectWith {
					t.Errorf("trace(%v) rejects with %q; want %q", tt.pkt, paths[0].reject, tt.rejectWith)
				}
			}
		})
	}
}

// wantShares is what the plan says a packet from a source guest on node to
// bp's frontend should get.
func wantShares(bp *plan.BalancerPlan, node string) map[string]float64 {
	want := map[string]float64{}
	if len(bp.Targets) == 0 {
		want["REJECT"] = 1
	}
	for _, t := range bp.Targets {
		k := netip.AddrPortFrom(t.Address, t.Port).String()
		if t.Host == node {
			k += " masq"
		}
		want[k] += t.Share
	}
	return want
}

// observed traces a packet as many times as a roundrobin balancer has
// targets (one rotation) and averages, so both strategies yield shares.
func observed(tr *tracer, p tracePacket, bp *plan.BalancerPlan) map[string]float64 {
	n := 1
	if bp.Strategy == spec.RoundRobin && len(bp.Targets) > 1 {
		n = len(bp.Targets)
	}
	out := map[string]float64{}
	for range n {
		for k, v := range shares(tr.trace(p)) {
			out[k] += v / float64(n)
		}
	}
	return out
}

func TestTreeMatchesLinear(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	s := ts.RandomSpec(rng, ts.RandomSpecConfig{Balancers: 2000, Hosts: 10, GuestsPerHost: 6, Targets: 4})
	// Half the hosts dead, so some balancers lose every target and reject.
	alive := []string{"host-000", "host-002", "host-003", "host-005", "host-008"}
	const node = "host-003"
	p := plan.Assign(s, alive, nil)
	tree := newTracer(t, render.Render(p, node))
	linear := newTracer(t, render.RenderWith(p, node, render.RenderOptions{Dispatch: render.LinearDispatch}))
	frontends := map[spec.Frontend]bool{}
	rejected := 0
	for i := range p.Balancers {
		bp := &p.Balancers[i]
		frontends[bp.Frontend] = true
		if len(bp.Targets) == 0 {
			rejected++
		}
		// g-003-001 runs client-1 only; g-003-000 runs both clients.
		src := "198.19.3.2"
		if bp.Source == "client-1" && i%2 == 0 {
			src = "198.19.3.3"
		}
		pk := tracePacket{src: netip.MustParseAddr(src), dst: bp.Frontend.Address, proto: string(bp.Frontend.Protocol), dport: bp.Frontend.Port}
		want := wantShares(bp, node)
		gotTree, gotLinear := observed(tree, pk, bp), observed(linear, pk, bp)
		if !sharesEqual(gotTree, want, 1e-9) || !sharesEqual(gotLinear, want, 1e-9) {
			t.Fatalf("%s (%s): tree %s, linear %s; want %s", bp.Name, bp.Strategy,
				formatShares(gotTree), formatShares(gotLinear), formatShares(want))
		}
		// A guest that runs no client service, and the host of another node's
		// guest, are never balanced.
		for _, other := range []string{"198.19.3.4", "198.19.5.2"} {
			pk.src = netip.MustParseAddr(other)
			if got := shares(tree.trace(pk)); !sharesEqual(got, map[string]float64{"none": 1}, 0) {
				t.Fatalf("%s from %s: tree %s; want none", bp.Name, other, formatShares(got))
			}
		}
	}
	if rejected == 0 {
		t.Fatalf("no balancer without targets; the spec does not exercise rejection")
	}
	// Neighbouring ports and protocols of real frontends fall through both trees.
	for fe := range frontends {
		for _, probe := range []spec.Frontend{
			{Address: fe.Address, Port: fe.Port + 1, Protocol: fe.Protocol},
			{Address: fe.Address, Port: fe.Port, Protocol: map[spec.Protocol]spec.Protocol{spec.TCP: spec.UDP, spec.UDP: spec.SCTP, spec.SCTP: spec.TCP}[fe.Protocol]},
			{Address: fe.Address.Next(), Port: fe.Port, Protocol: fe.Protocol},
		} {
			if frontends[probe] {
				continue
			}
			pk := tracePacket{src: netip.MustParseAddr("198.19.3.2"), dst: probe.Address, proto: string(probe.Protocol), dport: probe.Port}
			for name, tr := range map[string]*tracer{"tree": tree, "linear": linear} {
				if got := shares(tr.trace(pk)); !sharesEqual(got, map[string]float64{"none": 1}, 0) {
					t.Fatalf("%s: %v (no frontend) gives %s; want none", name, probe, formatShares(got))
				}
			}
		}
	}
}

func TestTreeDispatchDepth(t *testing.T) {
	const n = 10000
	rng := rand.New(rand.NewPCG(21, 22))
	s := ts.RandomSpec(rng, ts.RandomSpecConfig{Balancers: n, Hosts: 20, GuestsPerHost: 6, Targets: 3})
	all := make([]string, len(s.Hosts))
	for i, h := range s.Hosts {
		all[i] = h.Name
	}
	p := plan.Assign(s, all, nil)
	tree := newTracer(t, render.Render(p, "host-001"))
	linear := newTracer(t, render.RenderWith(p, "host-001", render.RenderOptions{Dispatch: render.LinearDispatch}))
	bound := 2*int(math.Ceil(math.Log2(n))) + 6
	maxTree, sumTree := 0, 0
	for i := range p.Balancers {
		fe := p.Balancers[i].Frontend
		paths := tree.trace(tracePacket{src: netip.MustParseAddr("198.19.1.2"), dst: fe.Address, proto: string(fe.Protocol), dport: fe.Port})
		_, d := maxRules(paths)
		maxTree = max(maxTree, d)
		sumTree += d
	}
	sumLinear := 0
	const sample = 200
	for i := range sample {
		fe := p.Balancers[i*n/sample].Frontend
		_, d := maxRules(linear.trace(tracePacket{src: netip.MustParseAddr("198.19.1.2"), dst: fe.Address, proto: string(fe.Protocol), dport: fe.Port}))
		sumLinear += d
	}
	meanTree, meanLinear := float64(sumTree)/n, float64(sumLinear)/sample
	t.Logf("dispatch rules per new connection at %d balancers: tree mean %.1f max %d (bound %d); linear mean %.0f",
		n, meanTree, maxTree, bound, meanLinear)
	if maxTree > bound {
		t.Errorf("tree dispatch evaluates up to %d rules; want ≤ 2·log2(n)+6 = %d", maxTree, bound)
	}
	if meanLinear < n/4 {
		t.Errorf("linear dispatch mean %.0f rules; want about n/2 (the comparison is meaningless otherwise)", meanLinear)
	}
	// A packet to no frontend leaves the tree early.
	_, d := maxRules(tree.trace(pkt("198.19.1.2", "203.0.113.1", "tcp", 80)))
	if d > 2 {
		t.Errorf("a packet to no frontend evaluated %d dispatch rules; want ≤ 2", d)
	}
}

func TestTreeDepthBoundAdversarial(t *testing.T) {
	// Addresses one bit apart make a path-compressed binary trie as deep as
	// the address is long, and each carries ports one bit apart over three
	// protocols: without the depth budget the tree would pass nf_tables'
	// limit of render.MaxChainDepth nested chains (newTracer checks it).
	hosts := []spec.Host{
		ts.Host("host-a", "198.18.0.1", ts.Guest("web-1", "198.19.1.2", "web")),
		ts.Host("host-b", "198.18.0.2", ts.Guest("api-1", "198.19.2.2", "api")),
	}
	var bs []spec.Balancer
	base := render.AddrBits(netip.MustParseAddr("100.64.0.0"))
	for k := range 22 {
		addr := render.BitsAddr(base | 1<<k)
		for _, proto := range []string{"tcp", "udp", "sctp"} {
			for j := range 16 {
				fe := netip.AddrPortFrom(addr, uint16(1)<<j).String() + "/" + proto
				bs = append(bs, ts.Balancer(fmt.Sprintf("b-%02d-%s-%02d", k, proto, j), "web", "api", fe))
			}
		}
	}
	p := plan.Assign(ts.Spec(hosts, bs...), []string{"host-a", "host-b"}, nil)
	tr := newTracer(t, render.Render(p, "host-a"))
	for _, bp := range p.Balancers {
		got := shares(tr.trace(tracePacket{src: netip.MustParseAddr("198.19.1.2"), dst: bp.Frontend.Address,
			proto: string(bp.Frontend.Protocol), dport: bp.Frontend.Port}))
		if want := wantShares(&bp, "host-a"); !sharesEqual(got, want, 1e-9) {
			t.Fatalf("%s: %s; want %s", bp.Name, formatShares(got), formatShares(want))
		}
	}
}

// TestRenderChainLayout: a WEIR-SEP chain exists only for a target endpoint
// on the host (it must be marked for masquerading), a WEIR-SRC chain only for more
// than render.MaxInlineSources source guests on the host; either way every source
// guest gets the plan's shares and a guest that is not a source gets nothing.
func TestRenderChainLayout(t *testing.T) {
	for _, n := range []int{1, 2, 4, 8} {
		t.Run(fmt.Sprintf("%d-sources", n), func(t *testing.T) {
			var guests []spec.Guest
			for i := range n {
				guests = append(guests, ts.Guest(fmt.Sprintf("web-%d", i), fmt.Sprintf("198.19.1.%d", 10+i), "frontend"))
			}
			guests = append(guests, ts.Guest("orders-1", "198.19.1.3", "orders"), ts.Guest("other-1", "198.19.1.9", "other"))
			s := ts.Spec([]spec.Host{
				ts.Host("host-a", "198.18.0.1", guests...),
				ts.Host("host-b", "198.18.0.2", ts.Guest("orders-2", "198.19.2.3", "orders"), ts.Guest("orders-3", "198.19.2.4", "orders")),
			}, ts.Balancer("frontend-orders", "frontend", "orders", "198.20.0.10:80/tcp", ts.Weights(map[string]int{"orders-1": 1, "orders-2": 2, "orders-3": 5})))
			p := plan.Assign(s, []string{"host-a", "host-b"}, nil)
			for _, m := range dispatchModes {
				rs := render.RenderWith(p, "host-a", m.opts)
				kinds := map[string]int{}
				for _, c := range rs.Tables[1].Chains { // nat
					if k, _, ok := strings.Cut(strings.TrimPrefix(c.Name, "WEIR-"), "-"); ok {
						kinds[k]++
					}
				}
				wantSRC := 0
				if n > render.MaxInlineSources {
					wantSRC = 1
				}
				if kinds[render.KindSEP] != 1 || kinds[render.KindSVC] != 1 || kinds[render.KindSRC] != wantSRC {
					t.Errorf("%s: chains by kind = %v; want 1 SEP (the local target), 1 SVC, %d SRC", m.name, kinds, wantSRC)
				}
				tr := newTracer(t, rs)
				want := map[string]float64{"198.19.1.3:80 masq": 0.125, "198.19.2.3:80": 0.25, "198.19.2.4:80": 0.625}
				for i := range n {
					src := fmt.Sprintf("198.19.1.%d", 10+i)
					if got := shares(tr.trace(pkt(src, "198.20.0.10", "tcp", 80))); !sharesEqual(got, want, 1e-9) {
						t.Errorf("%s: trace from %s = %s; want %s", m.name, src, formatShares(got), formatShares(want))
					}
				}
				for _, src := range []string{"198.19.1.9", "198.19.1.3"} {
					if got := shares(tr.trace(pkt(src, "198.20.0.10", "tcp", 80))); !sharesEqual(got, map[string]float64{"none": 1}, 0) {
						t.Errorf("%s: trace from non-source %s = %s; want none", m.name, src, formatShares(got))
					}
				}
			}
		})
	}
}
