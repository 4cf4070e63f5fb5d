package health_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"weir/agent/health"
	ts "weir/internal/testsupport"
	"weir/spec"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeTarget is the behaviour of one fake endpoint.
type fakeTarget struct {
	fail  atomic.Bool
	hang  atomic.Bool // block until the probe's context is done
	calls atomic.Int64
}

// fakeNet is a ProbeFunc over fake endpoints, by address, that records how
// many probes run at once.
type fakeNet struct {
	mu       sync.Mutex
	targets  map[netip.Addr]*fakeTarget
	inflight atomic.Int64
	maxSeen  atomic.Int64
}

func newFakeNet() *fakeNet { return &fakeNet{targets: map[netip.Addr]*fakeTarget{}} }

func (f *fakeNet) target(a netip.Addr) *fakeTarget {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.targets[a] == nil {
		f.targets[a] = &fakeTarget{}
	}
	return f.targets[a]
}

func (f *fakeNet) probe(ctx context.Context, c spec.EndpointCheck) error {
	n := f.inflight.Add(1)
	defer f.inflight.Add(-1)
	for {
		m := f.maxSeen.Load()
		if n <= m || f.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	tg := f.target(c.Address)
	tg.calls.Add(1)
	if tg.hang.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	if tg.fail.Load() {
		return errors.New("connection refused")
	}
	return nil
}

// fastCheck is a tcp check of 198.19.0.i every interval, timeout half of it.
func fastCheck(i int, interval time.Duration) health.Check {
	ec := spec.EndpointCheck{
		Address: netip.AddrFrom4([4]byte{198, 19, 0, byte(i)}),
		HealthCheck: spec.HealthCheck{Protocol: spec.CheckTCP, Port: 8080, Interval: interval, Timeout: interval / 2,
			HealthyThreshold: 2, UnhealthyThreshold: 2},
	}
	return health.Check{ID: ec.ID(), EndpointCheck: ec}
}

// transitions collects what a Prober reports.
type transitions struct {
	mu   sync.Mutex
	list []health.Transition
}

func (tr *transitions) add(t health.Transition) {
	tr.mu.Lock()
	tr.list = append(tr.list, t)
	tr.mu.Unlock()
}

// of returns the transitions of the check at address a, as "from>to".
func (tr *transitions) of(a netip.Addr) []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out []string
	for _, t := range tr.list {
		if t.Address == a {
			s := t.From.String() + ">" + t.To.String()
			if t.Removed {
				s += " removed"
			}
			out = append(out, s)
		}
	}
	return out
}

// runProber runs p until the returned stop is called; stop waits for Run to
// return and fails the test if it returned an error.
func runProber(t *testing.T, p *health.Prober) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run = %v; want nil", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// stateOf returns the state Snapshot shows for the check at address a.
func stateOf(p *health.Prober, a netip.Addr) string {
	for _, st := range p.Snapshot() {
		if st.Address == a {
			return st.State.String()
		}
	}
	return "absent"
}

func TestProberTransitions(t *testing.T) {
	fn := newFakeNet()
	var tr transitions
	p := health.New(health.Config{Probe: fn.probe, OnTransition: tr.add})
	const interval = 20 * time.Millisecond
	good, bad := fastCheck(1, interval), fastCheck(2, interval)
	fn.target(bad.Address).fail.Store(true)
	p.Update([]health.Check{good, bad})
	runProber(t, p)
	waitFor(t, 5*time.Second, "both checks to settle", func() bool {
		return stateOf(p, good.Address) == "healthy" && stateOf(p, bad.Address) == "unhealthy"
	})
	// Many more probes change nothing: each transition is reported once.
	calls := fn.target(good.Address).calls.Load()
	waitFor(t, 5*time.Second, "ten more probes", func() bool { return fn.target(good.Address).calls.Load() >= calls+10 })
	if got := tr.of(good.Address); fmt.Sprint(got) != "[unknown>healthy]" {
		t.Errorf("transitions of the good check = %v; want [unknown>healthy]", got)
	}
	if got := tr.of(bad.Address); fmt.Sprint(got) != "[unknown>unhealthy]" {
		t.Errorf("transitions of the bad check = %v; want [unknown>unhealthy]", got)
	}
	st := p.Snapshot()
	if len(st) != 2 || st[0].Since.IsZero() || st[1].Since.IsZero() {
		t.Errorf("Snapshot = %+v; want two checks with a Since", st)
	}
	for _, s := range st {
		if s.State == health.Unhealthy && s.Err != "connection refused" {
			t.Errorf("unhealthy check's Err = %q; want the probe's error", s.Err)
		}
	}
	// The service comes back.
	fn.target(bad.Address).fail.Store(false)
	waitFor(t, 5*time.Second, "recovery", func() bool { return stateOf(p, bad.Address) == "healthy" })
	if got := tr.of(bad.Address); fmt.Sprint(got) != "[unknown>unhealthy unhealthy>healthy]" {
		t.Errorf("transitions of the recovered check = %v", got)
	}
}

