package netfilter_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	ts "weir/internal/testsupport"
	"weir/reconcile/netfilter"
	"weir/reconcile/plan"
	"weir/reconcile/render"
	"weir/spec"
)

// BenchmarkOneChange is what an agent does end to end when one balancer of a
// 10,000-balancer host changes: Assign, Digest (gossiped) beside the Render
// of its host with the agent's long-lived Renderer (the agent runs the two
// at once), and a partial Syncer.Apply in a fresh network namespace. Each op
// flips between the two specs. Beside ns/op: the share of each step
// (assign-ms, digest-ms, render-ms, apply-ms) and restore-ms, one
// iptables-restore of the same partial transaction run straight after (the
// floor the kernel and the binary set). Needs root; run with e.g.
//
//	go test ./reconcile/netfilter -run '^$' -bench OneChange -benchtime 20x
func BenchmarkOneChange(b *testing.B) {
	for _, backend := range benchBackends {
		b.Run(backend+"/10k", func(b *testing.B) {
			specs, alive := ts.OneChangeSpecs(10000)
			ctx := context.Background()
			nf, _ := ts.NewIPTables(b, backend)
			s := netfilter.NewSyncer(nf, netfilter.SyncerOptions{})
			renderer := render.NewRenderer("host-042", render.RenderOptions{})
			if _, err := s.Apply(ctx, renderer.Render(plan.Assign(specs[0], alive, nil))); err != nil {
				b.Fatal(err)
			}
			var tAssign, tDigest, tRender, tApply, tFloor time.Duration
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				p := plan.Assign(specs[(i+1)%2], alive, nil)
				t1 := time.Now()
				digest := make(chan time.Duration, 1)
				go func() {
					if len(p.Digest()) != 64 {
						panic("bad digest")
					}
					digest <- time.Since(t1)
				}()
				rs := renderer.Render(p)
				tr := time.Since(t1)
				td := <-digest
				t3 := time.Now()
				res, err := s.Apply(ctx, rs)
				if err != nil {
					b.Fatal(err)
				}
				t4 := time.Now()
				tAssign, tDigest, tRender, tApply = tAssign+t1.Sub(t0), tDigest+td, tRender+tr, tApply+t4.Sub(t3)
				if res.Full || res.ChainsWritten == 0 || res.ChainsWritten > 8 {
					b.Fatalf("Apply = full %v, %d chains written %v; want partial, a few", res.Full, res.ChainsWritten, res.Written)
				}
				b.StopTimer()
				floor := time.Now()
				if _, err := netfilter.RestoreWritten(ctx, nf, rs, res.Written); err != nil {
					b.Fatalf("restoring the written chains again: %v", err)
				}
				tFloor += time.Since(floor)
				b.StartTimer()
			}
			n := float64(b.N)
			b.ReportMetric(ts.Ms(tAssign)/n, "assign-ms")
			b.ReportMetric(ts.Ms(tDigest)/n, "digest-ms")
			b.ReportMetric(ts.Ms(tRender)/n, "render-ms")
			b.ReportMetric(ts.Ms(tApply)/n, "apply-ms")
			b.ReportMetric(ts.Ms(tFloor)/n, "restore-ms")
		})
	}
}

// BenchmarkApplyChangeRendered is weir's own share of a partial apply (diff
// and the transaction text) when one balancer changes on a 10,000-balancer
// host, on Render's output (76,000 chains) rather than the fixture's, without
// the kernel.
func BenchmarkApplyChangeRendered(b *testing.B) {
	specs, alive := ts.OneChangeSpecs(10000)
	rsets := []*render.Ruleset{render.Render(plan.Assign(specs[0], alive, nil), "host-042"), render.Render(plan.Assign(specs[1], alive, nil), "host-042")}
	ctx := context.Background()
	s := netfilter.NewSyncer(nopRestore{ts.NewFake()}, netfilter.SyncerOptions{})
	if _, err := s.Apply(ctx, rsets[0]); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if res, err := s.Apply(ctx, rsets[(i+1)%2]); err != nil || res.Full || res.ChainsWritten == 0 {
			b.Fatalf("Apply = full %v, %d chains, %v; want partial, some", res.Full, res.ChainsWritten, err)
		}
	}
}

