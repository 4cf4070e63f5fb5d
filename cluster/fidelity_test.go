package cluster

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// lanCluster starts n nodes with memberlist's unmodified LAN profile (the
// agents' default), each joining the first, and waits until all see all.
func lanCluster(t testing.TB, n int) []*Cluster {
	t.Helper()
	cfgFor := func(i int, join ...string) Config {
		cfg := testConfig(fmt.Sprintf("host-%02d", i), join...)
		cfg.Profile, cfg.Tune = "lan", nil
		return cfg
	}
	nodes := []*Cluster{start(t, cfgFor(0))}
	for i := 1; i < n; i++ {
		nodes = append(nodes, start(t, cfgFor(i, nodes[0].LocalAddr())))
	}
	eventually(t, 30*time.Second, "every node sees every node", func() (bool, string) {
		for _, c := range nodes {
			if got := len(c.AliveHosts()); got != n {
				return false, fmt.Sprintf("%s sees %d", c.cfg.Node, got)
			}
		}
		return true, ""
	})
	return nodes
}

// roundState is what node i announces last in round r: a revision, digest
// and error text of the same length on every node, as when a revision is
// rejected everywhere.
func roundState(r, step int) NodeState {
	return NodeState{
		Revision:  fmt.Sprintf("%040x", 3*r+step),
		Digest:    fmt.Sprintf("%064x", 3*r+step),
		Balancers: r, Rules: step,
		Error: fmt.Sprintf("rejected revision %040x: specs/b.yaml:%03d: unknown field", 3*r+step, r),
	}
}

// sawAll reports whether every node sees every node in state want(node).
func sawAll(nodes []*Cluster, want func(name string) NodeState) (bool, string) {
	for _, c := range nodes {
		for _, m := range c.Members() {
			if w := want(m.Name); m.NodeState != w {
				return false, fmt.Sprintf("%s sees %s with %+v; want %+v", c.cfg.Node, m.Name, m.NodeState, w)
			}
		}
	}
	return true, ""
}

