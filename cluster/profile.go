package cluster

import (
	"math"
	"time"
)

// Figures are the failure-detection and dissemination numbers a memberlist
// profile gives a cluster of a given size, computed with memberlist's own
// formulas (suspicionTimeout, retransmitLimit, pushPullScale in its util.go).
type Figures struct {
	Nodes          int
	ProbeInterval  time.Duration // each node probes one other node this often
	ProbeTimeout   time.Duration // a probe without ack by then goes indirect
	IndirectChecks int           // peers asked to probe on our behalf
	// SuspicionMin is how long a suspect stays suspect before it is declared
	// dead when enough peers confirm the suspicion:
	// SuspicionMult × max(1, log10(n)) × ProbeInterval.
	SuspicionMin time.Duration
	// SuspicionMax is the bound without confirmations:
	// SuspicionMaxTimeoutMult × SuspicionMin.
	SuspicionMax time.Duration
	// DetectTypical is the usual time from a crash to "dead": at most one
	// probe interval until someone probes the node (with n nodes probing,
	// usually much less), the probe timeout, then SuspicionMin.
	DetectTypical  time.Duration
	GossipInterval time.Duration
	GossipNodes    int
	// Retransmits is how many times each node sends a broadcast it queued:
	// RetransmitMult × ceil(log10(n+1)).
	Retransmits int
	// PushPull is the full state sync interval, scaled up above 32 nodes.
	PushPull time.Duration
}

// ProfileFigures computes Figures for profile ("lan", "local", "wan") and a
// cluster of n nodes.
func ProfileFigures(profile string, n int) (Figures, error) {
	mc, err := ProfileConfig(profile)
	if err != nil {
		return Figures{}, err
	}
	scale := math.Max(1, math.Log10(math.Max(1, float64(n))))
	susMin := time.Duration(float64(mc.SuspicionMult) * scale * float64(mc.ProbeInterval))
	pushPull := mc.PushPullInterval
	if n > 32 {
		pushPull *= time.Duration(math.Ceil(math.Log2(float64(n))-math.Log2(32)) + 1)
	}
	return Figures{
		Nodes:          n,
		ProbeInterval:  mc.ProbeInterval,
		ProbeTimeout:   mc.ProbeTimeout,
		IndirectChecks: mc.IndirectChecks,
		SuspicionMin:   susMin,
		SuspicionMax:   time.Duration(mc.SuspicionMaxTimeoutMult) * susMin,
		DetectTypical:  mc.ProbeInterval + mc.ProbeTimeout + susMin,
		GossipInterval: mc.GossipInterval,
		GossipNodes:    mc.GossipNodes,
		Retransmits:    mc.RetransmitMult * int(math.Ceil(math.Log10(float64(n+1)))),
		PushPull:       pushPull,
	}, nil
}
