package main

import (
	"testing"
	"time"
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
