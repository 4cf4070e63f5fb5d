package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"time"

	"weir/e2e/lab"
	"weir/internal/testsupport"
)

// The health-check rows: how long a stopped target's service takes to leave
// the setting host's rules and a started one to come back (a lab), what the
// prober costs at 1,000 endpoints, and what the health reports cost in
// gossip at 1,000 endpoints per host.

// failoverCycles is how many stop/start cycles each check setting measures.
const failoverCycles = 5

// failoverSpec is examples/basic (web-1 on host-a sends to orders-1 on
// host-b and orders-2 on host-c) with a health check of the given YAML.
func failoverSpec(check string) map[string]string {
	var docs []string
	for i, g := range []struct{ name, svc string }{{"web-1", "frontend"}, {"orders-1", "orders"}, {"orders-2", "orders"}} {
		docs = append(docs, fmt.Sprintf("apiVersion: weir/v1\nkind: Host\nmetadata: {name: %s}\nspec:\n  address: 198.18.0.%d\n  guests:\n    - {name: %s, address: 198.19.%d.2, services: [%s]}\n",
			hostName(i+1), i+1, g.name, i+1, g.svc))
	}
	return map[string]string{
		"hosts.yaml": strings.Join(docs, "---\n"),
		"balancer.yaml": "apiVersion: weir/v1\nkind: Balancer\nmetadata: {name: frontend-orders}\nspec:\n  source: frontend\n  target: orders\n" +
			"  frontend: {address: 198.20.0.10, port: 80}\n  targetPort: 8080\n  healthCheck: " + check + "\n",
	}
}

func stepHealthFailover(ctx context.Context, s *suite) ([]Row, error) {
	l, err := lab.New(ctx, lab.Options{Hosts: 3, GuestsPerHost: 1, Dir: filepath.Join(s.rawDir, "lab-"+lab.NewPrefix()), Logger: s.log})
	if err != nil {
		return nil, err
	}
	defer l.Close()
	server, err := l.Serve(ctx, l.Guest(3, 1), "orders-2", "tcp:8080")
	if err != nil {
		return nil, err
	}
	if _, err := l.Serve(ctx, l.Guest(2, 1), "orders-1", "tcp:8080"); err != nil {
		return nil, err
	}
	dirs := make([]string, len(l.Hosts))
	for i, h := range l.Hosts {
		dirs[i] = filepath.Join(l.Dir, "specs", h.Name)
	}
	checks := []struct{ name, yaml string }{{"interval 1s", "{protocol: tcp, interval: 1s, timeout: 500ms}"}, {"defaults (2s)", "{protocol: tcp}"}}
	if err := writeAll(dirs, failoverSpec(checks[0].yaml)); err != nil {
		return nil, err
	}
	a, err := s.startAgents(ctx, l, "dir", func(h *lab.Host) []string {
		return append(lab.JoinArgs(l.Hosts, h), "--dir", filepath.Join(l.Dir, "specs", h.Name))
	})
	if err != nil {
		return nil, err
	}
	defer a.stopAnd(false)
	cmd := "sudo go run ./e2e/bench -only health-failover"
	var rows []Row
	for i, c := range checks {
		if err := writeAll(dirs, failoverSpec(c.yaml)); err != nil {
			return rows, err
		}
		interval := time.Duration(i+1) * time.Second // 1s, then the default 2s
		down, up, err := measureFailover(ctx, a, l, server, interval)
		if err != nil {
			return rows, err
		}
		goal := 2*interval + time.Second
		rows = append(rows,
			Row{Group: "8", Name: "target's service stopped → gone from the setting host's rules, health check " + c.name + ", thresholds 2",
				Weir: down.String(), Anchor: "interval × unhealthyThreshold = " + fmtDur(goal-time.Second), Target: "≤ " + fmtDur(goal), Met: verdict(down.Pct(1) <= goal), Cmd: cmd},
			Row{Group: "8", Name: "target's service started → back in the setting host's rules, health check " + c.name,
				Weir: up.String(), Anchor: "interval × healthyThreshold = " + fmtDur(goal-time.Second), Cmd: cmd})
	}
	return rows, nil
}

