package render_test

import (
	"bytes"
	"testing"

	ts "weir/internal/testsupport"
	"weir/reconcile/plan"
	"weir/reconcile/render"
	"weir/spec"
)

// TestTraceHealth proves with the packet tracer that unhealthy and drained
// targets get no new connection, that the others share them by weight, and
// that a balancer whose every target with weight > 0 fails fails open.
func TestTraceHealth(t *testing.T) {
	const t1, t2, t3 = "198.19.2.2:8080", "198.19.2.3:8080", "198.19.3.3:8080"
	all := []string{"host-a", "host-b", "host-c"}
	tests := []struct {
		name      string
		weights   map[string]int
		alive     []string
		unhealthy []string
		want      map[string]float64
	}{
		{"all healthy", nil, all, nil, map[string]float64{t1: 0.125, t2: 0.25, t3: 0.625}},
		{"orders-2 unhealthy", nil, all, []string{"orders-2"}, map[string]float64{t1: 1.0 / 6, t3: 5.0 / 6}},
		{"all unhealthy: fail open", nil, all, []string{"orders-1", "orders-2", "orders-3"},
			map[string]float64{t1: 0.125, t2: 0.25, t3: 0.625}},
		{"orders-3 drained", map[string]int{"orders-3": 0}, all, nil, map[string]float64{t1: 1.0 / 3, t2: 2.0 / 3}},
		{"drained and unhealthy", map[string]int{"orders-3": 0}, all, []string{"orders-1"}, map[string]float64{t2: 1}},
		{"the rest unhealthy: fail open without the drained", map[string]int{"orders-3": 0}, all, []string{"orders-1", "orders-2"},
			map[string]float64{t1: 1.0 / 3, t2: 2.0 / 3}},
		{"drained and down: reject", map[string]int{"orders-1": 0, "orders-2": 0}, []string{"host-a", "host-b"}, []string{"orders-1"},
			map[string]float64{"REJECT": 1}},
	}
	for _, tt := range tests {
		w := map[string]int{"orders-1": 1, "orders-2": 2, "orders-3": 5}
		for g, v := range tt.weights {
			w[g] = v
		}
		s := weightedSpec(ts.Weights(w), ts.Check(spec.CheckHTTP))
		p := plan.Assign(s, tt.alive, ts.Unhealthy(t, s, tt.unhealthy...))
		for _, m := range dispatchModes {
			t.Run(tt.name+"/"+m.name, func(t *testing.T) {
				tr := newTracer(t, render.RenderWith(p, "host-a", m.opts))
				got := shares(tr.trace(pkt("198.19.1.2", "198.20.0.10", "tcp", 80)))
				if !sharesEqual(got, tt.want, 1e-9) {
					t.Errorf("shares = %s; want %s", formatShares(got), formatShares(tt.want))
				}
				if want := wantShares(&p.Balancers[0], "host-a"); !sharesEqual(got, want, 1e-9) {
					t.Errorf("shares = %s; the plan says %s", formatShares(got), formatShares(want))
				}
			})
		}
	}
}

// TestRenderHealthGolden pins the rules of a health-aware plan: orders-1
// drained, orders-2 unhealthy (no rule for either), and the unchecked
// neighbour balancer untouched by the health view.
func TestRenderHealthGolden(t *testing.T) {
	s := weightedSpec(ts.Weights(map[string]int{"orders-1": 0, "orders-2": 2, "orders-3": 5}), ts.Check(spec.CheckHTTP))
	p := plan.Assign(s, []string{"host-a", "host-b", "host-c"}, ts.Unhealthy(t, s, "orders-2"))
	rs := render.Render(p, "host-a")
	newTracer(t, rs)
	got := dump(rs)
	ts.Golden(t, "health-host-a.rules", got)
	if again := dump(render.Render(p, "host-a")); !bytes.Equal(again, got) {
		t.Errorf("rendering twice gave different bytes")
	}
}
