package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/hashicorp/memberlist"
)

// The -benchtime of every step: small, so the whole suite stays near 20
// minutes on a 2-core machine, and a count (not a duration), so a slow op on a
// loaded machine cannot multiply the run time.
const (
	benchtimeAssign   = "3x"
	benchtimeLoad     = "3x"
	benchtimeApply    = "3x"
	benchtimeChange   = "10x"
	benchtimeDrift    = "1x"
	benchtimePerRule  = "1x"
	benchtimeDispatch = "10000x"
	benchtimeSameHost = "3x"
)

// benchArgs is `go test PKG -run '^$' -bench RE -benchmem -benchtime T -count C -timeout 20m`.
func benchArgs(pkg, re, benchtime string, count int) []string {
	return []string{"test", pkg, "-run", "^$", "-bench", re, "-benchmem", "-benchtime", benchtime, "-count", fmt.Sprint(count), "-timeout", "20m"}
}

// runBench runs a benchmark step and returns its parsed lines and command.
func (s *suite) runBench(ctx context.Context, name, pkg, re, benchtime string) (map[string]BenchLine, string, error) {
	count := 1
	if name == "dispatch" || name == "dispatch6" {
		// Single runs of connect latency swing by ±30 % on a shared
		// machine, and the first sub-benchmark runs cold: take the median of 3.
		count = 3
	}
	args := benchArgs(pkg, re, benchtime, count)
	out, err := s.goTest(ctx, name, args...)
	lines := ParseBench(out)
	if err == nil && len(lines) == 0 {
		err = errNoRows
	}
	return lines, goCmd(args...), err
}

// errNoRows is returned by a step whose output held none of its benchmarks.
var errNoRows = errors.New("no benchmark results in the output")

func stepAssignRender(ctx context.Context, s *suite) ([]Row, error) {
	lines, cmd, err := s.runBench(ctx, "assign-render", "./reconcile/render", "^BenchmarkAssignRender$", benchtimeAssign)
	var rows []Row
	base, haveBase := lines["BenchmarkAssignRender/1k"]
	for _, n := range []int{1, 10, 50} {
		l, ok := lines[fmt.Sprintf("BenchmarkAssignRender/%dk", n)]
		if !ok {
			continue
		}
		weir := fmt.Sprintf("%s/op (CPU %s), %s, %s allocs", fmtMs(msOf(l)), fmtMs(l.Values["cpu-ns/op"]/1e6), fmtBytes(l.Values["B/op"]), fmtCount(l.Values["allocs/op"]))
		row := Row{Group: "1", Name: fmt.Sprintf("Assign + Render, %dk balancers × 5 targets, 100 hosts", n), Weir: weir, Cmd: cmd}
		if haveBase && n > 1 {
			linear := msOf(base) * float64(n)
			row.Anchor = fmt.Sprintf("1k × %d = %s (linear)", n, fmtMs(linear))
			row.Ratio = fmtRatio(msOf(l)/linear) + " of linear"
		}
		rows = append(rows, row)
	}
	return rows, err
}

func stepLoad(ctx context.Context, s *suite) ([]Row, error) {
	lines, cmd, err := s.runBench(ctx, "load", "./spec", "^BenchmarkLoad$", benchtimeLoad)
	var rows []Row
	if l, ok := lines["BenchmarkLoad"]; ok {
		rows = append(rows, Row{Group: "1", Name: "load + validate a 10k-balancer spec tree (101 files)",
			Weir: fmt.Sprintf("%s/op, %.1f MB/s, %s, %s allocs", fmtMs(msOf(l)), l.Values["MB/s"], fmtBytes(l.Values["B/op"]), fmtCount(l.Values["allocs/op"])), Cmd: cmd})
	}
	return rows, err
}

func stepApplyFull(ctx context.Context, s *suite) ([]Row, error) {
	lines, cmd, err := s.runBench(ctx, "apply-full", "./reconcile/netfilter", "^BenchmarkApplyFull$", benchtimeApply)
	var rows []Row
	for _, backend := range []string{"nft", "legacy"} {
		for _, n := range []int{1, 10} {
			l, ok := lines[fmt.Sprintf("BenchmarkApplyFull/%s/%dk", backend, n)]
			if !ok {
				continue
			}
			x := l.Values["x-floor"]
			rows = append(rows, Row{Group: "2", Name: fmt.Sprintf("full apply, %dk balancers × 5 targets (hand-built fixture), %s", n, backend),
				Weir: fmtMs(msOf(l)), Anchor: "raw iptables-restore " + fmtMs(l.Values["floor-ms"]), Ratio: fmtRatio(x),
				Target: "≤ 1.2× floor", Met: verdict(x <= 1.2), Cmd: cmd})
		}
	}
	return rows, err
}

