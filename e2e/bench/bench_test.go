package main

import (
	"os"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"weir/internal/testsupport"
	"weir/spec"
)

func TestParseBench(t *testing.T) {
	out := `goos: linux
goarch: amd64
pkg: weir/reconcile
BenchmarkApplyFull/nft/1k-2         	       2	  61234567 ns/op	      5012 lines	        55.10 floor-ms	         1.111 x-floor	 1234 B/op	      12 allocs/op
BenchmarkAssignRender/10k-2         	       3	 912345678 ns/op	 900000000 cpu-ns/op	 123456789 B/op	 1500000 allocs/op
BenchmarkLoad                       	       3	 950000000 ns/op	   2.45 MB/s
BenchmarkDispatchConnect/10k-linear-2	    3000	    123456 ns/op	       301.0 p50-µs	       402.0 p90-µs
BenchmarkDispatchConnect/1-2	    3000	    123456 ns/op	       90.0 p50-µs	       402.0 p90-µs
BenchmarkDispatchConnect/1-2	    3000	    123456 ns/op	       70.0 p50-µs	       402.0 p90-µs
BenchmarkDispatchConnect/1-2	    3000	    123456 ns/op	       80.0 p50-µs	       402.0 p90-µs
--- BENCH: BenchmarkBroken-2
BenchmarkOdd-2   1   12 ns/op 7
PASS
ok  	weir/reconcile	12.345s
`
	got := ParseBench(out)
	tests := []struct {
		name, unit string
		want       float64
	}{
		{"BenchmarkApplyFull/nft/1k", "ns/op", 61234567},
		{"BenchmarkApplyFull/nft/1k", "x-floor", 1.111},
		{"BenchmarkApplyFull/nft/1k", "floor-ms", 55.10},
		{"BenchmarkAssignRender/10k", "cpu-ns/op", 900000000},
		{"BenchmarkAssignRender/10k", "allocs/op", 1500000},
		{"BenchmarkLoad", "MB/s", 2.45},
		{"BenchmarkDispatchConnect/10k-linear", "p50-µs", 301},
		{"BenchmarkDispatchConnect/1", "p50-µs", 80}, // the median of 3 runs
	}
	for _, tt := range tests {
		l, ok := got[tt.name]
		if !ok {
			t.Errorf("ParseBench: no line %s; got %v", tt.name, keys(got))
			continue
		}
		if v, ok := l.Get(tt.unit); !ok || v != tt.want {
			t.Errorf("ParseBench: %s %s = %v, %v; want %v", tt.name, tt.unit, v, ok, tt.want)
		}
	}
	if l := got["BenchmarkApplyFull/nft/1k"]; l.N != 2 {
		t.Errorf("ParseBench: N = %d; want 2", l.N)
	}
	if _, ok := got["BenchmarkOdd"]; ok {
		t.Errorf("ParseBench accepted a line with an odd number of fields")
	}
	if len(got) != 5 {
		t.Errorf("ParseBench: %d lines %v; want 5", len(got), keys(got))
	}
}

func keys(m map[string]BenchLine) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	return k
}

func TestParseSim(t *testing.T) {
	out := `=== RUN   TestSimulation
    sim_test.go:59: 100 nodes started in 2.1s; full membership everywhere 3.2s later
    sim_test.go:93: hint to 99 nodes: p50 312ms, p90 450ms, p99 560ms, max 571ms; 100.00% within 2s (Serf model: ~2s to 99.99%)
    sim_test.go:124: crash seen dead by 99 nodes: p50 10.1s, p90 10.3s, p99 10.5s, max 10.6s (LAN model: first probe ~1s, suspicion 8s..48s at n=100, then gossip)
--- PASS: TestSimulation (40.12s)
`
	hint, death, err := ParseSim(out)
	if err != nil {
		t.Fatalf("ParseSim: %v", err)
	}
	if want := (SimFigures{Nodes: 99, P50: 312 * time.Millisecond, P90: 450 * time.Millisecond, P99: 560 * time.Millisecond, Max: 571 * time.Millisecond}); hint != want {
		t.Errorf("ParseSim hint = %+v; want %+v", hint, want)
	}
	if want := (SimFigures{Nodes: 99, P50: 10100 * time.Millisecond, P90: 10300 * time.Millisecond, P99: 10500 * time.Millisecond, Max: 10600 * time.Millisecond}); death != want {
		t.Errorf("ParseSim death = %+v; want %+v", death, want)
	}
	if _, _, err := ParseSim("--- FAIL: TestSimulation"); err == nil {
		t.Errorf("ParseSim of output without figures: no error")
	}
}

