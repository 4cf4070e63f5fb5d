package plan_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	ts "weir/internal/testsupport"
	"weir/reconcile/plan"
)

// BenchmarkDigest measures the plan digest agents gossip, on the plans of
// the render package's BenchmarkAssignRender (every balancer lists 200
// source guests there, so this is the canonical encoding's worst case).
func BenchmarkDigest(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		s := ts.RandomSpec(rand.New(rand.NewPCG(7, uint64(n))), ts.RandomSpecConfig{Balancers: n, Hosts: 100, GuestsPerHost: 10, Targets: 5})
		p := plan.Assign(s, ts.HostNames(s), nil)
		b.Run(fmt.Sprintf("%dk", n/1000), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if len(p.Digest()) != 64 {
					b.Fatal("bad digest")
				}
			}
		})
	}
}

// BenchmarkAssignOnly is the Assign half of the render package's
// BenchmarkAssignRender/10k.
func BenchmarkAssignOnly(b *testing.B) {
	s := ts.RandomSpec(rand.New(rand.NewPCG(7, 10000)), ts.RandomSpecConfig{Balancers: 10000, Hosts: 100, GuestsPerHost: 10, Targets: 5})
	alive := ts.HostNames(s)
	b.ReportAllocs()
	cpu := ts.ProcessCPU()
	for b.Loop() {
		plan.Assign(s, alive, nil)
	}
	b.ReportMetric(float64(ts.ProcessCPU()-cpu)/float64(b.N), "cpu-ns/op")
}
