package plan_test

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	ts "weir/internal/testsupport"
	"weir/reconcile/plan"
	"weir/spec"
)

// healthSpec: web-1 on host-a sends to orders-1..3 (weights 1:2:5, orders-1
// and orders-2 on host-b, orders-3 on host-c), checked over http, and to the
// same guests without a check (frontend-unchecked).
func healthSpec(weights map[string]int) *spec.Spec {
	return ts.Spec([]spec.Host{
		ts.Host("host-a", "198.18.0.1", ts.Guest("web-1", "198.19.1.2", "frontend")),
		ts.Host("host-b", "198.18.0.2",
			ts.Guest("orders-1", "198.19.2.2", "orders"),
			ts.Guest("orders-2", "198.19.2.3", "orders")),
		ts.Host("host-c", "198.18.0.3", ts.Guest("orders-3", "198.19.3.3", "orders")),
	},
		ts.Balancer("frontend-orders", "frontend", "orders", "198.20.0.10:80/tcp",
			ts.TargetPort(8080), ts.Weights(weights), ts.Check(spec.CheckHTTP)),
		ts.Balancer("frontend-unchecked", "frontend", "orders", "198.20.0.11:80/tcp", ts.Weights(weights)),
	)
}

// describe lists targets as "guest=state:share" in plan order.
func describe(ts []plan.Target) string {
	var out []string
	for _, t := range ts {
		out = append(out, fmt.Sprintf("%s=%v:%.4g", t.Guest, t.State, t.Share))
	}
	return strings.Join(out, " ")
}

func TestAssignHealth(t *testing.T) {
	w125 := map[string]int{"orders-1": 1, "orders-2": 2, "orders-3": 5}
	all := []string{"host-a", "host-b", "host-c"}
	tests := []struct {
		name      string
		weights   map[string]int
		alive     []string
		unhealthy []string // guests whose own host reports them failing
		health    plan.Health
		in, out   string
		failOpen  bool
	}{
		{name: "no reports", weights: w125, alive: all,
			in: "orders-1=healthy:0.125 orders-2=healthy:0.25 orders-3=healthy:0.625"},
		{name: "one unhealthy", weights: w125, alive: all, unhealthy: []string{"orders-2"},
			in: "orders-1=healthy:0.1667 orders-3=healthy:0.8333", out: "orders-2=unhealthy:0"},
		{name: "every target unhealthy fails open", weights: w125, alive: all, unhealthy: []string{"orders-1", "orders-2", "orders-3"},
			in: "orders-1=unhealthy:0.125 orders-2=unhealthy:0.25 orders-3=unhealthy:0.625", failOpen: true},
		{name: "drained", weights: map[string]int{"orders-1": 0, "orders-2": 2, "orders-3": 5}, alive: all,
			in: "orders-2=healthy:0.2857 orders-3=healthy:0.7143", out: "orders-1=drained:0"},
		{name: "down", weights: w125, alive: []string{"host-a", "host-b"},
			in: "orders-1=healthy:0.3333 orders-2=healthy:0.6667", out: "orders-3=down:0"},
		{name: "down wins over drained and unhealthy", weights: map[string]int{"orders-3": 0}, alive: []string{"host-a", "host-b"},
			unhealthy: []string{"orders-3"}, in: "orders-1=healthy:0.5 orders-2=healthy:0.5", out: "orders-3=down:0"},
		{name: "failing open leaves out drained and down", weights: map[string]int{"orders-1": 0}, alive: []string{"host-a", "host-b"},
			unhealthy: []string{"orders-2", "orders-3"}, in: "orders-2=unhealthy:1", out: "orders-1=drained:0 orders-3=down:0", failOpen: true},
		{name: "all drained or down: no target, no failing open", weights: map[string]int{"orders-1": 0, "orders-2": 0}, alive: []string{"host-a", "host-b"},
			unhealthy: []string{"orders-1"}, out: "orders-1=drained:0 orders-2=drained:0 orders-3=down:0"},
		{name: "a report from another host counts for nothing", weights: w125, alive: all,
			health: plan.UnhealthySet{"host-c": {checkID(t, "orders-2"): true}},
			in:     "orders-1=healthy:0.125 orders-2=healthy:0.25 orders-3=healthy:0.625"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := healthSpec(tt.weights)
			h := tt.health
			if h == nil {
				h = ts.Unhealthy(t, s, tt.unhealthy...)
			}
			p := plan.Assign(s, tt.alive, h)
			bp := p.Balancers[0]
			if got := describe(bp.Targets); got != tt.in {
				t.Errorf("Targets = %s; want %s", got, tt.in)
			}
			if got := describe(bp.Excluded); got != tt.out {
				t.Errorf("Excluded = %s; want %s", got, tt.out)
			}
			if bp.FailOpen != tt.failOpen {
				t.Errorf("FailOpen = %v; want %v", bp.FailOpen, tt.failOpen)
			}
			// Health reports only concern balancers that check their targets.
			unchecked := plan.Assign(s, tt.alive, nil).Balancers[1]
			if got := p.Balancers[1]; !reflect.DeepEqual(got, unchecked) {
				t.Errorf("frontend-unchecked = %s | %s; want %s | %s",
					describe(got.Targets), describe(got.Excluded), describe(unchecked.Targets), describe(unchecked.Excluded))
			}
		})
	}
}

