package render_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	ts "weir/internal/testsupport"
	"weir/reconcile/plan"
	"weir/reconcile/render"
	"weir/spec"
)

// BenchmarkAssignRender measures what an agent does for every new revision or
// membership change: the cluster-wide Assign and one host's Render, with
// every host setting every balancer (5 targets each, 100 hosts).
func BenchmarkAssignRender(b *testing.B) {
	for _, n := range []int{1000, 10000, 50000} {
		s := ts.RandomSpec(rand.New(rand.NewPCG(7, uint64(n))), ts.RandomSpecConfig{Balancers: n, Hosts: 100, GuestsPerHost: 10, Targets: 5})
		alive := ts.HostNames(s)
		b.Run(fmt.Sprintf("%dk", n/1000), func(b *testing.B) {
			b.ReportAllocs()
			cpu := ts.ProcessCPU()
			for b.Loop() {
				rs := render.Render(plan.Assign(s, alive, nil), "host-042")
				if rs.Balancers() != n {
					b.Fatalf("rendered %d balancers; want %d", rs.Balancers(), n)
				}
			}
			// On a shared machine wall time swings with the neighbours' load;
			// the process's CPU time per operation (GC included) does not.
			b.ReportMetric(float64(ts.ProcessCPU()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkAssignRenderHealth is BenchmarkAssignRender/10k with a tcp
// health check on every balancer and one target guest in 20 (on every other
// host) reported failing, which excludes about 3,000 targets: the cost of
// looking up each target's check in the health view.
func BenchmarkAssignRenderHealth(b *testing.B) {
	const n = 10000
	s := ts.RandomSpec(rand.New(rand.NewPCG(7, n)), ts.RandomSpecConfig{Balancers: n, Hosts: 100, GuestsPerHost: 10, Targets: 5})
	for i := range s.Balancers {
		ts.Check(spec.CheckTCP)(&s.Balancers[i])
	}
	var sick []plan.GuestPort
	for i, g := range s.Guests() {
		// Guest 7 of every other host: target guests (0 and 1 are sources).
		if i%20 == 7 {
			sick = append(sick, plan.GuestPort{Guest: g.Name})
		}
	}
	health, unmatched := plan.UnhealthyGuests(s, sick)
	if len(unmatched) > 0 {
		b.Fatalf("%d of the sick guests are no checked target", len(unmatched))
	}
	alive := ts.HostNames(s)
	b.ReportAllocs()
	cpu := ts.ProcessCPU()
	for b.Loop() {
		if rs := render.Render(plan.Assign(s, alive, health), "host-042"); rs.Balancers() != n {
			b.Fatalf("rendered %d balancers; want %d", rs.Balancers(), n)
		}
	}
	b.ReportMetric(float64(ts.ProcessCPU()-cpu)/float64(b.N), "cpu-ns/op")
}

// BenchmarkRenderOnly is the Render half of BenchmarkAssignRender/10k (the
// plan package's BenchmarkAssignOnly is the other), in both dispatch
// layouts.
func BenchmarkRenderOnly(b *testing.B) {
	s := ts.RandomSpec(rand.New(rand.NewPCG(7, 10000)), ts.RandomSpecConfig{Balancers: 10000, Hosts: 100, GuestsPerHost: 10, Targets: 5})
	p := plan.Assign(s, ts.HostNames(s), nil)
	for _, m := range []struct {
		name string
		opts render.RenderOptions
	}{{"tree", render.RenderOptions{}}, {"linear", render.RenderOptions{Dispatch: render.LinearDispatch}}} {
		b.Run(m.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu := ts.ProcessCPU()
			for b.Loop() {
				render.RenderWith(p, "host-042", m.opts)
			}
			b.ReportMetric(float64(ts.ProcessCPU()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}