// measureFailover waits until host-a sends to orders-2 under the specs just
// written, then stops and starts its server failoverCycles times, timing
// until host-a's rules leave it out and take it back. Each stop and start
// comes at a random point of the check interval, as a crash would.
func measureFailover(ctx context.Context, a *agents, l *lab.Lab, server *lab.Proc, interval time.Duration) (down, up Sample, err error) {
	ha := l.Hosts[0]
	sends := func(want bool) (time.Duration, error) {
		start := time.Now()
		err := testsupport.Eventually(ctx, time.Minute, 20*time.Millisecond, func() error {
			rules, err := l.Rules(ctx, ha.NS, "nat")
			if err != nil {
				return err
			}
			if got := strings.Contains(strings.Join(rules, "\n"), "198.19.3.2:8080"); got != want {
				return fmt.Errorf("host-a sends to orders-2: %v; want %v", got, want)
			}
			return a.weir.CheckRunning(ha)
		})
		return time.Since(start), err
	}
	if _, err := sends(true); err != nil {
		return nil, nil, err
	}
	// A new revision's checks start unknown (counted healthy); they pass
	// twice before the first stop, so every cycle starts from healthy.
	time.Sleep(5 * time.Second)
	for range failoverCycles {
		time.Sleep(rand.N(interval)) // the phase of the stop within the check interval
		if err := server.Kill(); err != nil {
			return down, up, err
		}
		d, err := sends(false)
		if err != nil {
			return down, up, err
		}
		time.Sleep(rand.N(interval)) // and of the start
		if err := server.Restart(); err != nil {
			return down, up, err
		}
		u, err := sends(true)
		if err != nil {
			return down, up, err
		}
		down, up = append(down, d), append(up, u)
	}
	return down, up, nil
}

func stepHealthCPU(ctx context.Context, s *suite) ([]Row, error) {
	lines, cmd, err := s.runBench(ctx, "health-cpu", "./agent/health", "^(BenchmarkProbeCPU|BenchmarkDialFloor)$", "5x")
	floor, haveFloor := lines["BenchmarkDialFloor"]
	var rows []Row
	for _, proto := range []string{"tcp", "http"} {
		l, ok := lines["BenchmarkProbeCPU/"+proto]
		if !ok {
			continue
		}
		row := Row{Group: "8", Name: "health checks of 1,000 loopback endpoints every 2 s (" + proto + "), prober CPU",
			Weir: fmt.Sprintf("%.1f %% of a core (%.0f probes/s)", l.Values["%cpu"], l.Values["probes/s"]), Target: "< 2 % of a core",
			Met: verdict(l.Values["%cpu"] < 2), Cmd: cmd}
		if haveFloor {
			row.Anchor = fmt.Sprintf("the bare dial loop at that rate: %.1f %%", floor.Values["%cpu"])
		}
		rows = append(rows, row)
	}
	return rows, err
}

func stepHealthGossip(ctx context.Context, s *suite) ([]Row, error) {
	lines, cmd, err := s.runBench(ctx, "health-gossip", "./cluster", "^BenchmarkHealthGossip$", "1x")
	idle, haveIdle := lines["BenchmarkHealthGossip/idle"]
	var rows []Row
	for _, sc := range []struct{ key, name string }{
		{"100-failing", "100 failing on every host"},
		{"5-failing+1/s", "5 failing, 1 change per second on every host"},
		{"100-failing+1/s", "100 failing, 1 change per second on every host"},
		{"100-failing+10/s", "100 failing, 10 changes per second on every host"},
	} {
		l, ok := lines["BenchmarkHealthGossip/"+sc.key]
		if !ok {
			continue
		}
		lag := "no change while measured"
		if strings.Contains(sc.key, "/s") {
			lag = "slowest change held everywhere after " + fmtMs(l.Values["max-lag-ms"])
		}
		row := Row{Group: "8", Name: "gossip sent per host, 10 nodes × 1,000 endpoint checks: " + sc.name,
			Weir: fmt.Sprintf("%.1f KiB/s (%s)", l.Values["B/s/host"]/1024, lag), Cmd: cmd}
		if haveIdle {
			row.Anchor = fmt.Sprintf("no failing check: %.1f KiB/s", idle.Values["B/s/host"]/1024)
		}
		rows = append(rows, row)
	}
	return rows, err
}
