package reconcile

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"weir/spec"
)

// oneChangeSpecs returns two specs of n balancers (as BenchmarkAssignRender
// builds them) that differ in one balancer's target port, and the alive list.
func oneChangeSpecs(n int) ([2]*spec.Spec, []string) {
	s := randomSpec(rand.New(rand.NewPCG(7, uint64(n))), randomSpecConfig{balancers: n, hosts: 100, guestsPerHost: 10, targets: 5})
	alive := make([]string, len(s.Hosts))
	for i, h := range s.Hosts {
		alive[i] = h.Name
	}
	changed := *s
	changed.Balancers = append([]spec.Balancer(nil), s.Balancers...)
	changed.Balancers[n/2].TargetPort++
	return [2]*spec.Spec{s, &changed}, alive
}

// BenchmarkOneChange is what an agent does end to end when one balancer of a
// 10,000-balancer host changes: Assign, Digest (gossiped), Render of its
// host with the agent's long-lived Renderer, and a partial Syncer.Apply in a
// fresh network namespace. Each op
// flips between the two specs. Beside ns/op: the share of each step
// (assign-ms, digest-ms, render-ms, apply-ms) and restore-ms, one
// iptables-restore of the same partial transaction run straight after (the
// floor the kernel and the binary set). Needs root; run with e.g.
//
//	go test ./reconcile -run '^$' -bench OneChange -benchtime 20x
func BenchmarkOneChange(b *testing.B) {
	for _, backend := range benchBackends {
		b.Run(backend+"/10k", func(b *testing.B) {
			specs, alive := oneChangeSpecs(10000)
			ctx := context.Background()
			ns, _ := benchNetns(b, 0)
			nf := benchIPTables(b, backend, ns)
			s := NewSyncer(nf, SyncerOptions{})
			renderer := NewRenderer("host-042", RenderOptions{})
			if _, err := s.Apply(ctx, renderer.Render(Assign(specs[0], alive))); err != nil {
				b.Fatal(err)
			}
			var tAssign, tDigest, tRender, tApply, tFloor time.Duration
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				p := Assign(specs[(i+1)%2], alive)
				t1 := time.Now()
				if len(p.Digest()) != 64 {
					b.Fatal("bad digest")
				}
				t2 := time.Now()
				rs := renderer.Render(p)
				t3 := time.Now()
				res, err := s.Apply(ctx, rs)
				if err != nil {
					b.Fatal(err)
				}
				t4 := time.Now()
				tAssign, tDigest, tRender, tApply = tAssign+t1.Sub(t0), tDigest+t2.Sub(t1), tRender+t3.Sub(t2), tApply+t4.Sub(t3)
				if res.Full || res.ChainsWritten == 0 || res.ChainsWritten > 8 {
					b.Fatalf("Apply = full %v, %d chains written %v; want partial, a few", res.Full, res.ChainsWritten, res.Written)
				}
				b.StopTimer()
				floor, err := restoreAgain(ctx, nf, rs, res)
				if err != nil {
					b.Fatal(err)
				}
				tFloor += floor
				b.StartTimer()
			}
			n := float64(b.N)
			b.ReportMetric(ms(tAssign)/n, "assign-ms")
			b.ReportMetric(ms(tDigest)/n, "digest-ms")
			b.ReportMetric(ms(tRender)/n, "render-ms")
			b.ReportMetric(ms(tApply)/n, "apply-ms")
			b.ReportMetric(ms(tFloor)/n, "restore-ms")
		})
	}
}

// restoreAgain times one iptables-restore of the chains res wrote, as the
// partial apply wrote them.
func restoreAgain(ctx context.Context, nf Netfilter, rs *Ruleset, res ApplyResult) (time.Duration, error) {
	var txns []*txn
	for _, t := range rs.Tables {
		x := &txn{table: t.Name}
		for j := range t.Chains {
			c := &t.Chains[j]
			for _, w := range res.Written {
				if w == t.Name+"/"+c.Name {
					x.declare = append(x.declare, c.Name)
					x.fill = append(x.fill, c)
				}
			}
		}
		txns = append(txns, x)
	}
	start := time.Now()
	_, err := restore(ctx, nf, txns)
	if err != nil {
		return 0, fmt.Errorf("restoring the written chains again: %w", err)
	}
	return time.Since(start), nil
}

// BenchmarkApplyChangeRendered is weir's own share of a partial apply (diff
// and the transaction text) when one balancer changes on a 10,000-balancer
// host, on Render's output (76,000 chains) rather than the fixture's, without
// the kernel.
func BenchmarkApplyChangeRendered(b *testing.B) {
	specs, alive := oneChangeSpecs(10000)
	rsets := []*Ruleset{Render(Assign(specs[0], alive), "host-042"), Render(Assign(specs[1], alive), "host-042")}
	ctx := context.Background()
	s := NewSyncer(nopRestore{NewFake()}, SyncerOptions{})
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
	specs, alive := oneChangeSpecs(10000)
	plans := []*Plan{Assign(specs[0], alive), Assign(specs[1], alive)}
	for _, mode := range []string{"renderer", "scratch"} {
		b.Run(mode, func(b *testing.B) {
			ctx := context.Background()
			r := NewRenderer("host-042", RenderOptions{})
			render := func(p *Plan) *Ruleset {
				if mode == "scratch" {
					return Render(p, "host-042")
				}
				return r.Render(p)
			}
			s := NewSyncer(nopRestore{NewFake()}, SyncerOptions{})
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
			b.ReportMetric(ms(tRender)/float64(b.N), "render-ms")
			b.ReportMetric(ms(tApply)/float64(b.N), "diff-ms")
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
//	go test ./reconcile -run '^$' -bench ApplyFullRendered -benchtime 1x
func BenchmarkApplyFullRendered(b *testing.B) {
	specs, alive := oneChangeSpecs(10000)
	rs := Render(Assign(specs[0], alive), "host-042")
	var floorText bytes.Buffer
	for _, t := range rs.Tables {
		x := &txn{table: t.Name}
		for i := range t.Chains {
			x.declare = append(x.declare, t.Chains[i].Name)
			x.fill = append(x.fill, &t.Chains[i])
		}
		for _, j := range t.Jumps {
			x.jump = append(x.jump, j.Chain+" "+joinRule(j.Rule))
		}
		x.write(&floorText)
	}
	natChains := len(rs.table("nat").Chains)
	for _, backend := range benchBackends {
		b.Run(backend+"/10k", func(b *testing.B) {
			b.ReportAllocs()
			fullApplyVsFloor(b, backend, rs, floorText.Bytes())
			// After the timed loop: ResetTimer drops metrics reported before it.
			b.ReportMetric(float64(natChains), "nat-chains")
			b.ReportMetric(float64(rs.Rules()), "rules")
		})
	}
}
