package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"weir/e2e/lab"
	"weir/internal/testsupport"
)

// Settings of the memory rows.
const (
	rssLimit        = 64 << 20         // the target of the settled memory rows
	rssPeakLimit    = 128 << 20        // the target of the 10k peak rows
	idleAfter       = 30 * time.Second // examples/basic: read this long after converging
	settledAfter    = 40 * time.Second // 10k: read this long after converging (> the 30 s resync)
	bigBalancers    = 10000
	bigConvergeWait = 5 * time.Minute
)

// ProcMem is a process's resident memory from /proc/PID/status.
type ProcMem struct {
	RSS, HWM int64 // VmRSS and VmHWM (the peak), in bytes
}

// ParseProcStatus reads VmRSS and VmHWM from the text of /proc/PID/status.
func ParseProcStatus(text string) (ProcMem, error) {
	var m ProcMem
	found := 0
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return m, fmt.Errorf("unexpected %s line %q", k, sc.Text())
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return m, fmt.Errorf("parsing %s: %w", k, err)
		}
		if k == "VmRSS" {
			m.RSS = kb << 10
		} else {
			m.HWM = kb << 10
		}
		found++
	}
	if found != 2 {
		return m, fmt.Errorf("VmRSS or VmHWM missing from /proc/PID/status")
	}
	return m, nil
}

// procMem reads ProcMem of pid.
func procMem(pid int) (ProcMem, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ProcMem{}, err
	}
	return ParseProcStatus(string(b))
}

