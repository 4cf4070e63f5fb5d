package agent

import (
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"time"
)

// Bounds of what the memoryGovernor does.
const (
	// memoryExcess is how much more heap than was live after its last
	// collection the process may keep before the agent hands it back.
	memoryExcess = 16 << 20
	// memoryEvery spaces the governor's collections, so passes that follow
	// each other quickly (a flapping member) do not each pay for one.
	memoryEvery = 5 * time.Second
)

// memoryGovernor hands the heap a pass left over back to the system. Most
// of the agent's heap is long-lived state (the applied rules, the loaded
// tree); the rest comes in bursts when a revision is loaded, rendered and
// applied or the kernel's rules are read back, and the runtime keeps the
// pages of such a burst for a while in case they are needed again. Between
// passes they are not: once the heap kept exceeds what was live after the
// governor's last collection by memoryExcess, it collects and returns the
// pages (debug.FreeOSMemory), so the resident memory of an idle agent is
// its live heap and little more, while a pass itself runs with the
// runtime's default pacing. (A limit on the heap during passes, as
// GOMEMLIMIT sets, would cost them collections; when set in the
// environment it still applies.)
type memoryGovernor struct {
	on       bool
	kept     []rtmetrics.Sample
	live     []rtmetrics.Sample
	baseline uint64    // live heap after the last collection the governor made
	last     time.Time // when it made it
}

// newMemoryGovernor returns a governor that acts when enabled.
func newMemoryGovernor(enabled bool) *memoryGovernor {
	return &memoryGovernor{on: enabled,
		kept: []rtmetrics.Sample{
			{Name: "/memory/classes/heap/objects:bytes"},
			{Name: "/memory/classes/heap/unused:bytes"},
			{Name: "/memory/classes/heap/free:bytes"},
		},
		live: []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}},
	}
}

// afterPass returns the pages the pass left over, if they are many and the
// governor did not collect in the last memoryEvery.
func (g *memoryGovernor) afterPass(now time.Time) {
	if !g.on || (!g.last.IsZero() && now.Sub(g.last) < memoryEvery) {
		return
	}
	if read(g.kept) <= g.baseline+memoryExcess {
		return
	}
	debug.FreeOSMemory()
	g.baseline, g.last = read(g.live), now
}

// read reads samples and returns the sum of their values.
func read(samples []rtmetrics.Sample) uint64 {
	rtmetrics.Read(samples)
	var sum uint64
	for _, s := range samples {
		if s.Value.Kind() == rtmetrics.KindUint64 {
			sum += s.Value.Uint64()
		}
	}
	return sum
}
