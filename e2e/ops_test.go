package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"weir/e2e/lab"
	"weir/internal/testsupport"
)

// TestDiffShowsHandDeletedRule: `weir diff` on a setting host agrees with the
// agent after it applied (exit 0), and shows a rule deleted by hand as one
// the agent wants (exit 1) until the next resync, which is an hour away.
func TestDiffShowsHandDeletedRule(t *testing.T) {
	e := newBasicEnv(t)
	c := e.push("basic", renderSpecs(basicHosts(), []balancerSpec{ordersBalancer(nil)}))
	err := e.weir.StartAgents(e.lab.Hosts, func(h *lab.Host) []string {
		return append(lab.JoinArgs(e.lab.Hosts, h), "--repo", e.lab.Git.URL(), "--poll", poll.String(), "--resync", "1h")
	})
	if err != nil {
		t.Fatal(err)
	}
	e.waitConverged(c)
	ha := e.host("host-a")
	if out, code := e.diff(ha); code != 0 || out != "" {
		t.Fatalf("weir diff after the apply = exit %d:\n%s\nwant 0 and nothing", code, out)
	}

	// The first DNAT rule of the balancer's WEIR-SVC chain, deleted by hand.
	var chain, rule string
	for _, l := range e.rules(ha, "nat") {
		if strings.HasPrefix(l, "-A WEIR-SVC-") && strings.Contains(l, "DNAT") {
			f := strings.Fields(l)
			chain, rule = f[1], l
			break
		}
	}
	if chain == "" {
		t.Fatalf("no DNAT rule in a WEIR-SVC chain on host-a:\n%s", strings.Join(e.rules(ha, "nat"), "\n"))
	}
	if _, err := e.lab.Exec(e.ctx, ha.NS, "iptables", "-t", "nat", "-D", chain, "1"); err != nil {
		t.Fatal(err)
	}
	out, code := e.diff(ha)
	if code != 1 {
		t.Fatalf("weir diff after deleting %q = exit %d:\n%s\nwant 1", rule, code, out)
	}
	for _, want := range []string{"--- live iptables (", "+++ agent wants (revision " + c[:7], "\n+" + rule + "\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("weir diff output lacks %q:\n%s", want, out)
		}
	}
	changed := 0
	for _, l := range strings.Split(out, "\n") {
		if (strings.HasPrefix(l, "+") || strings.HasPrefix(l, "-")) && !strings.HasPrefix(l, "+++ ") && !strings.HasPrefix(l, "--- ") {
			changed++
		}
	}
	if changed != 1 {
		t.Errorf("weir diff shows %d changed lines; want the one deleted rule:\n%s", changed, out)
	}
}

// diff runs `weir diff` on host h and returns its stdout and exit code.
func (e *env) diff(h *lab.Host) (string, int) {
	e.t.Helper()
	out, stderr, err := e.weir.Run(e.ctx, h, "diff", "--api", lab.APIAddr)
	var exit *exec.ExitError
	switch {
	case err == nil:
		return out, 0
	case errors.As(err, &exit):
		if exit.ExitCode() == 2 {
			e.t.Fatalf("weir diff on %s could not compare: %s", h.Name, stderr)
		}
		return out, exit.ExitCode()
	}
	e.t.Fatal(err)
	return "", 0
}

// TestDashboardMetricsExist: every metric the Grafana dashboard in dist/
// queries is on a running agent's /metrics (memberlist's own included, once
// the agents gossip).
func TestDashboardMetricsExist(t *testing.T) {
	names := dashboardMetrics(t, "../dist/grafana-dashboard.json")
	e := newBasicEnv(t)
	c := e.push("basic", renderSpecs(basicHosts(), []balancerSpec{ordersBalancer(nil)}))
	e.startAgents()
	e.waitConverged(c)
	// memberlist reports some series only once it has probed a peer: a
	// running agent has them all within seconds.
	var missing []string
	err := testsupport.Eventually(e.ctx, waitFor, 500*time.Millisecond, func() error {
		code, body := e.api(e.host("host-a"), "GET", "/metrics")
		if code != 200 {
			return fmt.Errorf("GET /metrics = %d", code)
		}
		have := map[string]bool{}
		for _, l := range strings.Split(body, "\n") {
			if l != "" && l[0] != '#' {
				have[strings.FieldsFunc(l, func(r rune) bool { return r == '{' || r == ' ' })[0]] = true
			}
		}
		missing = missing[:0]
		for _, n := range names {
			if !have[n] {
				missing = append(missing, n)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("host-a's /metrics lacks %v", missing)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("the dashboard queries metrics no running agent has: %v", err)
	}
	t.Logf("the dashboard's %d metrics are all on /metrics", len(names))
}

// promName finds metric names in a PromQL expression once label matchers,
// grouping clauses, ranges and Grafana's $variables are removed: every
// identifier that Prometheus' own exporters (weir_, go_, process_) start.
var (
	promName     = regexp.MustCompile(`\b(?:weir|go|process)_[a-zA-Z0-9_]*\b`)
	promNotNames = regexp.MustCompile(`\{[^}]*\}|\b(?:by|without|on|ignoring)\s*\([^)]*\)|\[[^\]]*\]|\$\w+`)
)

// dashboardMetrics returns the sorted metric names the expressions of the
// dashboard's panels (rows included) query.
func dashboardMetrics(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []dashboardPanel `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	set := map[string]bool{}
	var walk func([]dashboardPanel)
	walk = func(ps []dashboardPanel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				for _, n := range promName.FindAllString(promNotNames.ReplaceAllString(tg.Expr, " "), -1) {
					set[n] = true
				}
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	if len(set) < 10 {
		t.Fatalf("%s queries %d metrics; want the dashboard to cover the agent", path, len(set))
	}
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

type dashboardPanel struct {
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []dashboardPanel `json:"panels"`
}
