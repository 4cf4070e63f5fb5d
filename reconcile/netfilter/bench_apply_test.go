package netfilter_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	ts "weir/internal/testsupport"
	"weir/reconcile/netfilter"
	"weir/reconcile/render"
)

// Apply benchmarks need root and create network namespaces; each op is slow
// (seconds at 10k balancers on nft), so run them with a small -benchtime, e.g.
//
//	go test ./reconcile/netfilter -run '^$' -bench 'Apply|Drift|PerRule' -benchtime 1x
//
// Figures beside the ns/op: floor-ms (a raw iptables-restore --noflush of
// the same text in another fresh namespace, measured in the same op),
// x-floor (weir's full apply / floor), cpu-ms (user+system CPU of this process
// and its children per op), pct-core-at-30s (drift checking's steady-state CPU
// as a share of one core at a 30 s resync).

var benchBackends = []string{netfilter.BackendNFT, netfilter.BackendLegacy}

// BenchmarkApplyFull: weir's first (full) apply of n balancers × 5 targets in
// a fresh namespace, beside a raw restore of the same text in another one.
func BenchmarkApplyFull(b *testing.B) {
	for _, backend := range benchBackends {
		for _, n := range []int{1000, 10000} {
			b.Run(fmt.Sprintf("%s/%dk", backend, n/1000), func(b *testing.B) {
				rs := fixture{n: n, targets: 5, empty: map[int]bool{1: true}}.build()
				text := rs.Bytes()
				b.ReportAllocs()
				fullApplyVsFloor(b, backend, rs, text)
				b.ReportMetric(float64(strings.Count(string(text), "\n")), "lines")
			})
		}
	}
}

// BenchmarkApplyChange: k balancers change on a host that holds 10,000; each
// op applies the changed ruleset, alternating with the original, through a
// partial apply (diff + one restore of the changed chains).
func BenchmarkApplyChange(b *testing.B) {
	for _, backend := range benchBackends {
		for _, k := range []int{1, 100} {
			b.Run(fmt.Sprintf("%s/10k/%d-changed", backend, k), func(b *testing.B) {
				ctx := context.Background()
				base := fixture{n: 10000, targets: 5}
				changed := base
				changed.shift = map[int]int{}
				for j := 0; j < k; j++ {
					changed.shift[j*97%10000] = 1
				}
				rsets := []*render.Ruleset{base.build(), changed.build()}
				nf, _ := ts.NewIPTables(b, backend)
				s := netfilter.NewSyncer(nf, netfilter.SyncerOptions{})
				if _, err := s.Apply(ctx, rsets[0]); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.ResetTimer()
				var weir, floor time.Duration
				for i := 0; i < b.N; i++ {
					rs := rsets[(i+1)%2]
					start := time.Now()
					res, err := s.Apply(ctx, rs)
					if err != nil {
						b.Fatal(err)
					}
					weir += time.Since(start)
					if res.Full || res.ChainsWritten != k {
						b.Fatalf("Apply = full %v, %d chains written; want partial, %d", res.Full, res.ChainsWritten, k)
					}
					// The floor: the same transaction again, straight to
					// iptables-restore (the kernel does the same flush+refill).
					b.StopTimer()
					start = time.Now()
					if _, err := netfilter.RestoreWritten(ctx, nf, rs, res.Written); err != nil {
						b.Fatal(err)
					}
					floor += time.Since(start)
					b.StartTimer()
				}
				b.ReportMetric(ts.Ms(floor)/float64(b.N), "floor-ms")
				b.ReportMetric(float64(weir)/float64(floor), "x-floor")
			})
		}
	}
}

// nopRestore accepts every restore without doing it, leaving only weir's work.
type nopRestore struct{ *ts.Fake }

func (nopRestore) Restore(context.Context, []byte) error { return nil }

// BenchmarkApplyChangeFake is weir's own share of a partial apply (hash every
// chain, diff, write the transaction) on a 10k host, without the kernel.
func BenchmarkApplyChangeFake(b *testing.B) {
	ctx := context.Background()
	base := fixture{n: 10000, targets: 5}
	changed := base
	changed.shift = map[int]int{4242: 1}
	rsets := []*render.Ruleset{base.build(), changed.build()}
	s := netfilter.NewSyncer(nopRestore{ts.NewFake()}, netfilter.SyncerOptions{})
	if _, err := s.Apply(ctx, rsets[0]); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if res, err := s.Apply(ctx, rsets[(i+1)%2]); err != nil || res.ChainsWritten != 1 {
			b.Fatalf("Apply = %d chains, %v; want 1, nil", res.ChainsWritten, err)
		}
	}
}