func stepApplyChange(ctx context.Context, s *suite) ([]Row, error) {
	lines, cmd, err := s.runBench(ctx, "apply-change", "./reconcile/netfilter", "^BenchmarkApplyChange$", benchtimeChange)
	var rows []Row
	for _, backend := range []string{"nft", "legacy"} {
		for _, k := range []int{1, 100} {
			l, ok := lines[fmt.Sprintf("BenchmarkApplyChange/%s/10k/%d-changed", backend, k)]
			if !ok {
				continue
			}
			row := Row{Group: "2", Name: fmt.Sprintf("%d balancer(s) changed on a 10k host (hand-built fixture), %s", k, backend),
				Weir: fmtMs(msOf(l)), Anchor: "raw restore of the same chains " + fmtMs(l.Values["floor-ms"]),
				Ratio: fmtRatio(l.Values["x-floor"]), Cmd: cmd}
			rows = append(rows, row)
		}
	}
	return rows, err
}

func stepDrift(ctx context.Context, s *suite) ([]Row, error) {
	lines, cmd, err := s.runBench(ctx, "drift", "./reconcile/netfilter", "^BenchmarkDriftCheck$", benchtimeDrift)
	var rows []Row
	for _, backend := range []string{"nft", "legacy"} {
		cyc, ok := lines[fmt.Sprintf("BenchmarkDriftCheck/%s/cycle-of-10", backend)]
		if !ok {
			continue
		}
		canary := lines[fmt.Sprintf("BenchmarkDriftCheck/%s/canary", backend)]
		full := lines[fmt.Sprintf("BenchmarkDriftCheck/%s/full", backend)]
		rows = append(rows, Row{Group: "2", Name: fmt.Sprintf("drift check on a 10k host at --resync 30s, checks spaced to their CPU budget, %s", backend),
			Weir: fmt.Sprintf("%.2f %% of a core (canary %s, full %s CPU; a check every %.0f s on average)", cyc.Values["pct-core-spaced"],
				fmtMs(canary.Values["cpu-ms"]), fmtMs(full.Values["cpu-ms"]), cyc.Values["s-between-checks"]),
			Before: fmt.Sprintf("%.2f %% (every check at 30 s)", cyc.Values["pct-core-at-30s"]),
			Anchor: "kube-proxy: full resync every 30 s", Target: "< 1 % of a core", Met: verdict(cyc.Values["pct-core-spaced"] < 1), Cmd: cmd})
	}
	return rows, err
}

func stepPerRule(ctx context.Context, s *suite) ([]Row, error) {
	lines, cmd, err := s.runBench(ctx, "per-rule", "./reconcile/netfilter", "^BenchmarkPerRule$", benchtimePerRule)
	var rows []Row
	for _, backend := range []string{"nft", "legacy"} {
		l, ok := lines["BenchmarkPerRule/"+backend]
		if !ok {
			continue
		}
		rows = append(rows, Row{Group: "3", Name: "2,000 rules: one iptables-restore (weir) vs one iptables process per rule (go-iptables), " + backend,
			Weir:   fmtMs(l.Values["restore-ms"]),
			Anchor: fmt.Sprintf("per-rule %s (%.1f ms/rule; anchor 4.8 ms/rule vs 58 ms per 1,000-rule restore)", fmtMs(l.Values["per-rule-ms"]), l.Values["ms/rule"]),
			Ratio:  fmtRatio(l.Values["ratio"]) + " faster", Cmd: cmd})
	}
	return rows, err
}

func stepDispatch(ctx context.Context, s *suite) ([]Row, error) {
	return dispatchRows(ctx, s, "dispatch", "BenchmarkDispatchConnect", "")
}

// stepDispatch6 is stepDispatch over ip6tables (IPv6 balancers).
func stepDispatch6(ctx context.Context, s *suite) ([]Row, error) {
	return dispatchRows(ctx, s, "dispatch6", "BenchmarkDispatchConnect6", "IPv6 ")
}

