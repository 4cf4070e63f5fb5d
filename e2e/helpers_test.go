package e2e

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"weir/e2e/lab"
)

// Timings of the lab agents: short, so the suite is quick, and waits generous,
// so a loaded 2-core machine does not flake.
const (
	poll    = 2 * time.Second
	resync  = 3 * time.Second
	waitFor = 60 * time.Second
)

// weirBin is the binary under test, set by TestMain.
var weirBin string

func TestMain(m *testing.M) {
	lab.MainSetup()
	code, err := setupAndRun(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(2)
	}
	os.Exit(code)
}

// setupAndRun finds or builds the weir binary: $WEIR_BIN, else ../bin/weir
// (make test builds it first), else `go build` into a temp dir.
func setupAndRun(m *testing.M) (int, error) {
	if os.Geteuid() != 0 {
		return m.Run(), nil // every test skips with the reason
	}
	if p := os.Getenv("WEIR_BIN"); p != "" {
		weirBin = p
		return m.Run(), nil
	}
	if p, err := filepath.Abs("../bin/weir"); err == nil {
		if _, err := os.Stat(p); err == nil {
			weirBin = p
			return m.Run(), nil
		}
	}
	dir, err := os.MkdirTemp("", "weir-e2e-bin-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	weirBin = filepath.Join(dir, "weir")
	cmd := exec.Command("go", "build", "-o", weirBin, "./cmd/weir")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("building weir: %w: %s", err, out)
	}
	return m.Run(), nil
}

// guestSpec, hostSpec and balancerSpec render spec YAML for a test.
type guestSpec struct {
	name, addr string
	services   []string
}

type hostSpec struct {
	name, addr string
	guests     []guestSpec
}

type balancerSpec struct {
	name, source, target string
	addr                 string
	port, targetPort     int
	protocol, strategy   string
	weights              map[string]int
}

// renderSpecs returns the files of a spec tree: one file per host under
// hosts/ and all balancers in balancers.yaml.
func renderSpecs(hosts []hostSpec, bals []balancerSpec) map[string]string {
	files := map[string]string{}
	for _, h := range hosts {
		var b strings.Builder
		fmt.Fprintf(&b, "apiVersion: weir/v1\nkind: Host\nmetadata:\n  name: %s\nspec:\n  address: %s\n  guests:\n", h.name, h.addr)
		for _, g := range h.guests {
			fmt.Fprintf(&b, "    - name: %s\n      address: %s\n      services: [%s]\n", g.name, g.addr, strings.Join(g.services, ", "))
		}
		files["hosts/"+h.name+".yaml"] = b.String()
	}
	var b strings.Builder
	for i, bl := range bals {
		if i > 0 {
			b.WriteString("---\n")
		}
		fmt.Fprintf(&b, "apiVersion: weir/v1\nkind: Balancer\nmetadata:\n  name: %s\nspec:\n  source: %s\n  target: %s\n  frontend:\n    address: %s\n    port: %d\n",
			bl.name, bl.source, bl.target, bl.addr, bl.port)
		if bl.protocol != "" {
			fmt.Fprintf(&b, "    protocol: %s\n", bl.protocol)
		}
		if bl.targetPort != 0 {
			fmt.Fprintf(&b, "  targetPort: %d\n", bl.targetPort)
		}
		if bl.strategy != "" {
			fmt.Fprintf(&b, "  strategy: %s\n", bl.strategy)
		}
		if len(bl.weights) > 0 {
			b.WriteString("  weights:\n")
			names := make([]string, 0, len(bl.weights))
			for n := range bl.weights {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				fmt.Fprintf(&b, "    %s: %d\n", n, bl.weights[n])
			}
		}
	}
	files["balancers.yaml"] = b.String()
	return files
}

// basicHosts is examples/basic: web-1 (frontend) on host-a, orders-1 on
// host-b and orders-2 on host-c (both orders).
func basicHosts() []hostSpec {
	return []hostSpec{
		{"host-a", "198.18.0.1", []guestSpec{{"web-1", "198.19.1.2", []string{"frontend"}}}},
		{"host-b", "198.18.0.2", []guestSpec{{"orders-1", "198.19.2.2", []string{"orders"}}}},
		{"host-c", "198.18.0.3", []guestSpec{{"orders-2", "198.19.3.2", []string{"orders"}}}},
	}
}

