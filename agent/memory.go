package agent

import (
	"os"
	"runtime/debug"
	rtmetrics "runtime/metrics"
)

// Bounds of the soft memory limit the agent keeps (see memoryGovernor).
const (
	memoryFloor    = 32 << 20 // never below: a small tree needs no tighter bound
	memoryHeadroom = 16 << 20 // at least this much above the live heap
)

// memoryGovernor keeps the Go runtime's soft memory limit a little above
// the live heap after each pass. Most of the agent's heap is long-lived
// state (the applied rules, the loaded tree); the rest comes in bursts when
// a revision is loaded, rendered and applied or the kernel's rules are
// read back, and with the runtime's default pacing those bursts let the
// heap, and the memory the process keeps from the system, grow to twice the
// live heap. With the limit the collector runs a little earlier and hands
// the pages back. The limit follows the live heap, so a larger tree raises
// it rather than making the collector run without pause. GOMEMLIMIT in the
// environment wins; the agent then sets nothing.
type memoryGovernor struct {
	on bool
}

// newMemoryGovernor returns a governor that acts when enabled and
// GOMEMLIMIT is not set.
func newMemoryGovernor(enabled bool) *memoryGovernor {
	return &memoryGovernor{on: enabled && os.Getenv("GOMEMLIMIT") == ""}
}

// afterPass sets the limit from the live heap as of the last collection.
func (g *memoryGovernor) afterPass() {
	if !g.on {
		return
	}
	s := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
	rtmetrics.Read(s)
	if s[0].Value.Kind() != rtmetrics.KindUint64 {
		return
	}
	debug.SetMemoryLimit(softLimit(int64(s[0].Value.Uint64())))
}

// softLimit is the limit for a live heap of live bytes: a quarter more, at
// least memoryHeadroom more, and never below memoryFloor.
func softLimit(live int64) int64 {
	return max(memoryFloor, live+max(memoryHeadroom, live/4))
}