// dispatchRows runs the connect-latency benchmark bench and makes its rows,
// their names starting with what ("" or "IPv6 ").
func dispatchRows(ctx context.Context, s *suite, name, bench, what string) ([]Row, error) {
	lines, cmd, err := s.runBench(ctx, name, "./reconcile/render", "^"+bench+"$", benchtimeDispatch)
	one, ok := lines[bench+"/1"]
	if !ok {
		return nil, err
	}
	p50 := func(l BenchLine) string {
		return fmt.Sprintf("p50 %.0f µs (p90 %.0f µs)", l.Values["p50-µs"], l.Values["p90-µs"])
	}
	rows := []Row{{Group: "7", Name: "connect latency, 1 " + what + "balancer", Weir: p50(one), Anchor: "anchor ≈ 75 µs", Cmd: cmd}}
	if l, ok := lines[bench+"/10k-tree"]; ok {
		r := l.Values["p50-µs"] / one.Values["p50-µs"]
		rows = append(rows, Row{Group: "7", Name: "connect latency, 10k " + what + "balancers, tree dispatch (weir)", Weir: p50(l),
			Anchor: fmt.Sprintf("1 balancer p50 %.0f µs", one.Values["p50-µs"]), Ratio: fmtRatio(r), Target: "≤ 1.3× the 1-balancer p50", Met: verdict(r <= 1.3), Cmd: cmd})
	}
	if l, ok := lines[bench+"/10k-linear"]; ok {
		r := l.Values["p50-µs"] / one.Values["p50-µs"]
		rows = append(rows, Row{Group: "7", Name: "connect latency, 10k " + what + "balancers, linear dispatch (kube-proxy's layout)", Weir: p50(l),
			Anchor: fmt.Sprintf("1 balancer p50 %.0f µs; anchor 75 → 325 µs (4.3×) on nft", one.Values["p50-µs"]), Ratio: fmtRatio(r), Cmd: cmd})
	}
	return rows, err
}

// simNodes is the cluster size of the gossip row.
const simNodes = 100

func stepGossip(ctx context.Context, s *suite) ([]Row, error) {
	args := []string{"test", "./cluster", "-run", "^TestSimulation$", "-v", "-count", "1", "-timeout", "20m", "-args", fmt.Sprintf("-sim.nodes=%d", simNodes)}
	out, err := s.goTest(ctx, "gossip", args...)
	cmd := goCmd(args...)
	hint, death, perr := ParseSim(out)
	if perr != nil {
		if err == nil {
			err = perr
		}
		return nil, err
	}
	lan := memberlist.DefaultLANConfig()
	n := float64(death.Nodes + 1)
	minSusp := time.Duration(float64(lan.SuspicionMult) * math.Max(1, math.Log10(n)) * float64(lan.ProbeInterval))
	typical := lan.ProbeInterval + lan.ProbeTimeout + minSusp
	serf := 2 * time.Second
	rows := []Row{
		{Group: "5", Name: fmt.Sprintf("revision hint reaches all %d other nodes (%d nodes, LAN profile)", hint.Nodes, hint.Nodes+1),
			Weir:   fmt.Sprintf("p50 %s, max %s", fmtDur(hint.P50), fmtDur(hint.Max)),
			Anchor: "Serf model ≈ 2 s to 99.99 %", Ratio: fmtRatio(float64(hint.Max)/float64(serf)) + " (max)", Cmd: cmd},
		{Group: "5", Name: fmt.Sprintf("crashed node seen dead by all %d others", death.Nodes),
			Weir: fmt.Sprintf("p50 %s, max %s", fmtDur(death.P50), fmtDur(death.Max)),
			Anchor: fmt.Sprintf("memberlist LAN at n=%d: typical %s (probe %v + timeout %v + suspicion %v, up to %v); 4–24 s at n=10",
				int(n), fmtDur(typical), lan.ProbeInterval, lan.ProbeTimeout, minSusp, minSusp*time.Duration(lan.SuspicionMaxTimeoutMult)),
			Ratio: fmtRatio(float64(death.P50)/float64(typical)) + " (p50)", Cmd: cmd},
	}
	return rows, err
}

// stepApplyFullRendered applies Render's real output for 10k balancers × 5
// targets (tree chains, SVC chains with inline DNAT), which is what an agent
// writes; stepApplyFull's hand-built fixture has far fewer chains, and on nft
// the kernel's cost grows with the jump graph, not just the line count.
func stepApplyFullRendered(ctx context.Context, s *suite) ([]Row, error) {
	return applyFullRenderedRows(ctx, s, "apply-full-rendered", "BenchmarkApplyFullRendered", "Render's 10k output", "iptables-restore")
}

