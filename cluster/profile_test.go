package cluster

import (
	"testing"
	"time"
)

func TestProfileFigures(t *testing.T) {
	tests := []struct {
		profile string
		n       int
		want    Figures
	}{
		// LAN: 4 × log10(100)=2 × 1s = 8s; × 6 = 48s; 4 × ceil(log10(101))=3 = 12.
		{"lan", 100, Figures{Nodes: 100, ProbeInterval: time.Second, ProbeTimeout: 500 * time.Millisecond, IndirectChecks: 3,
			SuspicionMin: 8 * time.Second, SuspicionMax: 48 * time.Second, DetectTypical: 9500 * time.Millisecond,
			GossipInterval: 200 * time.Millisecond, GossipNodes: 3, Retransmits: 12, PushPull: 90 * time.Second}},
		{"lan", 3, Figures{Nodes: 3, ProbeInterval: time.Second, ProbeTimeout: 500 * time.Millisecond, IndirectChecks: 3,
			SuspicionMin: 4 * time.Second, SuspicionMax: 24 * time.Second, DetectTypical: 5500 * time.Millisecond,
			GossipInterval: 200 * time.Millisecond, GossipNodes: 3, Retransmits: 4, PushPull: 30 * time.Second}},
		{"wan", 10, Figures{Nodes: 10, ProbeInterval: 5 * time.Second, ProbeTimeout: 3 * time.Second, IndirectChecks: 3,
			SuspicionMin: 30 * time.Second, SuspicionMax: 180 * time.Second, DetectTypical: 38 * time.Second,
			GossipInterval: 500 * time.Millisecond, GossipNodes: 4, Retransmits: 8, PushPull: 60 * time.Second}},
	}
	for _, tt := range tests {
		got, err := ProfileFigures(tt.profile, tt.n)
		if err != nil || got != tt.want {
			t.Errorf("ProfileFigures(%s, %d) = %+v, %v; want %+v", tt.profile, tt.n, got, err, tt.want)
		}
	}
	for _, p := range []string{"lan", "local", "wan"} {
		for _, n := range []int{3, 10, 100, 1000} {
			f, _ := ProfileFigures(p, n)
			t.Logf("%-5s n=%-4d probe %v/%v suspicion %v..%v typical %v gossip %v×%d retransmit %d pushpull %v",
				p, n, f.ProbeInterval, f.ProbeTimeout, f.SuspicionMin, f.SuspicionMax, f.DetectTypical, f.GossipInterval, f.GossipNodes, f.Retransmits, f.PushPull)
		}
	}
	if _, err := ProfileFigures("moon", 3); err == nil {
		t.Error("ProfileFigures(moon) = nil error")
	}
}