// TestRapidChangesSeenEverywhere changes the state of all ten nodes of a
// LAN-profile cluster three times in quick succession, round after round,
// and requires every node to see every other node's last state, error text
// included, within 2 s of the last change: the time gossip needs, not the
// 30 s push/pull that repairs a lost update.
func TestRapidChangesSeenEverywhere(t *testing.T) {
	if testing.Short() {
		t.Skip("ten LAN-profile nodes for several rounds skipped with -short")
	}
	nodes := lanCluster(t, 10)
	names := map[string]int{}
	for i, c := range nodes {
		names[c.cfg.Node] = i
	}
	var slow []string
	for r := 1; r <= 12; r++ {
		var wg sync.WaitGroup
		for _, c := range nodes {
			wg.Go(func() {
				for step := range 3 {
					if err := c.SetLocal(roundState(r, step)); err != nil {
						t.Errorf("SetLocal: %v", err)
					}
					time.Sleep(20 * time.Millisecond)
				}
			})
		}
		wg.Wait()
		begin := time.Now()
		var ok bool
		var why string
		for time.Since(begin) < 2*time.Second {
			if ok, why = sawAll(nodes, func(string) NodeState { return roundState(r, 2) }); ok {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if !ok {
			slow = append(slow, fmt.Sprintf("round %d: %s", r, why))
		}
		t.Logf("round %d: everyone saw everyone's last state after %v", r, time.Since(begin).Round(time.Millisecond))
	}
	if len(slow) > 0 {
		t.Errorf("%d of 12 rounds not seen everywhere within 2 s:\n%s", len(slow), strings.Join(slow, "\n"))
	}
}

// TestReannounceRepairsAMissedErrorText makes host-b lose host-a's error
// text once every gossip copy of it has been sent, as if all had missed
// host-b, and requires it back with host-a's second announcement (here 3 s
// after the change): long before the 30 s push/pull of the LAN profile.
func TestReannounceRepairsAMissedErrorText(t *testing.T) {
	lan := func(name string, join ...string) Config {
		cfg := testConfig(name, join...)
		cfg.Profile, cfg.Tune, cfg.Reannounce = "lan", nil, 3*time.Second
		return cfg
	}
	a := start(t, lan("host-a"))
	b := start(t, lan("host-b", a.LocalAddr()))
	eventually(t, 10*time.Second, "pair formed", hostsAre(b, "host-a", "host-b"))
	st := NodeState{Revision: "ab", Error: "specs/a.yaml:3: unknown field"}
	changed := time.Now()
	if err := a.SetLocal(st); err != nil {
		t.Fatal(err)
	}
	seen := func() (bool, string) {
		m := b.Members()[0]
		return m.NodeState == st, m.Error
	}
	loseAndRepair(t, b, changed, "error text", seen, func(o *originRec) { o.err = errRec{} })
}

// TestHealthTransitionSeenEverywhere changes the health report of one node
// of a ten-node LAN-profile cluster per round and measures how long every
// other node takes to hold it: the time a failing target takes to leave the
// setting hosts' view, before their replan. Gossip should need well under a
// second; the bound only catches a report that waits for the 30 s push/pull.
func TestHealthTransitionSeenEverywhere(t *testing.T) {
	if testing.Short() {
		t.Skip("ten LAN-profile nodes skipped with -short")
	}
	nodes := lanCluster(t, 10)
	var took []time.Duration
	for r := range 20 {
		origin := nodes[r%len(nodes)]
		report := ids(1000*r, 1+r%3) // one, two or three failing checks
		if r%4 == 3 {
			report = nil // all healthy again
		}
		if err := origin.SetHealth(report); err != nil {
			t.Fatal(err)
		}
		d := eventually(t, 3*time.Second, "every node holds the new report", func() (bool, string) {
			for _, c := range nodes {
				if got := c.UnhealthyChecks()[origin.cfg.Node]; !slices.Equal(got, report) {
					return false, fmt.Sprintf("%s holds %d IDs of %s", c.cfg.Node, len(got), origin.cfg.Node)
				}
			}
			return true, ""
		})
		took = append(took, d)
	}
	slices.Sort(took)
	t.Logf("FIGURE health report change → held by all 10 nodes (LAN profile, 20 changes): p50 %v, max %v",
		took[len(took)/2].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
}

// TestReannounceRepairsAMissedHealthReport makes host-b lose host-a's
// report after every gossip copy of it has been sent, and requires it back
// with host-a's second announcement, long before the 30 s push/pull.
func TestReannounceRepairsAMissedHealthReport(t *testing.T) {
	lan := func(name string, join ...string) Config {
		cfg := testConfig(name, join...)
		cfg.Profile, cfg.Tune, cfg.Reannounce = "lan", nil, 3*time.Second
		return cfg
	}
	a := start(t, lan("host-a"))
	b := start(t, lan("host-b", a.LocalAddr()))
	eventually(t, 10*time.Second, "pair formed", hostsAre(b, "host-a", "host-b"))
	report := ids(7, 2)
	changed := time.Now()
	if err := a.SetHealth(report); err != nil {
		t.Fatal(err)
	}
	seen := func() (bool, string) {
		got := b.UnhealthyChecks()["host-a"]
		return slices.Equal(got, report), fmt.Sprint(len(got), " IDs")
	}
	loseAndRepair(t, b, changed, "health report", seen, func(o *originRec) { o.health = healthRec{} })
}

// loseAndRepair waits until b sees what host-a changed at changed, makes
// b forget it (forget, on host-a's origin record) once every
// retransmission is over, as if every copy had missed b, and waits for
// the repair.
func loseAndRepair(t *testing.T, b *Cluster, changed time.Time, what string, seen func() (bool, string), forget func(*originRec)) {
	t.Helper()
	eventually(t, 2*time.Second, "host-b holds host-a's "+what, seen)
	time.Sleep(time.Until(changed.Add(2 * time.Second)))
	b.mu.Lock()
	forget(&b.members["host-a"].origin)
	b.mu.Unlock()
	if ok, _ := seen(); ok {
		t.Fatalf("host-b still has the %s it was made to lose", what)
	}
	eventually(t, 2*time.Second, "host-b has host-a's "+what+" again", seen)
	t.Logf("repaired %v after the change", time.Since(changed).Round(time.Millisecond))
}
