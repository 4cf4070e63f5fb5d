package health_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"weir/agent/health"
	ts "weir/internal/testsupport"
	"weir/spec"
)

// Environment of TestHelperListeners, set by startListeners.
const (
	listenersEnv = "WEIR_HEALTH_TEST_LISTENERS"       // how many
	protocolEnv  = "WEIR_HEALTH_TEST_LISTENERS_PROTO" // tcp or http
)

// TestHelperListeners is no test of its own: BenchmarkProbeCPU runs the test
// binary with it (and listenersEnv set) to serve loopback listeners in a
// process of their own, so that the benchmark's CPU time is the prober's
// alone. It prints "listen ADDR" per listener, then serves until its stdin
// closes. Without listenersEnv it returns at once.
func TestHelperListeners(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv(listenersEnv))
	if n == 0 {
		return
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})}
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("listen", l.Addr())
		if os.Getenv(protocolEnv) == string(spec.CheckHTTP) {
			go srv.Serve(l) //nolint:errcheck // the process exits with its stdin
		} else {
			go acceptAndClose(l)
		}
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin) //nolint:errcheck // any end of stdin ends the helper
	os.Exit(0)
}

// acceptAndClose accepts connections on l and closes them.
func acceptAndClose(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

// startListeners starts TestHelperListeners with n listeners of proto and
// returns their addresses; the helper ends with the benchmark.
func startListeners(b *testing.B, n int, proto spec.CheckProtocol) []netip.AddrPort {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperListeners$")
	cmd.Env = append(os.Environ(), listenersEnv+"="+strconv.Itoa(n), protocolEnv+"="+string(proto))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close(); cmd.Wait() }) //nolint:errcheck // the helper's exit status says nothing here
	var addrs []netip.AddrPort
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && sc.Text() != "ready" {
		if a, ok := strings.CutPrefix(sc.Text(), "listen "); ok {
			addrs = append(addrs, netip.MustParseAddrPort(a))
		}
	}
	if len(addrs) != n {
		b.Fatalf("the listener helper opened %d listeners; want %d", len(addrs), n)
	}
	return addrs
}

// BenchmarkProbeCPU probes 1,000 loopback endpoints (served by a helper
// process) with the default check parameters — every 2 s, timeout 1 s —
// and reports the prober's CPU use in percent of one core. One op is one
// interval; run it for several, with BenchmarkDialFloor for comparison:
//
//	go test ./agent/health -run '^$' -bench 'ProbeCPU|DialFloor' -benchtime 5x
func BenchmarkProbeCPU(b *testing.B) {
	const n = 1000
	for _, proto := range []spec.CheckProtocol{spec.CheckTCP, spec.CheckHTTP} {
		b.Run(string(proto), func(b *testing.B) {
			addrs := startListeners(b, n, proto)
			var checks []health.Check
			for _, a := range addrs {
				ec := spec.EndpointCheck{Address: a.Addr(), HealthCheck: ts.DefaultCheck(proto, a.Port())}
				checks = append(checks, health.Check{ID: ec.ID(), EndpointCheck: ec})
			}
			var probes, failures atomic.Int64
			np := health.NewNetProbe()
			p := health.New(health.Config{Probe: func(ctx context.Context, c spec.EndpointCheck) error {
				probes.Add(1)
				err := np.Probe(ctx, c)
				if err != nil {
					failures.Add(1)
				}
				return err
			}})
			p.Update(checks)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- p.Run(ctx) }()
			defer func() { cancel(); <-done }()
			interval := checks[0].Interval
			// Measuring over a fixed stretch of time, after one interval in
			// which every check has started: sleeping is the point here.
			time.Sleep(interval)
			m := startCPUMeter(probes.Load())
			for b.Loop() {
				time.Sleep(interval)
			}
			m.report(b, probes.Load())
			if f := failures.Load(); f > 0 {
				b.Errorf("%d of %d probes failed", f, probes.Load())
			}
		})
	}
}

// BenchmarkDialFloor is what the tcp case of BenchmarkProbeCPU cannot cost
// less than: the simplest loop that dials the same 1,000 loopback endpoints
// at the same rate (50 dials every 100 ms, one goroutine, no timeouts,
// no scheduling) and closes each connection with an RST.
func BenchmarkDialFloor(b *testing.B) {
	addrs := startListeners(b, 1000, spec.CheckTCP)
	d := net.Dialer{KeepAlive: -1}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var dials int64
	m := startCPUMeter(0)
	for b.Loop() {
		for range 20 { // one op is 2 s, as in BenchmarkProbeCPU
			<-tick.C
			for range 50 {
				c, err := d.Dial("tcp", addrs[dials%1000].String())
				if err != nil {
					b.Fatal(err)
				}
				c.(*net.TCPConn).SetLinger(0) //nolint:errcheck // a floor, not a check
				c.Close()
				dials++
			}
		}
	}
	m.report(b, dials)
}

// cpuMeter measures this process's CPU use from its start.
type cpuMeter struct {
	ru    syscall.Rusage
	start time.Time
	count int64
}

func startCPUMeter(count int64) *cpuMeter {
	m := &cpuMeter{start: time.Now(), count: count}
	syscall.Getrusage(syscall.RUSAGE_SELF, &m.ru) //nolint:errcheck // cannot fail for RUSAGE_SELF
	return m
}

// report reports the CPU used since the start in percent of one core and
// per probe (count is the probe counter now).
func (m *cpuMeter) report(b *testing.B, count int64) {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru) //nolint:errcheck // cannot fail for RUSAGE_SELF
	wall := time.Since(m.start)
	used := time.Duration(ru.Utime.Nano() - m.ru.Utime.Nano() + ru.Stime.Nano() - m.ru.Stime.Nano())
	n := float64(max(1, count-m.count))
	b.ReportMetric(100*float64(used)/float64(wall), "%cpu")
	b.ReportMetric(n/wall.Seconds(), "probes/s")
	b.ReportMetric(float64(used)/n, "cpu-ns/probe")
}
