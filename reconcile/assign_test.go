package reconcile

import (
	"math"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"weir/spec"
)

// Fixture builders shared by the pure-half tests (assign_, render_, tracer_,
// bench_render_). They build *spec.Spec values the way spec.Load returns them:
// hosts, guests and balancers sorted by name, Guest.Host set, defaults filled.

func fxGuest(name, addr string, services ...string) spec.Guest {
	svcs := slices.Clone(services)
	slices.Sort(svcs)
	return spec.Guest{Name: name, Address: netip.MustParseAddr(addr), Services: svcs}
}

func fxHost(name, addr string, guests ...spec.Guest) spec.Host {
	h := spec.Host{Name: name, Address: netip.MustParseAddr(addr)}
	for _, g := range guests {
		g.Host = name
		h.Guests = append(h.Guests, g)
	}
	slices.SortFunc(h.Guests, func(a, b spec.Guest) int { return strings.Compare(a.Name, b.Name) })
	return h
}

type fxOpt func(*spec.Balancer)

func fxWeights(kv map[string]int) fxOpt { return func(b *spec.Balancer) { b.Weights = kv } }
func fxTargetPort(p uint16) fxOpt       { return func(b *spec.Balancer) { b.TargetPort = p } }
func fxRoundRobin(b *spec.Balancer)     { b.Strategy = spec.RoundRobin }

// fxBalancer builds a balancer; frontend is "ADDR:PORT/PROTO".
func fxBalancer(name, source, target, frontend string, opts ...fxOpt) spec.Balancer {
	ap, proto, _ := strings.Cut(frontend, "/")
	fe := netip.MustParseAddrPort(ap)
	b := spec.Balancer{
		Name: name, Source: source, Target: target,
		Frontend: spec.Frontend{Address: fe.Addr(), Port: fe.Port(), Protocol: spec.Protocol(proto)},
		Strategy: spec.Random,
	}
	for _, o := range opts {
		o(&b)
	}
	if b.TargetPort == 0 {
		b.TargetPort = b.Frontend.Port
	}
	return b
}

func fxSpec(hosts []spec.Host, balancers ...spec.Balancer) *spec.Spec {
	s := &spec.Spec{Hosts: slices.Clone(hosts), Balancers: slices.Clone(balancers)}
	slices.SortFunc(s.Hosts, func(a, b spec.Host) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(s.Balancers, func(a, b spec.Balancer) int { return strings.Compare(a.Name, b.Name) })
	return s
}

// demoSpec is DESIGN.md's example grown to three hosts: web guests on host-a
// and host-b send to orders guests on all three, and to a UDP dns service.
func demoSpec() *spec.Spec {
	return fxSpec([]spec.Host{
		fxHost("host-a", "198.18.0.1",
			fxGuest("web-1", "198.19.1.2", "frontend"),
			fxGuest("orders-1", "198.19.1.3", "orders")),
		fxHost("host-b", "198.18.0.2",
			fxGuest("web-2", "198.19.2.2", "frontend"),
			fxGuest("orders-2", "198.19.2.3", "orders")),
		fxHost("host-c", "198.18.0.3",
			fxGuest("orders-3", "198.19.3.3", "orders"),
			fxGuest("dns-1", "198.19.3.4", "dns"),
			fxGuest("dns-2", "198.19.3.5", "dns")),
	},
		fxBalancer("frontend-orders", "frontend", "orders", "198.20.0.10:80/tcp",
			fxTargetPort(8080), fxWeights(map[string]int{"orders-1": 3})),
		fxBalancer("frontend-dns", "frontend", "dns", "198.20.0.53:53/udp", fxRoundRobin),
	)
}

func targetNames(ts []Target) string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Host+"/"+t.Guest+"@"+strconv.Itoa(int(t.Port))+"×"+strconv.Itoa(t.Weight))
	}
	return strings.Join(out, ",")
}

