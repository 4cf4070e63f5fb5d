package main

import (
	"bytes"
	"encoding/json"
	"testing"

	"weir/cluster"
	"weir/internal/testsupport"
)

const goldenDigB = "0000111122223333444455556666777788889999aaaabbbbccccddddeeeeffff"

func member(name, addr string, st cluster.State, rev, dig string, bal, rules int, errText string) cluster.Member {
	return cluster.Member{Name: name, Address: addr, State: st, NodeState: cluster.NodeState{Revision: rev, Digest: dig, Balancers: bal, Rules: rules, Error: errText}}
}

// statusFixtures are rendered to golden files as table and JSON.
func statusFixtures() map[string]cluster.Status {
	converged := cluster.BuildStatus(stRev, []cluster.Member{
		member("host-a", "198.18.0.1:7946", cluster.StateAlive, stRev, stDigest, 2, 6, ""),
		member("host-b", "198.18.0.2:7946", cluster.StateAlive, stRev, stDigest, 1, 3, ""),
		member("host-c", "198.18.0.3:7946", cluster.StateSuspect, stRev, stDigest, 0, 0, ""),
		member("host-d", "198.18.0.4:7946", cluster.StateLeft, stRev2, goldenDigB, 1, 2, ""),
		{Name: "laptop", Address: "198.18.0.99:51000", State: cluster.StateAlive, Observer: true},
	})
	diverged := cluster.BuildStatus("dir:"+stDigest, []cluster.Member{
		member("host-a", "198.18.0.1:7946", cluster.StateAlive, "dir:"+stDigest, stDigest, 2, 6, ""),
		member("host-b", "198.18.0.2:7946", cluster.StateAlive, "dir:"+goldenDigB, goldenDigB, 2, 6, ""),
		member("host-c", "198.18.0.3:7946", cluster.StateAlive, "dir:"+stDigest, stDigest, 0, 0, "apply: iptables-restore: exit status 2: line 7 failed"),
		member("host-d", "198.18.0.4:7946", cluster.StateDead, "", "", 0, 0, ""),
		{Name: "host-x", Address: "198.18.0.9:7946", State: cluster.StateAlive, Stranger: "not a Host in revision dir:9f8e7d6"},
	})
	diverged.Latest = "dir:" + goldenDigB
	converged.GossipEncrypted = true
	// An observer has no plan: it shows the failing checks each host reports.
	observed := cluster.BuildStatus("", []cluster.Member{
		member("host-a", "198.18.0.1:7946", cluster.StateAlive, stRev, stDigest, 2, 6, ""),
		withUnhealthy(member("host-b", "198.18.0.2:7946", cluster.StateAlive, stRev, stDigest, 1, 3, ""), 2),
	})
	unhealthy := cluster.BuildStatus(stRev, []cluster.Member{
		member("host-a", "198.18.0.1:7946", cluster.StateAlive, stRev, stDigest, 2, 6, ""),
		withUnhealthy(member("host-c", "198.18.0.3:7946", cluster.StateAlive, stRev, stDigest, 0, 0, ""), 1),
	})
	unhealthy.GossipEncrypted = true
	unhealthy.Health = &cluster.HealthSummary{
		Unhealthy:      []cluster.TargetRef{{Balancer: "frontend-cache", Guest: "cache-1", Host: "host-c"}, {Balancer: "frontend-orders", Guest: "orders-2", Host: "host-c"}},
		UnhealthyTotal: 23,
		FailOpen:       []string{"frontend-cache"}, FailOpenTotal: 1,
	}
	return map[string]cluster.Status{"status_converged": converged, "status_diverged": diverged,
		"status_observed_unhealthy": observed, "status_unhealthy": unhealthy}
}

func withUnhealthy(m cluster.Member, n int) cluster.Member {
	m.Unhealthy = n
	return m
}

// TestStatusGolden renders each fixture as `weir status` prints it, as a
// table and with -o json, twice, against the golden files.
func TestStatusGolden(t *testing.T) {
	for name, s := range statusFixtures() {
		t.Run(name, func(t *testing.T) {
			table := renderStatus(t, "table", s)
			if again := renderStatus(t, "table", s); !bytes.Equal(table, again) {
				t.Errorf("the status table is not deterministic")
			}
			testsupport.Golden(t, name+".txt", table)

			js := renderStatus(t, "json", s)
			testsupport.Golden(t, name+".json", js)
			var back cluster.Status
			if err := json.Unmarshal(js, &back); err != nil || back.Revision != s.Revision || len(back.Members) != len(s.Members) || back.Converged != s.Converged {
				t.Errorf("JSON round trip = %+v, %v; want %+v", back, err, s)
			}
		})
	}
}

func renderStatus(t *testing.T, output string, s cluster.Status) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := printStatus(&b, output, s); err != nil {
		t.Fatalf("printStatus(%s): %v", output, err)
	}
	return b.Bytes()
}
