package agent

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	rtmetrics "runtime/metrics"
	"strconv"
	"strings"
	"testing"
	"time"

	"weir/reconcile/netfilter"
	"weir/spec"
)

// writeBigTree writes a spec tree of n balancers to dir: 100 hosts with 10
// guests each, every host's first guest running the source service "client"
// (so every host sets every balancer, the worst case for one host), and each
// balancer's target service on 5 of the other guests with weights; 100
// balancers per file. shift changes balancer 0's target port, so two trees
// written with different shifts differ in one balancer.
func writeBigTree(t testing.TB, dir string, n, shift int) {
	t.Helper()
	services := map[[2]int][]string{}
	var bal strings.Builder
	flush := func(f int) {
		if bal.Len() == 0 {
			return
		}
		p := filepath.Join(dir, "balancers", fmt.Sprintf("%03d.yaml", f))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(bal.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		bal.Reset()
	}
	for i := range n {
		svc := fmt.Sprintf("svc-%05d", i)
		fmt.Fprintf(&bal, "---\napiVersion: weir/v1\nkind: Balancer\nmetadata:\n  name: lb-%05d\nspec:\n  source: client\n  target: %s\n  frontend:\n    address: 198.20.%d.%d\n    port: %d\n  targetPort: %d\n  weights:\n",
			i, svc, i/250%256, 1+i%250, 1000+i/65000, 8000+shift*(1-min(i, 1)))
		for k := range 5 {
			h, g := (i*7+k*13)%100, 2+(i+k)%8
			services[[2]int{h, g}] = append(services[[2]int{h, g}], svc)
			fmt.Fprintf(&bal, "    guest-%d-%d: %d\n", h, g, 1+(i+k)%5)
		}
		if (i+1)%100 == 0 {
			flush(i / 100)
		}
	}
	flush(n / 100)
	var hosts strings.Builder
	for h := range 100 {
		fmt.Fprintf(&hosts, "---\napiVersion: weir/v1\nkind: Host\nmetadata:\n  name: host-%d\nspec:\n  address: 198.18.0.%d\n  guests:\n", h, 1+h)
		for g := range 10 {
			svcs := services[[2]int{h, g}]
			if g == 0 {
				svcs = []string{"client"}
			}
			fmt.Fprintf(&hosts, "    - name: guest-%d-%d\n      address: 198.19.%d.%d\n      services: [%s]\n", h, g, h, 2+g, strings.Join(svcs, ", "))
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "hosts.yaml"), []byte(hosts.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// nopNetfilter accepts everything and holds nothing, so a memory measurement
// sees only the agent's own memory (the kernel keeps the real rules).
type nopNetfilter struct{}

func (nopNetfilter) Restore(context.Context, []byte) error { return nil }
func (nopNetfilter) Save(_ context.Context, table string) ([]byte, error) {
	return []byte("*" + table + "\nCOMMIT\n"), nil
}
func (nopNetfilter) ListRules(_ context.Context, _ string, chains []string) (map[string][]string, error) {
	return map[string][]string{}, nil
}
func (nopNetfilter) EnsureJump(context.Context, string, string, []string) (bool, error) {
	return true, nil
}
func (nopNetfilter) DeleteJump(context.Context, string, string, []string) error { return nil }
func (nopNetfilter) DeleteConntrack(context.Context, []netfilter.ConntrackFlow) (uint, error) {
	return 0, nil
}

// TestMemoryChild is the child process of BenchmarkPassMemory; it does nothing
// unless WEIR_MEM_CHILD names what to measure.
func TestMemoryChild(t *testing.T) {
	mode := os.Getenv("WEIR_MEM_CHILD")
	if mode == "" {
		t.Skip("the child process of BenchmarkPassMemory")
	}
	dirs := strings.Split(os.Getenv("WEIR_MEM_DIRS"), ",")
	ctx := context.Background()
	var keep []any
	peak := samplePeakHeap()
	if mode == "none" {
		fmt.Printf("MEM hwm-kB %d live-heap-kB 0 peak-heap-kB 0\n", statusKB(t, "VmHWM"))
		return
	}
	s, err := spec.LoadDir(dirs[0])
	if err != nil {
		t.Fatal(err)
	}
	if mode == "pass" {
		// Two passes as the agent makes them: the first revision (a full
		// apply), then a revision that changes one balancer while the
		// first is still the last good one (a partial apply).
		syncer := netfilter.NewSyncer(nopNetfilter{}, netfilter.SyncerOptions{})
		alive := make([]string, len(s.Hosts))
		for i, h := range s.Hosts {
			alive[i] = h.Name
		}
		planner := ReconcilePlanner()
		d := planner.Plan(s, alive, nil, "host-42")
		if _, err := syncer.Apply(ctx, d.Rulesets[spec.IPv4]); err != nil {
			t.Fatal(err)
		}
		if d.Balancers != 10000 {
			t.Fatalf("planned %d balancers; want 10000", d.Balancers)
		}
		cand, err := spec.LoadDir(dirs[1])
		if err != nil {
			t.Fatal(err)
		}
		d = planner.Plan(cand, alive, nil, "host-42")
		res, err := syncer.Apply(ctx, d.Rulesets[spec.IPv4])
		if err != nil || res.Full || res.ChainsWritten == 0 {
			t.Fatalf("second Apply = full %v, %d chains, %v; want partial", res.Full, res.ChainsWritten, err)
		}
		// As in the agent, the new revision replaces the last good one.
		s = nil
		keep = append(keep, syncer, cand, planner)
	}
	keep = append(keep, s)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("MEM hwm-kB %d live-heap-kB %d peak-heap-kB %d\n", statusKB(t, "VmHWM"), ms.HeapAlloc>>10, peak()>>10)
	runtime.KeepAlive(keep)
}

// samplePeakHeap samples the heap in use every millisecond until the
// returned function is called, which returns the largest sample.
func samplePeakHeap() func() uint64 {
	stop := make(chan struct{})
	done := make(chan uint64)
	go func() {
		sample := []rtmetrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"}}
		var peak uint64
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			rtmetrics.Read(sample)
			peak = max(peak, sample[0].Value.Uint64()+sample[1].Value.Uint64())
			select {
			case <-stop:
				done <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 { close(stop); return <-done }
}

// statusKB reads a kB field of /proc/self/status.
func statusKB(t testing.TB, field string) int {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// BenchmarkPassMemory measures, in a fresh child process each, the peak RSS
// (VmHWM) of the test binary doing nothing ("none"), of loading a 10,000-balancer tree from disk ("load"), and of two
// agent passes over it ("pass": load, Assign, Digest, Render and a full
// apply, then a revision changing one balancer loaded and applied
// partially, with a netfilter that holds nothing), the peak heap (objects
// and unused heap space, sampled every millisecond), and the live heap after
// a GC at the end. GOGC and GOMEMLIMIT pass through to the child, e.g.
//
//	go test ./agent -run '^$' -bench PassMemory -benchtime 1x
func BenchmarkPassMemory(b *testing.B) {
	dirs := []string{b.TempDir(), b.TempDir()}
	writeBigTree(b, dirs[0], 10000, 0)
	writeBigTree(b, dirs[1], 10000, 1)
	for _, mode := range []string{"none", "load", "pass"} {
		b.Run(mode, func(b *testing.B) {
			var hwm, live, heap float64
			for i := 0; i < b.N; i++ {
				cmd := exec.Command(os.Args[0], "-test.run=^TestMemoryChild$", "-test.v")
				cmd.Env = append(os.Environ(), "WEIR_MEM_CHILD="+mode, "WEIR_MEM_DIRS="+strings.Join(dirs, ","))
				out, err := cmd.CombinedOutput()
				if err != nil {
					b.Fatalf("child: %v\n%s", err, out)
				}
				var h, l, p int
				for _, line := range strings.Split(string(out), "\n") {
					if strings.HasPrefix(line, "MEM ") {
						fmt.Sscanf(line, "MEM hwm-kB %d live-heap-kB %d peak-heap-kB %d", &h, &l, &p)
					}
				}
				if h == 0 {
					b.Fatalf("child printed no figures:\n%s", out)
				}
				hwm += float64(h) / 1024
				live += float64(l) / 1024
				heap += float64(p) / 1024
			}
			b.ReportMetric(hwm/float64(b.N), "peak-rss-MiB")
			b.ReportMetric(live/float64(b.N), "live-heap-MiB")
			if mode != "none" {
				b.ReportMetric(heap/float64(b.N), "peak-heap-MiB")
			}
		})
	}
}