// checkID is the ID of frontend-orders' check of guest in healthSpec.
func checkID(t *testing.T, guest string) spec.CheckID {
	s := healthSpec(nil)
	g := s.Guest(guest)
	return spec.EndpointCheck{Address: g.Addr(spec.IPv4), HealthCheck: *s.Balancer("frontend-orders").HealthCheck}.ID()
}

func TestUnhealthyGuests(t *testing.T) {
	s := healthSpec(nil)
	set, unmatched := plan.UnhealthyGuests(s, []plan.GuestPort{{Guest: "orders-1", Port: 8080}, {Guest: "orders-2", Port: 9}, {Guest: "web-1"}, {Guest: "nobody"}})
	if want := (plan.UnhealthySet{"host-b": {checkID(t, "orders-1"): true}}); !reflect.DeepEqual(set, want) {
		t.Errorf("UnhealthyGuests set = %v; want %v", set, want)
	}
	if want := []plan.GuestPort{{Guest: "orders-2", Port: 9}, {Guest: "web-1"}, {Guest: "nobody"}}; !slices.Equal(unmatched, want) {
		t.Errorf("unmatched = %v; want %v", unmatched, want)
	}
	if !set.Unhealthy("host-b", checkID(t, "orders-1")) || set.Unhealthy("host-b", checkID(t, "orders-2")) ||
		!set.Failing("host-b") || set.Failing("host-c") {
		t.Errorf("UnhealthySet answers wrong")
	}
}

func TestCanonicalGoldenHealth(t *testing.T) {
	s := healthSpec(map[string]int{"orders-1": 0})
	s.Hosts = append(s.Hosts, ts.Host("host-d", "198.18.0.4", ts.Guest("orders-4", "198.19.4.2", "orders")))
	p := plan.Assign(s, []string{"host-a", "host-b", "host-c"}, ts.Unhealthy(t, s, "orders-2"))
	ts.Golden(t, "health.plan", p.Canonical())
}

// TestDigestCoversHealth: agents that disagree on which targets take part
// must not agree on the digest.
func TestDigestCoversHealth(t *testing.T) {
	s := healthSpec(nil)
	all := []string{"host-a", "host-b", "host-c"}
	digests := map[string]string{}
	for _, tc := range []struct {
		name string
		h    plan.Health
	}{
		{"none", nil},
		{"orders-2", ts.Unhealthy(t, s, "orders-2")},
		{"orders-3", ts.Unhealthy(t, s, "orders-3")},
		{"all but one", ts.Unhealthy(t, s, "orders-2", "orders-3")},
		{"all: fail open", ts.Unhealthy(t, s, "orders-1", "orders-2", "orders-3")},
	} {
		d := plan.Assign(s, all, tc.h).Digest()
		for prev, pd := range digests {
			if pd == d {
				t.Errorf("health %s has the digest of %s", tc.name, prev)
			}
		}
		digests[tc.name] = d
	}
	// An empty view is no view: the same plan.
	if got, want := plan.Assign(s, all, plan.UnhealthySet{}).Digest(), digests["none"]; got != want {
		t.Errorf("empty health view digest %s; want %s", got, want)
	}
}