// stepApplyFullRendered6 is stepApplyFullRendered for 10,000 IPv6 balancers
// through ip6tables.
func stepApplyFullRendered6(ctx context.Context, s *suite) ([]Row, error) {
	return applyFullRenderedRows(ctx, s, "apply-full-rendered6", "BenchmarkApplyFullRendered6", "Render's 10k IPv6 output", "ip6tables-restore")
}

// applyFullRenderedRows runs the full-apply benchmark bench and makes a row
// per backend: weir's apply of what beside a raw restore (the command).
func applyFullRenderedRows(ctx context.Context, s *suite, name, bench, what, restore string) ([]Row, error) {
	lines, cmd, err := s.runBench(ctx, name, "./reconcile/netfilter", "^"+bench+"$", "1x")
	var rows []Row
	for _, backend := range []string{"nft", "legacy"} {
		l, ok := lines[fmt.Sprintf("%s/%s/10k", bench, backend)]
		if !ok {
			continue
		}
		x := l.Values["x-floor"]
		rows = append(rows, Row{Group: "2", Name: fmt.Sprintf("full apply of %s (%s nat chains, %s rules), %s", what, fmtCount(l.Values["nat-chains"]), fmtCount(l.Values["rules"]), backend),
			Weir: fmtMs(msOf(l)), Anchor: "raw " + restore + " " + fmtMs(l.Values["floor-ms"]), Ratio: fmtRatio(x),
			Target: "≤ 1.2× floor", Met: verdict(x <= 1.2), Cmd: cmd})
	}
	return rows, err
}

// stepOneChange is the agent's whole path when one balancer of a 10k host
// changes: Assign, Digest, incremental Render, partial Syncer.Apply.
func stepOneChange(ctx context.Context, s *suite) ([]Row, error) {
	lines, cmd, err := s.runBench(ctx, "one-change", "./reconcile/netfilter", "^BenchmarkOneChange$", "8x")
	var rows []Row
	for _, backend := range []string{"nft", "legacy"} {
		l, ok := lines[fmt.Sprintf("BenchmarkOneChange/%s/10k", backend)]
		if !ok {
			continue
		}
		v := l.Values
		row := Row{Group: "2", Name: fmt.Sprintf("1 balancer changed on Render's 10k output, end to end (assign %s, digest %s, render %s, apply %s), %s",
			fmtMs(v["assign-ms"]), fmtMs(v["digest-ms"]), fmtMs(v["render-ms"]), fmtMs(v["apply-ms"]), backend),
			Weir: fmtMs(msOf(l)), Anchor: "raw restore of the same chains " + fmtMs(v["restore-ms"]),
			Ratio: fmtRatio(msOf(l) / v["restore-ms"]), Cmd: cmd}
		if backend == "nft" {
			row.Target = "< 100 ms"
			row.Met = verdict(msOf(l) < 100)
		}
		rows = append(rows, row)
	}
	return rows, err
}

// stepApplySameHost is the first full apply of the 10k tree's host-a
// (testsupport.BigTree) with every target on that host and with every
// target on another, beside the flat floor measured in the same op.
func stepApplySameHost(ctx context.Context, s *suite) ([]Row, error) {
	lines, cmd, err := s.runBench(ctx, "apply-samehost", "./reconcile/netfilter", "^BenchmarkApplySameHost$", benchtimeSameHost)
	var rows []Row
	for _, backend := range []string{"nft", "legacy"} {
		for _, layout := range []string{"local", "remote"} {
			l, ok := lines[fmt.Sprintf("BenchmarkApplySameHost/%s/10k-%s", backend, layout)]
			if !ok {
				continue
			}
			x := l.Values["x-floor"]
			where := map[string]string{"local": "every target on the setting host", "remote": "every target on another host"}[layout]
			rows = append(rows, Row{Group: "2", Key: "samehost-" + backend + "-" + layout,
				Name: fmt.Sprintf("full apply, 10k balancers × 5 targets, %s (%s nat chains, %s rules), %s", where, fmtCount(l.Values["nat-chains"]), fmtCount(l.Values["rules"]), backend),
				Weir: fmtMs(msOf(l)), Anchor: fmt.Sprintf("flat floor (1 dispatch chain, 1 chain per balancer, %s rules) %s", fmtCount(l.Values["floor-rules"]), fmtMs(l.Values["floor-ms"])),
				Ratio: fmtRatio(x), Target: "≤ 1.5× floor", Met: verdict(x <= 1.5), Cmd: cmd})
		}
	}
	return rows, err
}
