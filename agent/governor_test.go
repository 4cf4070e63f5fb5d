package agent

import (
	rtmetrics "runtime/metrics"
	"testing"
	"time"
)

var garbage [][]byte

// TestMemoryGovernorReturnsPages: after a pass that left a burst of
// garbage, the governor hands the pages back to the system, then not again
// within memoryEvery; disabled, it does nothing.
func TestMemoryGovernorReturnsPages(t *testing.T) {
	released := []rtmetrics.Sample{{Name: "/memory/classes/heap/released:bytes"}}
	burst := func() {
		for range 64 {
			garbage = append(garbage, make([]byte, 1<<20))
		}
		garbage = nil
	}
	now := time.Unix(1000, 0)
	off := newMemoryGovernor(false)
	burst()
	off.afterPass(now)
	if !off.last.IsZero() {
		t.Errorf("a disabled governor collected")
	}
	g := newMemoryGovernor(true)
	burst()
	g.afterPass(now)
	if got := read(released); got < 32<<20 {
		t.Errorf("after a pass that left 64 MiB of garbage, %d MiB are returned to the system; want most of it", got>>20)
	}
	if g.last != now || g.baseline == 0 {
		t.Errorf("governor state after collecting: last %v, baseline %d", g.last, g.baseline)
	}
	burst()
	g.afterPass(now.Add(memoryEvery / 2))
	if g.last != now {
		t.Errorf("the governor collected again within %v", memoryEvery)
	}
}