// TestAssignHealthDeterministic shuffles the spec, the alive list and the
// order in which the health view was built: the plan stays byte-identical.
func TestAssignHealthDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	s := ts.RandomSpec(rng, ts.RandomSpecConfig{Balancers: 300, Hosts: 12, GuestsPerHost: 6, Targets: 4})
	for i := range s.Balancers {
		if i%3 != 0 {
			ts.Check([]spec.CheckProtocol{spec.CheckTCP, spec.CheckHTTP}[i%2])(&s.Balancers[i])
		}
		if i%7 == 0 {
			for _, g := range s.Guests() {
				if g.Runs(s.Balancers[i].Target) && rng.IntN(3) == 0 {
					if s.Balancers[i].Weights == nil {
						s.Balancers[i].Weights = map[string]int{}
					}
					s.Balancers[i].Weights[g.Name] = 0
				}
			}
		}
	}
	var sick []plan.GuestPort
	for _, g := range s.Guests() {
		if rng.IntN(4) == 0 {
			sick = append(sick, plan.GuestPort{Guest: g.Name})
		}
	}
	alive := ts.HostNames(s)[1:]
	health, _ := plan.UnhealthyGuests(s, sick)
	want := plan.Assign(s, alive, health)
	failOpen, excluded := 0, 0
	for _, bp := range want.Balancers {
		if bp.FailOpen {
			failOpen++
		}
		excluded += len(bp.Excluded)
	}
	if failOpen == 0 || excluded == 0 {
		t.Fatalf("%d balancers fail open, %d targets excluded; the spec does not exercise health", failOpen, excluded)
	}
	for i := range 10 {
		a := slices.Clone(alive)
		rng.Shuffle(len(a), reflect.Swapper(a))
		g := slices.Clone(sick)
		rng.Shuffle(len(g), reflect.Swapper(g))
		h, _ := plan.UnhealthyGuests(s, g)
		got := plan.Assign(ts.Shuffled(rng, s), a, h)
		if !reflect.DeepEqual(got, want) || string(got.Canonical()) != string(want.Canonical()) || got.Digest() != want.Digest() {
			t.Fatalf("shuffle %d: the plan differs", i)
		}
	}
}

func TestSharesSumToOne(t *testing.T) {
	s := healthSpec(map[string]int{"orders-1": 0, "orders-2": 3})
	for _, h := range []plan.Health{nil, ts.Unhealthy(t, s, "orders-2"), ts.Unhealthy(t, s, "orders-2", "orders-3")} {
		bp := plan.Assign(s, []string{"host-a", "host-b", "host-c"}, h).Balancers[0]
		sum := 0.0
		for _, tg := range bp.Targets {
			sum += tg.Share
		}
		if math.Abs(sum-1) > 1e-12 {
			t.Errorf("shares %s sum to %v; want 1", describe(bp.Targets), sum)
		}
	}
}

func TestTargetStateJSON(t *testing.T) {
	for _, st := range []plan.TargetState{plan.Healthy, plan.Unhealthy, plan.Drained, plan.Down} {
		data, err := json.Marshal(st)
		if err != nil || string(data) != `"`+st.String()+`"` {
			t.Errorf("json.Marshal(%v) = %s, %v", st, data, err)
		}
		var back plan.TargetState
		if err := json.Unmarshal(data, &back); err != nil || back != st {
			t.Errorf("json.Unmarshal(%s) = %v, %v", data, back, err)
		}
	}
	if _, err := json.Marshal(plan.TargetState(9)); err == nil {
		t.Errorf("json.Marshal(TargetState(9)) succeeded")
	}
	var st plan.TargetState
	if err := json.Unmarshal([]byte(`"sick"`), &st); err == nil {
		t.Errorf(`json.Unmarshal("sick") succeeded`)
	}
}