// ordersBalancer is examples/basic's balancer with the given weights.
func ordersBalancer(weights map[string]int) balancerSpec {
	return balancerSpec{name: "frontend-orders", source: "frontend", target: "orders",
		addr: "198.20.0.10", port: 80, protocol: "tcp", targetPort: 8080, weights: weights}
}

// env is one scenario's lab with weir agents.
type env struct {
	t      *testing.T
	ctx    context.Context
	lab    *lab.Lab
	weir   *lab.Weir
	agents map[string]*lab.Proc
}

// newEnv builds a lab with a Git server and guests[i] guests behind host i+1.
func newEnv(t *testing.T, guests ...int) *env {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: the e2e tests need root to create network namespaces and program iptables (run as root, e.g. sudo make test)")
	}
	l := lab.ForTest(t, lab.Options{Hosts: len(guests), Guests: guests, Git: true})
	w := &lab.Weir{Bin: weirBin, Lab: l, StatusFromAPI: os.Getenv("WEIR_E2E_STATUS") == "api"}
	return &env{t: t, ctx: t.Context(), lab: l, weir: w, agents: map[string]*lab.Proc{}}
}

// newBasicEnv builds examples/basic's network with name servers on the
// orders guests (TCP 8080, UDP 8053).
func newBasicEnv(t *testing.T) *env {
	e := newEnv(t, 1, 1, 1)
	e.serve(e.lab.Guest(2, 1), "orders-1")
	e.serve(e.lab.Guest(3, 1), "orders-2")
	return e
}

func (e *env) serve(g *lab.Guest, name string) {
	e.t.Helper()
	if _, err := e.lab.Serve(e.ctx, g, name, "tcp:8080", "udp:8053"); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) host(name string) *lab.Host {
	for _, h := range e.lab.Hosts {
		if h.Name == name {
			return h
		}
	}
	e.t.Fatalf("no host %s", name)
	return nil
}

// joinArgs lists every other host as a seed, so any agent can (re)join alone.
func (e *env) joinArgs(self *lab.Host) []string {
	var seeds []string
	for _, h := range e.lab.Hosts {
		if h != self {
			seeds = append(seeds, fmt.Sprintf("%s:%d", h.Addr, lab.AgentPort))
		}
	}
	if len(seeds) == 0 {
		return nil
	}
	return []string{"--join", strings.Join(seeds, ",")}
}

// gitArgs are the source and timing flags of a Git-fed lab agent.
func (e *env) gitArgs() []string {
	return []string{"--repo", e.lab.Git.URL(), "--branch", "main", "--poll", poll.String(), "--resync", resync.String()}
}