func TestAssign(t *testing.T) {
	s := demoSpec()
	tests := []struct {
		name      string
		alive     []string
		wantAlive []string
		// of frontend-orders
		wantTargets string
		wantShares  []float64
	}{
		{"all alive", []string{"host-c", "host-a", "host-b"}, []string{"host-a", "host-b", "host-c"},
			"host-a/orders-1@8080×3,host-b/orders-2@8080×1,host-c/orders-3@8080×1", []float64{0.6, 0.2, 0.2}},
		{"host-b dead", []string{"host-a", "host-c"}, []string{"host-a", "host-c"},
			"host-a/orders-1@8080×3,host-c/orders-3@8080×1", []float64{0.75, 0.25}},
		{"unknown and repeated names ignored", []string{"host-x", "host-b", "host-b"}, []string{"host-b"},
			"host-b/orders-2@8080×1", []float64{1}},
		{"nobody alive", nil, []string{}, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Assign(s, tt.alive)
			if !reflect.DeepEqual(p.Alive, tt.wantAlive) {
				t.Errorf("Assign(%v).Alive = %v; want %v", tt.alive, p.Alive, tt.wantAlive)
			}
			if got := len(p.Balancers); got != 2 {
				t.Fatalf("Assign(%v) has %d balancers; want 2", tt.alive, got)
			}
			if p.Balancers[0].Name != "frontend-dns" || p.Balancers[1].Name != "frontend-orders" {
				t.Errorf("balancers not sorted by name: %s, %s", p.Balancers[0].Name, p.Balancers[1].Name)
			}
			bp := p.Balancers[1]
			if got := targetNames(bp.Targets); got != tt.wantTargets {
				t.Errorf("Assign(%v) targets = %s; want %s", tt.alive, got, tt.wantTargets)
			}
			for i, want := range tt.wantShares {
				if got := bp.Targets[i].Share; math.Abs(got-want) > 1e-12 {
					t.Errorf("Assign(%v) share of %s = %v; want %v", tt.alive, bp.Targets[i].Guest, got, want)
				}
			}
			// Sources and setting hosts do not depend on liveness.
			if got, want := bp.SettingHosts, []string{"host-a", "host-b"}; !reflect.DeepEqual(got, want) {
				t.Errorf("SettingHosts = %v; want %v", got, want)
			}
			var srcs []string
			for _, e := range bp.Sources {
				srcs = append(srcs, e.Host+"/"+e.Guest+"="+e.Address.String())
			}
			if got, want := strings.Join(srcs, ","), "host-a/web-1=198.19.1.2,host-b/web-2=198.19.2.2"; got != want {
				t.Errorf("Sources = %s; want %s", got, want)
			}
		})
	}
}

func TestAssignDefaults(t *testing.T) {
	b := fxBalancer("b", "frontend", "orders", "198.20.0.10:80/tcp")
	b.TargetPort, b.Strategy, b.Frontend.Protocol = 0, "", ""
	s := demoSpec()
	s.Balancers = []spec.Balancer{b}
	bp := Assign(s, []string{"host-a"}).Balancers[0]
	if bp.TargetPort != 80 || bp.Strategy != spec.Random || bp.Frontend.Protocol != spec.TCP {
		t.Errorf("defaults = port %d strategy %q protocol %q; want 80 random tcp", bp.TargetPort, bp.Strategy, bp.Frontend.Protocol)
	}
	if got := bp.Targets[0].Port; got != 80 {
		t.Errorf("target port = %d; want 80", got)
	}
}

// shuffled returns a copy of s with every list in a random order, and maps
// rebuilt so they iterate differently.
func shuffled(rng *rand.Rand, s *spec.Spec) *spec.Spec {
	out := &spec.Spec{}
	for _, h := range s.Hosts {
		h.Guests = slices.Clone(h.Guests)
		for i := range h.Guests {
			h.Guests[i].Services = slices.Clone(h.Guests[i].Services)
			rng.Shuffle(len(h.Guests[i].Services), reflect.Swapper(h.Guests[i].Services))
		}
		rng.Shuffle(len(h.Guests), reflect.Swapper(h.Guests))
		out.Hosts = append(out.Hosts, h)
	}
	rng.Shuffle(len(out.Hosts), reflect.Swapper(out.Hosts))
	for _, b := range s.Balancers {
		w := map[string]int{}
		for k, v := range b.Weights {
			w[k] = v
		}
		b.Weights = w
		out.Balancers = append(out.Balancers, b)
	}
	rng.Shuffle(len(out.Balancers), reflect.Swapper(out.Balancers))
	return out
}

func TestAssignDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, s := range []*spec.Spec{demoSpec(), randomSpec(rng, randomSpecConfig{balancers: 200, hosts: 12, guestsPerHost: 6, targets: 4})} {
		alive := []string{}
		for _, h := range s.Hosts[1:] {
			alive = append(alive, h.Name)
		}
		want := Assign(s, alive)
		wantText := want.Canonical()
		for i := range 20 {
			a := slices.Clone(alive)
			rng.Shuffle(len(a), reflect.Swapper(a))
			got := Assign(shuffled(rng, s), a)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("shuffle %d: Assign differs from the unshuffled plan", i)
			}
			if g := got.Canonical(); string(g) != string(wantText) {
				t.Fatalf("shuffle %d: Canonical differs", i)
			}
			if got.Digest() != want.Digest() {
				t.Fatalf("shuffle %d: Digest = %s; want %s", i, got.Digest(), want.Digest())
			}
		}
	}
}

func TestDigestChanges(t *testing.T) {
	all := []string{"host-a", "host-b", "host-c"}
	base := Assign(demoSpec(), all).Digest()
	if len(base) != 64 || strings.Trim(base, "0123456789abcdef") != "" {
		t.Fatalf("Digest() = %q; want 64 hex digits", base)
	}
	if again := Assign(demoSpec(), all).Digest(); again != base {
		t.Fatalf("Digest not stable: %s then %s", base, again)
	}
	mutations := []struct {
		name   string
		mutate func(s *spec.Spec) []string
	}{
		{"weight", func(s *spec.Spec) []string { s.Balancers[1].Weights = map[string]int{"orders-1": 2}; return all }},
		{"alive", func(s *spec.Spec) []string { return []string{"host-a", "host-b"} }},
		{"target port", func(s *spec.Spec) []string { s.Balancers[1].TargetPort = 8081; return all }},
		{"frontend port", func(s *spec.Spec) []string { s.Balancers[1].Frontend.Port = 81; return all }},
		{"frontend address", func(s *spec.Spec) []string {
			s.Balancers[1].Frontend.Address = netip.MustParseAddr("198.20.0.11")
			return all
		}},
		{"protocol", func(s *spec.Spec) []string { s.Balancers[0].Frontend.Protocol = spec.TCP; return all }},
		{"strategy", func(s *spec.Spec) []string { s.Balancers[0].Strategy = spec.Random; return all }},
		{"new target", func(s *spec.Spec) []string {
			s.Hosts[2].Guests[0].Services = []string{"dns", "orders"}
			return all
		}},
		{"target address", func(s *spec.Spec) []string {
			s.Hosts[1].Guests[0].Address = netip.MustParseAddr("198.19.2.9")
			return all
		}},
		{"source guest", func(s *spec.Spec) []string {
			s.Hosts[0].Guests[0].Services = []string{"frontend", "orders"}
			return all
		}},
		{"balancer name", func(s *spec.Spec) []string { s.Balancers[0].Name = "frontend-dns2"; return all }},
	}
	seen := map[string]string{base: "base"}
	for _, m := range mutations {
		s := demoSpec()
		alive := m.mutate(s)
		d := Assign(s, alive).Digest()
		if prev, ok := seen[d]; ok {
			t.Errorf("after changing %s, Digest = %s, the same as %s", m.name, d, prev)
		}
		seen[d] = m.name
	}
}

func TestCanonicalGolden(t *testing.T) {
	golden(t, "plan/demo.plan", Assign(demoSpec(), []string{"host-a", "host-b", "host-c"}).Canonical())
}

func TestForHost(t *testing.T) {
	p := Assign(demoSpec(), []string{"host-a", "host-b", "host-c"})
	tests := []struct {
		node string
		want []string
	}{
		{"host-a", []string{"frontend-dns", "frontend-orders"}},
		{"host-b", []string{"frontend-dns", "frontend-orders"}},
		{"host-c", nil},
		{"host-x", nil},
	}
	for _, tt := range tests {
		hp := p.ForHost(tt.node)
		var got []string
		for _, b := range hp.Balancers {
			got = append(got, b.Name)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ForHost(%s) balancers = %v; want %v", tt.node, got, tt.want)
		}
		if !reflect.DeepEqual(hp.Alive, p.Alive) {
			t.Errorf("ForHost(%s).Alive = %v; want %v", tt.node, hp.Alive, p.Alive)
		}
	}
}