// BenchmarkDriftCheck: one Reconcile without drift on a 10k host, canary and
// full, and the steady state of the default schedule (one full check every
// 10 calls) as a share of a core at a 30 s resync.
func BenchmarkDriftCheck(b *testing.B) {
	for _, backend := range benchBackends {
		b.Run(backend, func(b *testing.B) {
			ctx := context.Background()
			rs := fixture{n: 10000, targets: 5}.build()
			nf, _ := ts.NewIPTables(b, backend)
			// run returns the CPU of one round of calls and the time the
			// agent lets a round take: calls × DriftCheckGap at 30 s of
			// the round's mean wall time per call.
			run := func(b *testing.B, every, calls int) (time.Duration, time.Duration) {
				s := netfilter.NewSyncer(nf, netfilter.SyncerOptions{FullCheckEvery: every})
				if _, err := s.Apply(ctx, rs); err != nil {
					b.Fatal(err)
				}
				// The first call is a full check that learns the kernel's form
				// of every chain; steady state starts after it.
				if _, err := s.Reconcile(ctx); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				cpu0 := ts.ProcessTreeCPU()
				start := time.Now()
				for i := 0; i < b.N; i++ {
					for c := 0; c < calls; c++ {
						repaired, err := s.Reconcile(ctx)
						if err != nil || repaired {
							b.Fatalf("Reconcile = %v, %v; want no drift", repaired, err)
						}
					}
				}
				mean := time.Since(start) / time.Duration(b.N*calls)
				b.StopTimer()
				cpu := (ts.ProcessTreeCPU() - cpu0) / time.Duration(b.N)
				b.ReportMetric(ts.Ms(cpu), "cpu-ms")
				return cpu, time.Duration(calls) * netfilter.DriftCheckGap(30*time.Second, mean)
			}
			b.Run("canary", func(b *testing.B) { run(b, 1<<30, 1) })
			b.Run("full", func(b *testing.B) { run(b, 1, 1) })
			b.Run("cycle-of-10", func(b *testing.B) {
				cpu, spaced := run(b, 10, 10)
				b.ReportMetric(100*float64(cpu)/float64(10*30*time.Second), "pct-core-at-30s")
				b.ReportMetric(100*float64(cpu)/float64(spaced), "pct-core-spaced")
				b.ReportMetric(spaced.Seconds()/10, "s-between-checks")
			})
		})
	}
}

// BenchmarkPerRule: the way a per-rule library programs 2,000 rules (one
// `iptables -A` process each, here through go-iptables' Append) beside one
// iptables-restore of the same rules.
func BenchmarkPerRule(b *testing.B) {
	const rules = 2000
	for _, backend := range benchBackends {
		b.Run(backend, func(b *testing.B) {
			ctx := context.Background()
			var specs [][]string
			var text strings.Builder
			text.WriteString("*nat\n:WEIR-PEER - [0:0]\n")
			for i := 0; i < rules; i++ {
				r := fmt.Sprintf("-d 198.20.%d.%d/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 198.19.1.2:8080", i/250, i%250+1)
				specs = append(specs, strings.Fields(r))
				text.WriteString("-A WEIR-PEER " + r + "\n")
			}
			text.WriteString("COMMIT\n")
			var perRule, restore time.Duration
			for i := 0; i < b.N; i++ {
				nf, ns := ts.NewIPTables(b, backend)
				start := time.Now()
				if err := netfilter.AppendEach(nf, "nat", "WEIR-PEER", specs); err != nil {
					b.Fatal(err)
				}
				perRule += time.Since(start)
				removeNetns(b, ns)
				nf2, ns2 := ts.NewIPTables(b, backend)
				start = time.Now()
				if err := nf2.Restore(ctx, []byte(text.String())); err != nil {
					b.Fatal(err)
				}
				restore += time.Since(start)
				removeNetns(b, ns2)
			}
			b.ReportMetric(ts.Ms(perRule)/float64(b.N), "per-rule-ms")
			b.ReportMetric(ts.Ms(perRule)/float64(b.N)/rules, "ms/rule")
			b.ReportMetric(ts.Ms(restore)/float64(b.N), "restore-ms")
			b.ReportMetric(float64(perRule)/float64(restore), "ratio")
		})
	}
}

// fullApplyVsFloor times, per op, a Syncer's first (full) apply of rs in a
// fresh namespace and a raw iptables-restore (ip6tables-restore for an IPv6
// rs) of floorText in another, and reports the floor and the ratio as
// floor-ms and x-floor.
func fullApplyVsFloor(b *testing.B, backend string, rs *render.Ruleset, floorText []byte) {
	b.Helper()
	ctx := context.Background()
	var weir, floor time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		opts := netfilter.IPTablesOptions{Backend: backend, Family: rs.Family}
		nf, ns := ts.NewIPTablesWith(b, opts)
		s := netfilter.NewSyncer(nf, netfilter.SyncerOptions{})
		b.StartTimer()
		start := time.Now()
		if _, err := s.Apply(ctx, rs); err != nil {
			b.Fatal(err)
		}
		weir += time.Since(start)
		b.StopTimer()
		removeNetns(b, ns)
		raw, ns2 := ts.NewIPTablesWith(b, opts)
		start = time.Now()
		if err := raw.Restore(ctx, floorText); err != nil {
			b.Fatal(err)
		}
		floor += time.Since(start)
		removeNetns(b, ns2)
		b.StartTimer()
	}
	b.ReportMetric(ts.Ms(floor)/float64(b.N), "floor-ms")
	b.ReportMetric(float64(weir)/float64(floor), "x-floor")
}

// removeNetns deletes a benchmark op's namespace at once, so ops do not pile
// up namespaces (and their tables) until the benchmark ends.
func removeNetns(b *testing.B, ns *ts.Netns) {
	b.Helper()
	if err := ns.Remove(); err != nil {
		b.Fatal(err)
	}
}