func TestProberUpdate(t *testing.T) {
	fn := newFakeNet()
	var tr transitions
	p := health.New(health.Config{Probe: fn.probe, OnTransition: tr.add})
	const interval = 20 * time.Millisecond
	a, b, c := fastCheck(1, interval), fastCheck(2, interval), fastCheck(3, interval)
	// d is probed once a second with a timeout of 500 ms: one probe can be
	// in flight when the update drops it, but not two results.
	d := fastCheck(4, time.Second)
	fn.target(b.Address).hang.Store(true)
	fn.target(d.Address).hang.Store(true) // d's probe is in flight when the update drops it
	p.Update([]health.Check{a, b, d})
	runProber(t, p)
	waitFor(t, 5*time.Second, "a to be healthy and b and d probed", func() bool {
		return stateOf(p, a.Address) == "healthy" && fn.target(b.Address).calls.Load() > 0 && fn.target(d.Address).calls.Load() > 0
	})
	p.Update([]health.Check{c, b, c}) // a duplicate counts once
	waitFor(t, 5*time.Second, "c to be healthy", func() bool { return stateOf(p, c.Address) == "healthy" })
	if got := stateOf(p, a.Address); got != "absent" {
		t.Errorf("a dropped check is still in Snapshot (%s)", got)
	}
	if got := len(p.Snapshot()); got != 2 {
		t.Errorf("Snapshot has %d checks; want 2", got)
	}
	if got := tr.of(a.Address); fmt.Sprint(got) != "[unknown>healthy healthy>unknown removed]" {
		t.Errorf("transitions of the dropped check = %v", got)
	}
	if got := tr.of(d.Address); len(got) != 0 || stateOf(p, d.Address) != "absent" {
		t.Errorf("a check dropped while unknown and in flight: transitions %v, state %s; want none, absent", got, stateOf(p, d.Address))
	}
	calls := fn.target(a.Address).calls.Load()
	err := ts.Consistently(context.Background(), 5*interval, interval/4, func() error {
		if got := fn.target(a.Address).calls.Load(); got != calls {
			return fmt.Errorf("a dropped check was probed %d more times", got-calls)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	// A hanging check times out into unhealthy while another stays healthy.
	waitFor(t, 5*time.Second, "b to time out into unhealthy", func() bool { return stateOf(p, b.Address) == "unhealthy" })
}

func TestProberBoundsConcurrency(t *testing.T) {
	fn := newFakeNet()
	const max, n, interval = 3, 20, 40 * time.Millisecond
	p := health.New(health.Config{Probe: fn.probe, MaxConcurrent: max})
	var checks []health.Check
	for i := range n {
		c := fastCheck(i+1, interval)
		fn.target(c.Address).hang.Store(true)
		checks = append(checks, c)
	}
	p.Update(checks)
	runProber(t, p)
	waitFor(t, 10*time.Second, "every hanging check to be unhealthy", func() bool {
		for _, c := range checks {
			if stateOf(p, c.Address) != "unhealthy" {
				return false
			}
		}
		return true
	})
	if got := fn.maxSeen.Load(); got != max {
		t.Errorf("at most %d probes ran at once; want exactly the bound %d", got, max)
	}
}

func TestProberJitter(t *testing.T) {
	// Checks added together start spread over their interval, each at the
	// offset Jitter gives.
	var mu sync.Mutex
	first := map[netip.Addr]time.Time{}
	probe := func(ctx context.Context, c spec.EndpointCheck) error {
		mu.Lock()
		if _, ok := first[c.Address]; !ok {
			first[c.Address] = time.Now()
		}
		mu.Unlock()
		return nil
	}
	const n, interval = 4, 400 * time.Millisecond
	var checks []health.Check
	offset := map[time.Duration]int{}
	for i := range n {
		checks = append(checks, fastCheck(i+1, interval))
	}
	p := health.New(health.Config{Probe: probe, Jitter: func(d time.Duration) time.Duration {
		o := d * time.Duration(len(offset)) / n
		offset[o]++
		return o
	}})
	p.Update(checks)
	start := time.Now()
	runProber(t, p)
	waitFor(t, 5*time.Second, "every first probe", func() bool { mu.Lock(); defer mu.Unlock(); return len(first) == n })
	mu.Lock()
	defer mu.Unlock()
	for i, c := range checks {
		want := interval * time.Duration(i) / n
		if got := first[c.Address].Sub(start); got < want || got > want+interval/n {
			t.Errorf("check %d first probed after %v; want about %v", i, got, want)
		}
	}
}

func TestProberRunTwice(t *testing.T) {
	fn := newFakeNet()
	p := health.New(health.Config{Probe: fn.probe})
	c := fastCheck(1, 20*time.Millisecond)
	p.Update([]health.Check{c})
	stop := runProber(t, p)
	waitFor(t, 5*time.Second, "a probe", func() bool { return fn.target(c.Address).calls.Load() > 0 })
	if err := p.Run(context.Background()); err != health.ErrRunning {
		t.Errorf("Run while running = %v; want ErrRunning", err)
	}
	stop()
	// Run can run again after it returned, with the same checks.
	calls := fn.target(c.Address).calls.Load()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := p.Run(ctx); err != nil {
		t.Errorf("second Run = %v", err)
	}
	if got := fn.target(c.Address).calls.Load(); got <= calls {
		t.Errorf("the second Run probed nothing")
	}
}