// BenchmarkRenderIncremental is Render of a 10,000-balancer host when one
// balancer changed since the previous call, by a long-lived Renderer (as the
// agent keeps one) and from scratch, beside the Syncer's diff of the result
// against the previous Ruleset (which finds reused chains equal by identity).
func BenchmarkRenderIncremental(b *testing.B) {
	specs, alive := ts.OneChangeSpecs(10000)
	plans := []*plan.Plan{plan.Assign(specs[0], alive, nil), plan.Assign(specs[1], alive, nil)}
	for _, mode := range []string{"renderer", "scratch"} {
		b.Run(mode, func(b *testing.B) {
			ctx := context.Background()
			r := render.NewRenderer("host-042", render.RenderOptions{})
			render := func(p *plan.Plan) *render.Ruleset {
				if mode == "scratch" {
					return render.Render(p, "host-042")
				}
				return r.Render(p)
			}
			s := netfilter.NewSyncer(nopRestore{ts.NewFake()}, netfilter.SyncerOptions{})
			if _, err := s.Apply(ctx, render(plans[0])); err != nil {
				b.Fatal(err)
			}
			var tRender, tApply time.Duration
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				rs := render(plans[(i+1)%2])
				t1 := time.Now()
				if _, err := s.Apply(ctx, rs); err != nil {
					b.Fatal(err)
				}
				tRender, tApply = tRender+t1.Sub(t0), tApply+time.Since(t1)
			}
			b.ReportMetric(ts.Ms(tRender)/float64(b.N), "render-ms")
			b.ReportMetric(ts.Ms(tApply)/float64(b.N), "diff-ms")
		})
	}
}

// BenchmarkApplyFullRendered is weir's first (full) apply of Render's real
// output for a 10,000-balancer host (oneChangeSpecs: 5 targets each, every
// host sets every balancer) in a fresh namespace, beside a raw
// iptables-restore of the same transaction (chains, rules and the jumps from
// the built-in chains) in another fresh one as the floor. BenchmarkApplyFull's
// fixture has far fewer chains than Render writes, and on nft the kernel's
// cost of a commit grows with the chains reachable from a built-in chain, so
// this is the figure that tracks Render's layout. Needs root; run with
//
//	go test ./reconcile/netfilter -run '^$' -bench ApplyFullRendered -benchtime 1x
func BenchmarkApplyFullRendered(b *testing.B) {
	specs, alive := ts.OneChangeSpecs(10000)
	applyFullRendered(b, render.Render(plan.Assign(specs[0], alive, nil), "host-042"))
}

// applyFullRendered runs fullApplyVsFloor of rs on every backend.
func applyFullRendered(b *testing.B, rs *render.Ruleset) {
	floorText := netfilter.FullText(rs)
	natChains := len(tableOf(rs, "nat").Chains)
	for _, backend := range benchBackends {
		b.Run(backend+"/10k", func(b *testing.B) {
			b.ReportAllocs()
			fullApplyVsFloor(b, backend, rs, floorText)
			// After the timed loop: ResetTimer drops metrics reported before it.
			b.ReportMetric(float64(natChains), "nat-chains")
			b.ReportMetric(float64(rs.Rules()), "rules")
		})
	}
}

// BenchmarkApplyFullRendered6 is BenchmarkApplyFullRendered in IPv6: a full
// apply of Render's IPv6 output for 10,000 balancers × 5 targets (100 hosts
// of 10 guests, frontends spread over fd00::/16) through ip6tables, beside
// a raw ip6tables-restore of the same text. Needs root; run with
//
//	go test ./reconcile/netfilter -run '^$' -bench ApplyFullRendered6 -benchtime 1x
func BenchmarkApplyFullRendered6(b *testing.B) {
	s := ts.RandomSpec(rand.New(rand.NewPCG(7, 10000)), ts.RandomSpecConfig{Balancers: 10000, Hosts: 100, GuestsPerHost: 10, Targets: 5, Family: spec.IPv6})
	applyFullRendered(b, render.RenderWith(plan.Assign(s, ts.HostNames(s), nil), "host-042", render.RenderOptions{Family: spec.IPv6}))
}