func TestParseProcStatus(t *testing.T) {
	text := "Name:\tweir\nVmPeak:\t 1300000 kB\nVmHWM:\t   65536 kB\nVmRSS:\t   32768 kB\nThreads:\t8\n"
	got, err := ParseProcStatus(text)
	if err != nil {
		t.Fatalf("ParseProcStatus: %v", err)
	}
	if want := (ProcMem{RSS: 32 << 20, HWM: 64 << 20}); got != want {
		t.Errorf("ParseProcStatus = %+v; want %+v", got, want)
	}
	if _, err := ParseProcStatus("Name:\tweir\nVmRSS:\t 1 kB\n"); err == nil {
		t.Errorf("ParseProcStatus without VmHWM: no error")
	}
	self, err := procMem(os.Getpid())
	if err != nil || self.RSS <= 0 || self.HWM < self.RSS {
		t.Errorf("procMem(self) = %+v, %v; want 0 < RSS <= HWM", self, err)
	}
}

func TestParseMetric(t *testing.T) {
	text := "# HELP go_memstats_heap_inuse_bytes x\n# TYPE go_memstats_heap_inuse_bytes gauge\ngo_memstats_heap_inuse_bytes 4.2e+06\ngo_memstats_heap_inuse_bytes_total 9\n"
	if v, ok := ParseMetric(text, "go_memstats_heap_inuse_bytes"); !ok || v != 4.2e6 {
		t.Errorf("ParseMetric = %v, %v; want 4.2e6, true", v, ok)
	}
	if _, ok := ParseMetric(text, "missing"); ok {
		t.Errorf("ParseMetric(missing) found a value")
	}
}

func TestSample(t *testing.T) {
	s := Sample{5 * time.Second, 1 * time.Second, 3 * time.Second, 2 * time.Second, 4 * time.Second}
	tests := []struct {
		p    float64
		want time.Duration
	}{{0.5, 3 * time.Second}, {1, 5 * time.Second}, {0.2, time.Second}, {0.9, 5 * time.Second}}
	for _, tt := range tests {
		if got := s.Pct(tt.p); got != tt.want {
			t.Errorf("Pct(%v) = %v; want %v", tt.p, got, tt.want)
		}
	}
	if got, want := s.String(), "p50 3.00 s, max 5.00 s (n=5)"; got != want {
		t.Errorf("String() = %q; want %q", got, want)
	}
}

func mapFS(files map[string]string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for name, content := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(content)}
	}
	return fsys
}

func TestClusterSpecIsValidAndChanges(t *testing.T) {
	s0, err := spec.Load(mapFS(clusterSpec(10, 0)))
	if err != nil {
		t.Fatalf("clusterSpec(10, 0) does not load: %v", err)
	}
	if len(s0.Hosts) != 10 || len(s0.Balancers) != 10 {
		t.Errorf("clusterSpec: %d hosts, %d balancers; want 10, 10", len(s0.Hosts), len(s0.Balancers))
	}
	for i, h := range s0.Hosts {
		if want := hostName(i + 1); h.Name != want {
			t.Errorf("host %d = %s; want the lab's name %s", i, h.Name, want)
		}
	}
	s1, err := spec.Load(mapFS(clusterSpec(10, 1)))
	if err != nil {
		t.Fatalf("clusterSpec(10, 1) does not load: %v", err)
	}
	if a, b := s0.Balancer("orders-0").Weights["orders-1"], s1.Balancer("orders-0").Weights["orders-1"]; a == b {
		t.Errorf("generations 0 and 1 have the same weight %d: no change to converge on", a)
	}
}

