package cluster

import (
	"testing"
	"time"
)

// startDebounce runs debounce until the test ends and returns its channels.
func startDebounce(t *testing.T, quiet, maxWait time.Duration, now func() time.Time) (in, out chan struct{}) {
	t.Helper()
	in, out, done := make(chan struct{}, 1), make(chan struct{}, 1), make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		debounce(in, out, done, quiet, maxWait, now)
	}()
	t.Cleanup(func() {
		close(done)
		<-stopped
	})
	return in, out
}

func TestDebounceQuiet(t *testing.T) {
	in, out := startDebounce(t, 50*time.Millisecond, time.Hour, time.Now)
	begin := time.Now()
	signal(in)
	select {
	case <-out:
	case <-time.After(5 * time.Second):
		t.Fatal("no output after one signal")
	}
	if waited := time.Since(begin); waited < 50*time.Millisecond {
		t.Errorf("output after %v; want at least the quiet time 50ms", waited)
	}
	select {
	case <-out:
		t.Error("a second output after one signal")
	case <-time.After(200 * time.Millisecond):
	}
}

// TestDebounceMax drives the burst limit through the injected clock: a
// member flapping faster than the quiet time holds the output back until
// the clock says maxWait has passed since the burst began.
func TestDebounceMax(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	in, out := startDebounce(t, time.Second, 10*time.Second, clk.Now)
	flap := func(d time.Duration) bool {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		deadline := time.After(d)
		for {
			signal(in)
			select {
			case <-out:
				return true
			case <-deadline:
				return false
			case <-tick.C:
			}
		}
	}
	if flap(300 * time.Millisecond) {
		t.Fatal("output while flapping within the quiet time and before maxWait")
	}
	clk.Add(10 * time.Second)
	if !flap(5 * time.Second) {
		t.Fatal("no output while flapping once maxWait had passed")
	}
}

func TestDebounceStops(t *testing.T) {
	in, out, done := make(chan struct{}, 1), make(chan struct{}, 1), make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		debounce(in, out, done, time.Hour, time.Hour, time.Now)
	}()
	signal(in) // waiting out the quiet time when done closes
	close(done)
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("debounce did not return after done closed")
	}
}