// startAgent starts host h's agent with the join seeds plus extra (gitArgs
// when extra is empty).
func (e *env) startAgent(h *lab.Host, extra ...string) *lab.Proc {
	e.t.Helper()
	if len(extra) == 0 {
		extra = e.gitArgs()
	}
	p, err := e.weir.StartAgent(h, append(e.joinArgs(h), extra...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.agents[h.Name] = p
	return p
}

// startAgents starts a Git-fed agent on every host.
func (e *env) startAgents() {
	for _, h := range e.lab.Hosts {
		e.startAgent(h)
	}
}

func (e *env) push(msg string, files map[string]string) string {
	e.t.Helper()
	c, err := e.lab.Git.PushFiles(e.ctx, msg, files)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// waitConverged waits until every host (or the given ones) reports the
// cluster converged on revision with exactly them alive.
func (e *env) waitConverged(revision string, hosts ...*lab.Host) time.Duration {
	e.t.Helper()
	if len(hosts) == 0 {
		hosts = e.lab.Hosts
	}
	d, err := e.weir.WaitConverged(e.ctx, waitFor, hosts, revision, lab.Names(hosts))
	if err != nil {
		e.t.Fatalf("waiting for convergence on %.12s: %v", revision, err)
	}
	return d
}

func (e *env) status(h *lab.Host) lab.Status {
	e.t.Helper()
	st, err := e.weir.Status(e.ctx, h)
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

func (e *env) dial(g *lab.Guest, network, addr string, n int) lab.Result {
	e.t.Helper()
	r, err := e.lab.Dial(e.ctx, g, network, addr, n)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// rules returns host h's table in iptables-save form without counters.
func (e *env) rules(h *lab.Host, table string) []string {
	e.t.Helper()
	r, err := e.lab.Rules(e.ctx, h.NS, table)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// weirLines keeps the lines of an iptables-save that weir owns: its chains,
// their rules, and jumps into them.
func weirLines(lines []string) []string {
	var out []string
	for _, l := range lines {
		if strings.Contains(l, "WEIR-") {
			out = append(out, l)
		}
	}
	return out
}

// foreignLines keeps every line weir does not own.
func foreignLines(lines []string) []string {
	var out []string
	for _, l := range lines {
		if !strings.Contains(l, "WEIR-") {
			out = append(out, l)
		}
	}
	return out
}

// duplicates returns the "-A" lines that occur more than once.
func duplicates(lines []string) []string {
	seen := map[string]int{}
	var dups []string
	for _, l := range lines {
		if strings.HasPrefix(l, "-A ") {
			seen[l]++
			if seen[l] == 2 {
				dups = append(dups, l)
			}
		}
	}
	return dups
}

// chiSquare is Pearson's statistic of observed counts against expected shares.
func chiSquare(counts map[string]int, shares map[string]float64) float64 {
	total := 0
	for _, c := range counts {
		total += c
	}
	var x2 float64
	for name, p := range shares {
		exp := p * float64(total)
		d := float64(counts[name]) - exp
		x2 += d * d / exp
	}
	// Replies from a name with no expected share make the fit impossible.
	for name := range counts {
		if _, ok := shares[name]; !ok {
			return math.Inf(1)
		}
	}
	return x2
}

// chi2Crit001 are the chi-square critical values at p = 0.001 by degrees of
// freedom: a correct balancer fails the check once in a thousand runs.
var chi2Crit001 = map[int]float64{1: 10.828, 2: 13.816, 3: 16.266}

// assertSplit checks that r has no failures and fits shares within the chi-square bound.
func assertSplit(t *testing.T, what string, r lab.Result, shares map[string]float64) {
	t.Helper()
	if r.Failures() != 0 {
		t.Errorf("%s: %v; want no failures", what, r)
	}
	x2 := chiSquare(r.Counts(), shares)
	crit := chi2Crit001[len(shares)-1]
	t.Logf("%s: %v, chi-square %.2f (bound %.2f)", what, r, x2, crit)
	if x2 > crit {
		t.Errorf("%s: split %v does not fit shares %v: chi-square %.2f > %.2f", what, r.Counts(), shares, x2, crit)
	}
}

// median returns the median of ds.
func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// figure logs a measured figure in a form that is easy to grep from -v output.
func figure(t *testing.T, name string, d time.Duration, detail string) {
	t.Helper()
	t.Logf("FIGURE %s: %v %s", name, d.Round(time.Millisecond), detail)
}

// waitRules polls host h's table until cond accepts it.
func (e *env) waitRules(h *lab.Host, table string, cond func([]string) error) time.Duration {
	e.t.Helper()
	start := time.Now()
	err := lab.Eventually(e.ctx, waitFor, 50*time.Millisecond, func() error {
		r, err := e.lab.Rules(e.ctx, h.NS, table)
		if err != nil {
			return err
		}
		return cond(r)
	})
	if err != nil {
		e.t.Fatalf("waiting for %s rules on %s: %v", table, h.Name, err)
	}
	return time.Since(start)
}

func containsAddr(lines []string, addr string) bool {
	for _, l := range lines {
		if strings.Contains(l, addr) {
			return true
		}
	}
	return false
}

func TestChiSquare(t *testing.T) {
	shares := map[string]float64{"a": 0.25, "b": 0.75}
	tests := []struct {
		counts map[string]int
		want   float64
	}{
		{map[string]int{"a": 250, "b": 750}, 0},
		{map[string]int{"a": 300, "b": 700}, 50.0*50/250 + 50.0*50/750},
		{map[string]int{"a": 250, "b": 740, "c": 10}, math.Inf(1)},
	}
	for _, tt := range tests {
		if got := chiSquare(tt.counts, shares); math.Abs(got-tt.want) > 1e-9 && !(math.IsInf(got, 1) && math.IsInf(tt.want, 1)) {
			t.Errorf("chiSquare(%v) = %v; want %v", tt.counts, got, tt.want)
		}
	}
}
