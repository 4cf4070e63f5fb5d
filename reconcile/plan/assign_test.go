package plan_test

import (
	"math"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	ts "weir/internal/testsupport"
	"weir/reconcile/plan"
	"weir/spec"
)

func TestAssign(t *testing.T) {
	s := ts.DemoSpec()
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
			p := plan.Assign(s, tt.alive, nil)
			if !reflect.DeepEqual(p.Alive, tt.wantAlive) {
				t.Errorf("plan.Assign(%v).Alive = %v; want %v", tt.alive, p.Alive, tt.wantAlive)
			}
			if got := len(p.Balancers); got != 2 {
				t.Fatalf("plan.Assign(%v) has %d balancers; want 2", tt.alive, got)
			}
			if p.Balancers[0].Name != "frontend-dns" || p.Balancers[1].Name != "frontend-orders" {
				t.Errorf("balancers not sorted by name: %s, %s", p.Balancers[0].Name, p.Balancers[1].Name)
			}
			bp := p.Balancers[1]
			if got := ts.TargetNames(bp.Targets); got != tt.wantTargets {
				t.Errorf("plan.Assign(%v) targets = %s; want %s", tt.alive, got, tt.wantTargets)
			}
			for i, want := range tt.wantShares {
				if got := bp.Targets[i].Share; math.Abs(got-want) > 1e-12 {
					t.Errorf("plan.Assign(%v) share of %s = %v; want %v", tt.alive, bp.Targets[i].Guest, got, want)
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
	b := ts.Balancer("b", "frontend", "orders", "198.20.0.10:80/tcp")
	b.TargetPort, b.Strategy, b.Frontend.Protocol = 0, "", ""
	s := ts.DemoSpec()
	s.Balancers = []spec.Balancer{b}
	bp := plan.Assign(s, []string{"host-a"}, nil).Balancers[0]
	if bp.TargetPort != 80 || bp.Strategy != spec.Random || bp.Frontend.Protocol != spec.TCP {
		t.Errorf("defaults = port %d strategy %q protocol %q; want 80 random tcp", bp.TargetPort, bp.Strategy, bp.Frontend.Protocol)
	}
	if got := bp.Targets[0].Port; got != 80 {
		t.Errorf("target port = %d; want 80", got)
	}
}

func TestAssignDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, s := range []*spec.Spec{ts.DemoSpec(), ts.RandomSpec(rng, ts.RandomSpecConfig{Balancers: 200, Hosts: 12, GuestsPerHost: 6, Targets: 4})} {
		alive := []string{}
		for _, h := range s.Hosts[1:] {
			alive = append(alive, h.Name)
		}
		want := plan.Assign(s, alive, nil)
		wantText := want.Canonical()
		for i := range 20 {
			a := slices.Clone(alive)
			rng.Shuffle(len(a), reflect.Swapper(a))
			got := plan.Assign(ts.Shuffled(rng, s), a, nil)
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
	base := plan.Assign(ts.DemoSpec(), all, nil).Digest()
	if len(base) != 64 || strings.Trim(base, "0123456789abcdef") != "" {
		t.Fatalf("Digest() = %q; want 64 hex digits", base)
	}
	if again := plan.Assign(ts.DemoSpec(), all, nil).Digest(); again != base {
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
			s.Hosts[1].Guests[0].Addresses = []netip.Addr{netip.MustParseAddr("198.19.2.9")}
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
		s := ts.DemoSpec()
		alive := m.mutate(s)
		d := plan.Assign(s, alive, nil).Digest()
		if prev, ok := seen[d]; ok {
			t.Errorf("after changing %s, Digest = %s, the same as %s", m.name, d, prev)
		}
		seen[d] = m.name
	}
}

func TestCanonicalGolden(t *testing.T) {
	ts.Golden(t, "demo.plan", plan.Assign(ts.DemoSpec(), []string{"host-a", "host-b", "host-c"}, nil).Canonical())
}

func TestForHost(t *testing.T) {
	p := plan.Assign(ts.DemoSpec(), []string{"host-a", "host-b", "host-c"}, nil)
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
