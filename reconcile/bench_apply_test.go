package reconcile

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Apply benchmarks need root and create network namespaces; each op is slow
// (seconds at 10k balancers on nft), so run them with a small -benchtime, e.g.
//
//	go test ./reconcile -run '^$' -bench 'Apply|Drift|PerRule' -benchtime 1x
//
// Figures beside the ns/op: floor-ms (a raw iptables-restore --noflush of
// the same text in another fresh namespace, measured in the same op),
// x-floor (weir's full apply / floor), cpu-ms (user+system CPU of this process
// and its children per op), pct-core-at-30s (drift checking's steady-state CPU
// as a share of one core at a 30 s resync).

var benchBackends = []string{BackendNFT, BackendLegacy}

// benchNetns creates a namespace for one benchmark op and returns a function
// deleting it.
func benchNetns(b *testing.B, i int) (string, func()) {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("needs root to create network namespaces")
	}
	name := fmt.Sprintf("wrkb%d-%d", os.Getpid(), i)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		b.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	del := func() { exec.Command("ip", "netns", "del", name).Run() }
	b.Cleanup(del)
	return name, del
}

func benchIPTables(b *testing.B, backend, ns string) *IPTables {
	b.Helper()
	nf, err := NewIPTables(IPTablesOptions{Backend: backend, Netns: ns})
	if err != nil {
		b.Skipf("backend %s: %v", backend, err)
	}
	return nf
}

// cpuTime returns the user+system CPU used so far by this process and its
// waited-for children (the iptables binaries, whose netlink work the kernel
// accounts to them).
func cpuTime() time.Duration {
	var self, kids syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
	tv := func(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return tv(self.Utime) + tv(self.Stime) + tv(kids.Utime) + tv(kids.Stime)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

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
				rsets := []*Ruleset{base.build(), changed.build()}
				ns, _ := benchNetns(b, 0)
				nf := benchIPTables(b, backend, ns)
				s := NewSyncer(nf, SyncerOptions{})
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
					x := &txn{table: "nat"}
					for _, w := range res.Written {
						name := strings.TrimPrefix(w, "nat/")
						for j := range rs.table("nat").Chains {
							if c := &rs.table("nat").Chains[j]; c.Name == name {
								x.declare = append(x.declare, name)
								x.fill = append(x.fill, c)
							}
						}
					}
					start = time.Now()
					if _, err := restore(ctx, nf, []*txn{x}); err != nil {
						b.Fatal(err)
					}
					floor += time.Since(start)
					b.StartTimer()
				}
				b.ReportMetric(ms(floor)/float64(b.N), "floor-ms")
				b.ReportMetric(float64(weir)/float64(floor), "x-floor")
			})
		}
	}
}

// nopRestore accepts every restore without doing it, leaving only weir's work.
type nopRestore struct{ *Fake }

func (nopRestore) Restore(context.Context, []byte) error { return nil }

// BenchmarkApplyChangeFake is weir's own share of a partial apply (hash every
// chain, diff, write the transaction) on a 10k host, without the kernel.
func BenchmarkApplyChangeFake(b *testing.B) {
	ctx := context.Background()
	base := fixture{n: 10000, targets: 5}
	changed := base
	changed.shift = map[int]int{4242: 1}
	rsets := []*Ruleset{base.build(), changed.build()}
	s := NewSyncer(nopRestore{NewFake()}, SyncerOptions{})
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
			ns, _ := benchNetns(b, 0)
			nf := benchIPTables(b, backend, ns)
			run := func(b *testing.B, every, calls int) time.Duration {
				s := NewSyncer(nf, SyncerOptions{FullCheckEvery: every})
				if _, err := s.Apply(ctx, rs); err != nil {
					b.Fatal(err)
				}
				// The first call is a full check that learns the kernel's form
				// of every chain; steady state starts after it.
				if _, err := s.Reconcile(ctx); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				cpu0 := cpuTime()
				for i := 0; i < b.N; i++ {
					for c := 0; c < calls; c++ {
						repaired, err := s.Reconcile(ctx)
						if err != nil || repaired {
							b.Fatalf("Reconcile = %v, %v; want no drift", repaired, err)
						}
					}
				}
				b.StopTimer()
				cpu := (cpuTime() - cpu0) / time.Duration(b.N)
				b.ReportMetric(ms(cpu), "cpu-ms")
				return cpu
			}
			b.Run("canary", func(b *testing.B) { run(b, 1<<30, 1) })
			b.Run("full", func(b *testing.B) { run(b, 1, 1) })
			b.Run("cycle-of-10", func(b *testing.B) {
				cpu := run(b, 10, 10)
				b.ReportMetric(100*float64(cpu)/float64(10*30*time.Second), "pct-core-at-30s")
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
				ns, del := benchNetns(b, i)
				nf := benchIPTables(b, backend, ns)
				start := time.Now()
				err := nf.do(func() error {
					if err := nf.ipt.NewChain("nat", "WEIR-PEER"); err != nil {
						return err
					}
					for _, s := range specs {
						if err := nf.ipt.Append("nat", "WEIR-PEER", s...); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
				perRule += time.Since(start)
				del()
				ns2, del2 := benchNetns(b, 1000+i)
				nf2 := benchIPTables(b, backend, ns2)
				start = time.Now()
				if err := nf2.Restore(ctx, []byte(text.String())); err != nil {
					b.Fatal(err)
				}
				restore += time.Since(start)
				del2()
			}
			b.ReportMetric(ms(perRule)/float64(b.N), "per-rule-ms")
			b.ReportMetric(ms(perRule)/float64(b.N)/rules, "ms/rule")
			b.ReportMetric(ms(restore)/float64(b.N), "restore-ms")
			b.ReportMetric(float64(perRule)/float64(restore), "ratio")
		})
	}
}

// fullApplyVsFloor times, per op, a Syncer's first (full) apply of rs in a
// fresh namespace and a raw iptables-restore of floorText in another, and
// reports the floor and the ratio as floor-ms and x-floor.
func fullApplyVsFloor(b *testing.B, backend string, rs *Ruleset, floorText []byte) {
	b.Helper()
	ctx := context.Background()
	var weir, floor time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		ns, del := benchNetns(b, 2*i)
		nf := benchIPTables(b, backend, ns)
		s := NewSyncer(nf, SyncerOptions{})
		b.StartTimer()
		start := time.Now()
		if _, err := s.Apply(ctx, rs); err != nil {
			b.Fatal(err)
		}
		weir += time.Since(start)
		b.StopTimer()
		del()
		ns2, del2 := benchNetns(b, 2*i+1)
		raw := benchIPTables(b, backend, ns2)
		start = time.Now()
		if err := raw.Restore(ctx, floorText); err != nil {
			b.Fatal(err)
		}
		floor += time.Since(start)
		del2()
		b.StartTimer()
	}
	b.ReportMetric(ms(floor)/float64(b.N), "floor-ms")
	b.ReportMetric(float64(weir)/float64(floor), "x-floor")
}