// ParseMetric returns the value of an unlabelled metric in Prometheus text.
func ParseMetric(text, name string) (float64, bool) {
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

// heapInUse reads go_memstats_heap_inuse_bytes from the agent's /metrics.
func (a *agents) heapInUse(ctx context.Context, h *lab.Host) (float64, error) {
	_, b, err := a.weir.API(ctx, h, http.MethodGet, "/metrics")
	if err != nil {
		return 0, err
	}
	v, ok := ParseMetric(string(b), "go_memstats_heap_inuse_bytes")
	if !ok {
		return 0, fmt.Errorf("no go_memstats_heap_inuse_bytes in /metrics of %s", h.Name)
	}
	return v, nil
}

func stepRSS(ctx context.Context, s *suite) ([]Row, error) {
	rows, err := s.rssBasic(ctx)
	if err != nil {
		return rows, err
	}
	for _, layout := range []testsupport.Layout{testsupport.TargetsLocal, testsupport.TargetsRemote} {
		big, err := s.rssBig(ctx, layout)
		rows = append(rows, big...)
		if err != nil {
			return rows, err
		}
	}
	return rows, nil
}

// rssBasic runs examples/basic on 3 agents and reads their memory when idle.
func (s *suite) rssBasic(ctx context.Context) ([]Row, error) {
	l, err := s.newLab(ctx, 3, false)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	for _, h := range l.Hosts {
		if err := lab.CopyDir(filepath.Join(l.Dir, "specs", h.Name), "examples/basic"); err != nil {
			return nil, fmt.Errorf("copying examples/basic: %w", err)
		}
	}
	a, err := s.startAgents(ctx, l, "basic", func(h *lab.Host) []string {
		return append(lab.JoinArgs(l.Hosts, h), "--dir", filepath.Join(l.Dir, "specs", h.Name))
	})
	if err != nil {
		return nil, err
	}
	defer a.stop()
	if _, err := a.waitAll(ctx, time.Now(), goal{n: 3}); err != nil {
		return nil, fmt.Errorf("examples/basic: %w", err)
	}
	select {
	case <-time.After(idleAfter):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var worst ProcMem
	var heap float64
	for _, h := range l.Hosts {
		m, err := procMem(a.weir.Agent(h.Name).Pid())
		if err != nil {
			return nil, err
		}
		hi, err := a.heapInUse(ctx, h)
		if err != nil {
			return nil, err
		}
		s.log.Info("examples/basic agent memory", "host", h.Name, "VmRSS", mib(m.RSS), "VmHWM", mib(m.HWM), "heap in use", fmtBytes(hi))
		worst.RSS, worst.HWM, heap = max(worst.RSS, m.RSS), max(worst.HWM, m.HWM), max(heap, hi)
	}
	const cmd = "go run ./e2e/bench -only rss"
	return []Row{
		{Group: "6", Name: fmt.Sprintf("agent VmRSS idle, examples/basic, 3 agents, %v after converging (largest)", idleAfter),
			Weir: mib(worst.RSS), Anchor: "Go heap in use " + fmtBytes(heap), Ratio: fmtRatio(float64(worst.RSS)/rssLimit) + " of target",
			Target: "< 64 MiB", Met: verdict(worst.RSS < rssLimit), Cmd: cmd},
		{Group: "6", Name: "agent VmHWM (peak), examples/basic (largest)",
			Weir: mib(worst.HWM), Ratio: fmtRatio(float64(worst.HWM)/rssLimit) + " of target",
			Target: "< 64 MiB", Met: verdict(worst.HWM < rssLimit), Cmd: cmd},
	}, nil
}

// rssBig runs an agent on host-a of the 10k tree and reads its peak and
// settled memory. With the targets remote, they live on host-b, whose agent
// runs too (it sets nothing) so that they stay alive.
func (s *suite) rssBig(ctx context.Context, layout testsupport.Layout) ([]Row, error) {
	hosts := bigHosts(layout)
	l, a, err := s.startBig(ctx, hosts, "big-"+layout.String(), testsupport.BigTree(bigBalancers, layout))
	if err != nil {
		return nil, err
	}
	defer l.Close()
	// 60k rules take long to clean up one by one; deleting the namespace
	// takes them all at once.
	defer a.stopAnd(false)
	h := l.Hosts[0]
	pid := a.weir.Agent(h.Name).Pid()
	t0 := time.Now()
	st, err := a.waitBig(ctx, hosts, time.Now())
	if err != nil {
		return nil, fmt.Errorf("10k agent, targets %s: %w", layout, err)
	}
	converged := time.Since(t0)
	atConverge, err := procMem(pid)
	if err != nil {
		return nil, err
	}
	self, _ := st.Member(h.Name)
	s.log.Info("10k agent converged", "targets", layout, "after", converged, "rules", self.Rules, "VmRSS", mib(atConverge.RSS), "VmHWM", mib(atConverge.HWM))
	select {
	case <-time.After(settledAfter):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	settled, err := procMem(pid)
	if err != nil {
		return nil, err
	}
	heap, err := a.heapInUse(ctx, h)
	if err != nil {
		return nil, err
	}
	s.log.Info("10k agent settled", "targets", layout, "VmRSS", mib(settled.RSS), "VmHWM", mib(settled.HWM), "heap in use", fmtBytes(heap))
	return bigRSSRows(layout, self.Rules, settled, atConverge, converged, heap), nil
}

// bigRSSRows are the peak and settled rows of one layout of the 10k tree.
func bigRSSRows(layout testsupport.Layout, rules int, settled, atConverge ProcMem, converged time.Duration, heap float64) []Row {
	const cmd = "go run ./e2e/bench -only rss"
	what := fmt.Sprintf("10k balancers × 5 targets %s, 100 hosts, %d rules on the agent's host", layoutWords(layout), rules)
	return []Row{
		{Group: "6", Key: "rss-peak-" + layout.String(), Name: "agent VmHWM (peak) from start to settled, " + what,
			Weir: mib(settled.HWM), Anchor: fmt.Sprintf("VmRSS %s when converged (%s after start)", mib(atConverge.RSS), fmtDur(converged)),
			Ratio: fmtRatio(float64(settled.HWM)/rssPeakLimit) + " of target", Target: "< 128 MiB", Met: verdict(settled.HWM < rssPeakLimit), Cmd: cmd},
		{Group: "6", Key: "rss-settled-" + layout.String(), Name: fmt.Sprintf("agent VmRSS settled, %v after converging, %s", settledAfter, what),
			Weir: mib(settled.RSS), Anchor: "Go heap in use " + fmtBytes(heap), Ratio: fmtRatio(float64(settled.RSS)/rssLimit) + " of target",
			Target: "< 64 MiB", Met: verdict(settled.RSS < rssLimit), Cmd: cmd},
	}
}

// layoutWords says where the targets are, for row names.
func layoutWords(layout testsupport.Layout) string {
	if layout == testsupport.TargetsRemote {
		return "on another host"
	}
	return "on the agent's own host"
}

// startBig writes the big tree files into the spec directory of host-a (and
// of host-b when the lab has two hosts) and starts their agents in dir
// mode with --settle-time 1s.
func (s *suite) startBig(ctx context.Context, hosts int, mode string, files map[string]string) (*lab.Lab, *agents, error) {
	l, err := s.newLab(ctx, hosts, false)
	if err != nil {
		return nil, nil, err
	}
	for _, h := range l.Hosts {
		if err := lab.WriteFiles(filepath.Join(l.Dir, "specs", h.Name), files); err != nil {
			l.Close()
			return nil, nil, err
		}
	}
	a, err := s.startAgents(ctx, l, mode, func(h *lab.Host) []string {
		return append(lab.JoinArgs(l.Hosts, h), "--dir", filepath.Join(l.Dir, "specs", h.Name), "--settle-time", "1s")
	})
	if err != nil {
		l.Close()
		return nil, nil, err
	}
	return l, a, nil
}

// waitBig waits until host-a's agent reports the cluster of hosts
// converged with all bigBalancers balancers applied, and returns its status.
func (a *agents) waitBig(ctx context.Context, hosts int, t0 time.Time) (lab.Status, error) {
	h := a.hosts[0]
	var st lab.Status
	err := testsupport.Eventually(ctx, bigConvergeWait, 100*time.Millisecond, func() error {
		var err error
		if st, err = a.weir.Status(ctx, h); err != nil {
			return err
		}
		if _, err := (goal{n: hosts}).converged(st); err != nil {
			return err
		}
		if m, ok := st.Member(h.Name); !ok || m.Balancers != bigBalancers {
			return fmt.Errorf("applied %d balancers; want %d", m.Balancers, bigBalancers)
		}
		return nil
	})
	return st, err
}
