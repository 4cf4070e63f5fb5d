package cluster

import (
	"flag"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

var (
	simNodes = flag.Int("sim.nodes", 100, "nodes in TestSimulation")
	simQuiet = flag.Duration("sim.quiet", 10*time.Second, "quiet time in TestSimulation between the joins and the hint")
)

// TestSimulation runs a cluster of -sim.nodes real memberlist nodes (default
// 100) on loopback with the unmodified LAN profile, and measures how long a
// revision hint takes to reach every node and how long every node takes to
// see a crashed node dead. Compare with the Serf convergence model: about 2 s
// for a gossiped message to reach 99.99% of 100–1,000 nodes with a 200 ms
// gossip interval and fanout 3. Run:
//
//	go test ./cluster -run TestSimulation -v -count=1 [-sim.nodes=200]
func TestSimulation(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation of many nodes skipped with -short")
	}
	n := *simNodes
	cfgFor := func(i int, join ...string) Config {
		cfg := testConfig(fmt.Sprintf("sim-%03d", i), join...)
		cfg.Profile = "lan"
		cfg.Tune = nil
		cfg.Debounce = 200 * time.Millisecond
		cfg.RejoinInterval = 10 * time.Second
		return cfg
	}
	began := time.Now()
	nodes := []*Cluster{start(t, cfgFor(0))}
	for i := 1; i < n; i++ {
		// Join the first node and a random earlier one, as agents listing a
		// few seeds do.
		seeds := []string{nodes[0].LocalAddr(), nodes[(i*7919)%len(nodes)].LocalAddr()}
		nodes = append(nodes, start(t, cfgFor(i, seeds...)))
	}
	started := time.Since(began)
	joined := eventually(t, 2*time.Minute, "every node sees every node", func() (bool, string) {
		for _, c := range nodes {
			if got := len(c.AliveHosts()); got != n {
				return false, fmt.Sprintf("%s sees %d", c.cfg.Node, got)
			}
		}
		return true, ""
	})
	t.Logf("%d nodes started in %v; full membership everywhere %v later", n, started.Round(time.Millisecond), joined.Round(time.Millisecond))

	// Let the join storm's alive messages finish their retransmissions:
	// memberlist sends its own queue before user messages, so a hint sent
	// during the storm measures the storm, not a hint in a steady cluster.
	// (No condition to poll: memberlist does not expose its queue length.)
	time.Sleep(*simQuiet)

	// Revision hint: one node hints, every other node must receive it.
	origin := nodes[n/2]
	var wg sync.WaitGroup
	lat := make([]time.Duration, n)
	t0 := time.Now()
	origin.Hint("sim-revision")
	for i, c := range nodes {
		if c == origin {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-c.Hints():
				lat[i] = time.Since(t0)
			case <-time.After(30 * time.Second):
				lat[i] = -1
			}
		}()
	}
	wg.Wait()
	hint := others(lat, origin, nodes)
	if missing := countNegative(hint); missing > 0 {
		t.Errorf("%d of %d nodes did not get the hint within 30s", missing, len(hint))
	}
	t.Logf("hint to %d nodes: %s; %.2f%% within 2s (Serf model: ~2s to 99.99%%)",
		len(hint), summarize(hint), 100*fractionWithin(hint, 2*time.Second))

	// Death: crash one node, every other node must see it dead.
	victim := nodes[n/3]
	_ = victim.Shutdown()
	t0 = time.Now()
	seen := make([]time.Duration, n)
	pending := n - 1
	for deadline := t0.Add(3 * time.Minute); pending > 0 && time.Now().Before(deadline); {
		for i, c := range nodes {
			if c == victim || seen[i] != 0 {
				continue
			}
			if st := stateOf(c, victim.cfg.Node); st != StateAlive {
				seen[i] = time.Since(t0)
				pending--
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := range seen {
		if seen[i] == 0 {
			seen[i] = -1
		}
	}
	death := others(seen, victim, nodes)
	if missing := countNegative(death); missing > 0 {
		t.Errorf("%d of %d nodes did not see the crashed node dead within 3m", missing, len(death))
	}
	lan := memberlist.DefaultLANConfig()
	t.Logf("crash seen dead by %d nodes: %s (LAN model: first probe ~%v, suspicion %v..%v at n=%d, then gossip)",
		len(death), summarize(death), lan.ProbeInterval, suspicionMin(lan, n).Round(time.Millisecond), (suspicionMin(lan, n) * time.Duration(lan.SuspicionMaxTimeoutMult)).Round(time.Millisecond), n)
	for _, c := range nodes {
		if c != victim && slices.Contains(c.AliveHosts(), victim.cfg.Node) {
			t.Errorf("%s still plans with the crashed node", c.cfg.Node)
			break
		}
	}
}

func others(d []time.Duration, skip *Cluster, nodes []*Cluster) []time.Duration {
	var out []time.Duration
	for i, c := range nodes {
		if c != skip {
			out = append(out, d[i])
		}
	}
	return out
}

func countNegative(d []time.Duration) int {
	n := 0
	for _, v := range d {
		if v < 0 {
			n++
		}
	}
	return n
}

func fractionWithin(d []time.Duration, limit time.Duration) float64 {
	n := 0
	for _, v := range d {
		if v >= 0 && v <= limit {
			n++
		}
	}
	return float64(n) / float64(len(d))
}

// summarize gives percentiles of the non-negative durations.
func summarize(d []time.Duration) string {
	var ok []time.Duration
	for _, v := range d {
		if v >= 0 {
			ok = append(ok, v)
		}
	}
	if len(ok) == 0 {
		return "none arrived"
	}
	slices.Sort(ok)
	pct := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(ok)))) - 1
		return ok[max(i, 0)].Round(time.Millisecond)
	}
	return fmt.Sprintf("p50 %v, p90 %v, p99 %v, max %v", pct(0.5), pct(0.9), pct(0.99), pct(1))
}

// suspicionMin mirrors memberlist's suspicionTimeout: SuspicionMult ×
// max(1, log10(n)) × ProbeInterval.
func suspicionMin(c *memberlist.Config, n int) time.Duration {
	scale := math.Max(1, math.Log10(math.Max(1, float64(n))))
	return time.Duration(float64(c.SuspicionMult) * scale * float64(c.ProbeInterval))
}
