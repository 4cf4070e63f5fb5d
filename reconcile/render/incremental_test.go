package render_test

import (
	"bytes"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unsafe"

	ts "weir/internal/testsupport"
	"weir/reconcile/plan"
	"weir/reconcile/render"
	"weir/spec"
)

// TestRendererIncremental renders a sequence of changing plans with one
// Renderer and checks that every result is byte for byte what a fresh
// RenderWith gives, and that the chains of unchanged balancers are reused
// (their rules are the previous Ruleset's strings, not copies).
func TestRendererIncremental(t *testing.T) {
	base := ts.RandomSpec(rand.New(rand.NewPCG(11, 3)), ts.RandomSpecConfig{Balancers: 400, Hosts: 6, GuestsPerHost: 10, Targets: 3})
	ts.Check(spec.CheckTCP)(&base.Balancers[5])
	var sick []plan.GuestPort
	for _, g := range base.Guests() {
		if g.Runs(base.Balancers[5].Target) {
			sick = append(sick, plan.GuestPort{Guest: g.Name})
		}
	}
	oneSick, _ := plan.UnhealthyGuests(base, sick[:1])
	allSick, _ := plan.UnhealthyGuests(base, sick)
	allHosts := make([]string, len(base.Hosts))
	for i, h := range base.Hosts {
		allHosts[i] = h.Name
	}
	checked := base.Balancers[5].Name
	if bp := findBalancer(plan.Assign(base, allHosts, oneSick), checked); len(bp.Excluded) != 1 {
		t.Fatalf("%s with one target unhealthy excludes %d targets; want 1", checked, len(bp.Excluded))
	}
	if bp := findBalancer(plan.Assign(base, allHosts, allSick), checked); !bp.FailOpen {
		t.Fatalf("%s with every target unhealthy does not fail open", checked)
	}
	clone := func(s *spec.Spec) *spec.Spec {
		c := *s
		c.Balancers = slices.Clone(s.Balancers)
		return &c
	}
	type step struct {
		name   string
		edit   func(s *spec.Spec) *spec.Spec
		alive  []string
		health plan.Health
		// oneBalancer: the step changes one balancer, so every unchanged
		// chain but the dispatch tree's and that balancer's is reused.
		oneBalancer bool
	}
	steps := []step{
		{"first", func(s *spec.Spec) *spec.Spec { return s }, allHosts, nil, false},
		{"unchanged", func(s *spec.Spec) *spec.Spec { return s }, allHosts, nil, true},
		{"a checked target unhealthy", func(s *spec.Spec) *spec.Spec { return s }, allHosts, oneSick, true},
		{"every checked target unhealthy (fail open)", func(s *spec.Spec) *spec.Spec { return s }, allHosts, allSick, true},
		{"healthy again", func(s *spec.Spec) *spec.Spec { return s }, allHosts, nil, true},
		{"drained", func(s *spec.Spec) *spec.Spec {
			c := clone(s)
			b := &c.Balancers[14]
			b.Strategy, b.Weights = spec.Random, map[string]int{}
			for _, g := range c.Guests() {
				if g.Runs(b.Target) {
					b.Weights[g.Name] = 0
					break
				}
			}
			return c
		}, allHosts, nil, true},
		{"target port", func(s *spec.Spec) *spec.Spec { c := clone(s); c.Balancers[7].TargetPort++; return c }, allHosts, nil, true},
		{"weight", func(s *spec.Spec) *spec.Spec {
			c := clone(s)
			for i := range c.Balancers {
				if b := &c.Balancers[i]; len(b.Weights) > 1 {
					w := maps.Clone(b.Weights)
					w[slices.Sorted(maps.Keys(w))[0]] += 7
					b.Weights = w
					break
				}
			}
			return c
		}, allHosts, nil, true},
		{"strategy", func(s *spec.Spec) *spec.Spec {
			c := clone(s)
			c.Balancers[9].Strategy, c.Balancers[9].Weights = spec.RoundRobin, nil
			return c
		}, allHosts, nil, true},
		{"frontend moved", func(s *spec.Spec) *spec.Spec {
			c := clone(s)
			c.Balancers[12].Frontend.Port = 1
			return c
		}, allHosts, nil, true},
		{"balancer removed", func(s *spec.Spec) *spec.Spec {
			c := clone(s)
			c.Balancers = slices.Delete(c.Balancers, 20, 21)
			return c
		}, allHosts, nil, true},
		{"host dead", func(s *spec.Spec) *spec.Spec { return s }, allHosts[1:], nil, false},
		{"all target hosts dead (reject)", func(s *spec.Spec) *spec.Spec { return s }, allHosts[:1], nil, false},
		{"hosts back", func(s *spec.Spec) *spec.Spec { return s }, allHosts, nil, false},
	}
	for _, opts := range []render.RenderOptions{{}, {Dispatch: render.LinearDispatch}} {
		for _, node := range []string{"host-000", "host-003"} {
			r := render.NewRenderer(node, opts)
			s := base
			var prev *render.Ruleset
			for _, st := range steps {
				s = st.edit(s)
				p := plan.Assign(s, st.alive, st.health)
				got := r.Render(p)
				want := render.RenderWith(p, node, opts)
				if !bytes.Equal(got.Bytes(), want.Bytes()) {
					t.Fatalf("%s %v step %q: Renderer.Render differs from RenderWith", node, opts.Dispatch, st.name)
				}
				if !slices.EqualFunc(got.Flows, want.Flows, func(a, b render.Flow) bool {
					return a.Balancer == b.Balancer && a.Frontend == b.Frontend && slices.Equal(a.Targets, b.Targets)
				}) {
					t.Fatalf("%s step %q: flows differ", node, st.name)
				}
				if prev != nil && st.oneBalancer {
					if copied := copiedChains(prev, got); copied > 3+3 {
						t.Errorf("%s step %q: %d unchanged balancer chains were rendered again; want at most those of one balancer", node, st.name, copied)
					}
				}
				prev = got
			}
		}
	}
}

// copiedChains counts the chains of cur outside the dispatch tree whose
// rules equal those of prev at the same name but are not the same strings.
func copiedChains(prev, cur *render.Ruleset) int {
	old := map[string][]string{}
	for _, t := range prev.Tables {
		for _, c := range t.Chains {
			old[t.Name+"/"+c.Name] = c.Rules
		}
	}
	n := 0
	for _, t := range cur.Tables {
		for _, c := range t.Chains {
			o, ok := old[t.Name+"/"+c.Name]
			if !ok || len(o) == 0 || !slices.Equal(o, c.Rules) || isDispatchChain(c.Name) {
				continue
			}
			if unsafe.StringData(o[0]) != unsafe.StringData(c.Rules[0]) {
				n++
			}
		}
	}
	return n
}

// isDispatchChain reports whether name is a top, dispatch-tree or
// endpoint (WEIR-SEP) chain, which every Render writes anew.
func isDispatchChain(name string) bool {
	switch {
	case strings.HasPrefix(name, "WEIR-DST-"), strings.HasPrefix(name, "WEIR-PRO-"), strings.HasPrefix(name, "WEIR-PRT-"),
		strings.HasPrefix(name, "WEIR-SEP-"):
		return true
	}
	return name == render.ServicesChain || name == render.RejectChain || name == render.PostroutingChain
}

// findBalancer returns the balancer of p named name, or fails.
func findBalancer(p *plan.Plan, name string) *plan.BalancerPlan {
	for i := range p.Balancers {
		if p.Balancers[i].Name == name {
			return &p.Balancers[i]
		}
	}
	panic("no balancer " + name)
}