func TestBigSpec(t *testing.T) {
	files := bigSpec(10000)
	s, err := spec.Load(mapFS(files))
	if err != nil {
		t.Fatalf("bigSpec does not load: %v", err)
	}
	if got, want := len(s.Hosts), bigHosts; got != want {
		t.Errorf("hosts = %d; want %d", got, want)
	}
	if got, want := len(s.Balancers), 10000; got != want {
		t.Errorf("balancers = %d; want %d", got, want)
	}
	if got, want := len(s.Guests()), 1+bigTargetGuests+(bigHosts-1)*bigGuestsPerHost; got != want {
		t.Errorf("guests = %d; want %d", got, want)
	}
	// Every balancer's target service runs on exactly 5 guests, all on
	// host-a, so one agent alone has every target alive.
	onA := map[string][]string{}
	for _, g := range s.Host("host-a").Guests {
		for _, svc := range g.Services {
			onA[svc] = append(onA[svc], g.Name)
		}
	}
	for _, g := range s.Guests() {
		if g.Host != "host-a" && strings.HasPrefix(strings.Join(g.Services, ","), "svc-") {
			t.Fatalf("guest %s on %s runs a target service", g.Name, g.Host)
		}
	}
	for _, b := range s.Balancers {
		if got := len(onA[b.Target]); got != bigTargets {
			t.Fatalf("balancer %s: %d targets on host-a; want %d", b.Name, got, bigTargets)
		}
		if b.Source != "client" {
			t.Fatalf("balancer %s: source %s; want client", b.Name, b.Source)
		}
	}
	for name, content := range files {
		if len(content) > 1<<20 {
			t.Errorf("%s is %d bytes: over the loader's 1 MiB limit", name, len(content))
		}
	}
}

func TestReportGolden(t *testing.T) {
	rep := &Report{
		Machine: Machine{CPUs: 2, CPUModel: "Test CPU", Kernel: "6.1.0", IPTables: "`iptables`: iptables v1.8.9 (nf_tables)", Go: "go1.26", Commit: "abc1234"},
		Started: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		Took:    17*time.Minute + 3*time.Second,
		Steps: []StepResult{
			{Name: "apply-full", Title: "2. full apply", Took: 90 * time.Second, LoadBefore: "1.00 0.50 0.20", LoadAfter: "1.90 0.90 0.40",
				Rows: []Row{
					{Group: "2", Name: "full apply, 1k balancers, nft", Weir: "61 ms", Anchor: "raw iptables-restore 55 ms", Ratio: "1.11×", Target: "≤ 1.2× floor", Met: Met, Cmd: goCmd(benchArgs("./reconcile", "^BenchmarkApplyFull$", "2x", 1)...)},
					{Group: "2", Name: "full apply, 10k balancers, nft", Weir: "900 ms", Anchor: "raw iptables-restore 600 ms", Ratio: "1.50×", Target: "≤ 1.2× floor", Met: NotMet, Cmd: "go test …"},
				}},
			{Name: "gossip", Title: "5. gossip | pipes", Took: time.Minute, LoadBefore: "1", LoadAfter: "2", Err: "exit status 1: boom"},
		},
	}
	var text, md strings.Builder
	rep.WriteText(&text)
	rep.WriteMarkdown(&md)
	testsupport.Golden(t, "report.txt", []byte(text.String()))
	testsupport.Golden(t, "report.md", []byte(md.String()))
	if !strings.Contains(md.String(), "| 5 | 5. gossip \\| pipes | error: exit status 1: boom |") {
		t.Errorf("markdown lacks the escaped FAILED row of the failed step")
	}
	if met, notMet, failed := rep.counts(); met != 1 || notMet != 1 || failed != 1 {
		t.Errorf("counts() = %d, %d, %d; want 1, 1, 1", met, notMet, failed)
	}
}

func TestShellJoin(t *testing.T) {
	got := goCmd(benchArgs("./reconcile", "^BenchmarkApplyFull$", "2x", 1)...)
	want := `go test ./reconcile -run '^$' -bench '^BenchmarkApplyFull$' -benchmem -benchtime 2x -count 1 -timeout 20m`
	if got != want {
		t.Errorf("goCmd = %s\nwant  %s", got, want)
	}
}
