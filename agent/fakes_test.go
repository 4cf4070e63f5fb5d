package agent

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"weir/agent/source"
	"weir/cluster"
	"weir/internal/testsupport"
	"weir/reconcile/plan"
	"weir/reconcile/render"
	"weir/spec"
)

// fakeClock is a Clock that only moves when a test advances it.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, fakeWaiter{at: c.now.Add(d), ch: ch})
	return ch
}

// Advance moves the clock by d and fires every timer that came due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	keep := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			keep = append(keep, w)
		}
	}
	c.waiters = keep
}

// fakeSource serves an in-memory tree; tests replace it and call changed.
type fakeSource struct {
	mu      sync.Mutex
	files   fstest.MapFS
	err     error
	fetches int
	changed func()
	watchMu sync.Mutex
	// hang, when set, makes Latest wait until it is closed, as a Git server
	// stopped with SIGSTOP makes a read wait; with honorCtx the wait also
	// ends with the context, as go-git's transports end it.
	hang     chan struct{}
	honorCtx bool
}

func newFakeSource(spec string) *fakeSource {
	s := &fakeSource{}
	s.set(spec)
	return s
}

// set replaces the tree with one file, spec.yaml.
func (s *fakeSource) set(text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files = fstest.MapFS{"spec.yaml": {Data: []byte(text)}}
	s.err = nil
}

// hangs makes every later Latest wait until the returned function is
// called; with honorCtx a wait also ends with its context.
func (s *fakeSource) hangs(honorCtx bool) (release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan struct{})
	s.hang, s.honorCtx = ch, honorCtx
	return sync.OnceFunc(func() {
		s.mu.Lock()
		s.hang = nil
		s.mu.Unlock()
		close(ch)
	})
}

func (s *fakeSource) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

func (s *fakeSource) Latest(ctx context.Context) (source.Snapshot, error) {
	s.mu.Lock()
	hang, honorCtx := s.hang, s.honorCtx
	s.fetches++
	s.mu.Unlock()
	if hang != nil {
		done := ctx.Done()
		if !honorCtx {
			done = nil
		}
		select {
		case <-hang:
		case <-done:
			return source.Snapshot{}, fmt.Errorf("reading from git server: %w", ctx.Err())
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return source.Snapshot{}, s.err
	}
	return source.Snapshot{Revision: revisionOf(string(s.files["spec.yaml"].Data)), FS: s.files}, nil
}

func (s *fakeSource) Watch(ctx context.Context, changed func()) {
	s.watchMu.Lock()
	s.changed = changed
	s.watchMu.Unlock()
	<-ctx.Done()
}

// notify calls the agent's changed callback, as a settled file event would,
// waiting for Watch to have started.
func (s *fakeSource) notify() {
	for i := 0; ; i++ {
		s.watchMu.Lock()
		f := s.changed
		s.watchMu.Unlock()
		if f != nil {
			f()
			return
		}
		if i > 10000 {
			panic("fakeSource.notify: Watch never started")
		}
		time.Sleep(time.Millisecond)
	}
}

func (s *fakeSource) fetchCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetches
}

func revisionOf(text string) string {
	return fmt.Sprintf("dir:%x", sha256.Sum256([]byte(text)))[:16]
}

// fakeLoad parses a line format standing in for the YAML loader:
//
//	host NAME GUEST=SERVICE[,SERVICE] ...
//	balancer NAME SOURCE TARGET
//
// and reports errors as FILE:LINE: message, like spec.Load.
func fakeLoad(fsys fs.FS) (*spec.Spec, error) {
	b, err := fs.ReadFile(fsys, "spec.yaml")
	if err != nil {
		return nil, err
	}
	s := &spec.Spec{}
	var errs []string
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for line := 1; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 0 || strings.HasPrefix(f[0], "#"):
		case f[0] == "host" && len(f) >= 2:
			h := spec.Host{Name: f[1], Address: netip.MustParseAddr("198.18.0.1"), Pos: spec.Pos{File: "spec.yaml", Line: line}}
			for _, g := range f[2:] {
				name, svcs, ok := strings.Cut(g, "=")
				if !ok {
					errs = append(errs, fmt.Sprintf("spec.yaml:%d: guest %q has no services", line, g))
					continue
				}
				h.Guests = append(h.Guests, spec.Guest{Name: name, Host: f[1], Services: strings.Split(svcs, ",")})
			}
			s.Hosts = append(s.Hosts, h)
		case f[0] == "balancer" && len(f) == 4:
			s.Balancers = append(s.Balancers, spec.Balancer{Name: f[1], Source: f[2], Target: f[3]})
		default:
			errs = append(errs, fmt.Sprintf("spec.yaml:%d: cannot parse %q", line, sc.Text()))
		}
	}
	if errs != nil {
		return nil, errors.New(strings.Join(errs, "\n"))
	}
	return s, nil
}

// fakePlan stands in for reconcile's Assign+Render: on a host running a
// balancer's source, one chain per balancer with one rule per target guest on
// an alive host, in (host, guest) order.
func fakePlan(s *spec.Spec, alive []string, _ plan.Health, node string) Desired {
	rs := &render.Ruleset{}
	t := render.Table{Name: "nat"}
	h := sha256.New()
	fmt.Fprintln(h, alive)
	bals := 0
	for _, b := range s.Balancers {
		var targets []string
		setting := false
		for _, g := range s.Guests() {
			if slices.Contains(g.Services, b.Source) && g.Host == node {
				setting = true
			}
			if slices.Contains(g.Services, b.Target) && slices.Contains(alive, g.Host) {
				targets = append(targets, g.Name)
			}
		}
		fmt.Fprintln(h, b.Name, targets)
		if !setting {
			continue
		}
		bals++
		c := render.Chain{Name: "WEIR-" + b.Name}
		for _, tg := range targets {
			c.Rules = append(c.Rules, "-j DNAT-to-"+tg)
		}
		t.Chains = append(t.Chains, c)
	}
	rules := 0
	for _, c := range t.Chains {
		rules += len(c.Rules)
	}
	rs.Tables = []render.Table{t}
	return Desired{Digest: fmt.Sprintf("%x", h.Sum(nil))[:12], Rulesets: render.Rulesets{rs, {Family: spec.IPv6}}, Balancers: bals, Rules: rules}
}

// fakeSyncer records what is "in the kernel".
type fakeSyncer struct {
	mu       sync.Mutex
	live     *render.Ruleset
	applies  int
	failNext error
	drifted  bool
	checks   int
	// stallNext makes the next Apply wait for its context to end, as an
	// iptables-restore that waits for the xtables lock does.
	stallNext bool
	// With clk set, each Reconcile takes cost on it and is noted in checkedAt.
	clk       *fakeClock
	cost      time.Duration
	checkedAt []time.Time
}

func (f *fakeSyncer) Apply(ctx context.Context, rss render.Rulesets) error {
	rs := rss[spec.IPv4]
	f.mu.Lock()
	stall := f.stallNext
	f.stallNext = false
	f.mu.Unlock()
	if stall {
		<-ctx.Done()
		return fmt.Errorf("iptables-restore: %w", ctx.Err())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applies++
	if f.failNext != nil {
		err := f.failNext
		f.failNext = nil
		return err
	}
	f.live = rs
	return nil
}

func (f *fakeSyncer) Reconcile(ctx context.Context) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checks++
	if f.clk != nil {
		f.checkedAt = append(f.checkedAt, f.clk.Now())
		f.clk.Advance(f.cost)
	}
	d := f.drifted
	f.drifted = false
	return d, nil
}

// rules returns the live rules of chain as "target" names, or nil.
func (f *fakeSyncer) rules(chain string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.live == nil {
		return nil
	}
	var out []string
	for _, t := range f.live.Tables {
		for _, c := range t.Chains {
			if c.Name == chain {
				for _, r := range c.Rules {
					out = append(out, strings.TrimPrefix(r, "-j DNAT-to-"))
				}
			}
		}
	}
	return out
}

func (f *fakeSyncer) applyCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applies
}

// fakeCluster is a membership the test sets.
type fakeCluster struct {
	mu      sync.Mutex
	alive   []string
	settled bool
	local   []cluster.NodeState
	hinted  []string
	left    bool
	changes chan struct{}
	hints   chan string
	members []cluster.Member
	// expected is what SetExpected was last told, by revision.
	expected    map[string]netip.Addr
	expectedRev string
	// node is the agent's own name: SetHealth reports under it. reports
	// are the other hosts' failing checks, as gossip would deliver them.
	node    string
	own     []spec.CheckID
	reports map[string][]spec.CheckID
}

func newFakeCluster(settled bool, alive ...string) *fakeCluster {
	return &fakeCluster{node: "host-a", alive: alive, settled: settled, changes: make(chan struct{}, 1), hints: make(chan string, 1)}
}

func (c *fakeCluster) SetLocal(ns cluster.NodeState) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.local = append(c.local, ns)
	return nil
}

func (c *fakeCluster) Members() []cluster.Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.members)
}

func (c *fakeCluster) AliveHosts() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.alive)
}

func (c *fakeCluster) SetExpected(rev string, hosts map[string]netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expectedRev, c.expected = rev, hosts
}

func (c *fakeCluster) Settled() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.settled
}

func (c *fakeCluster) Changes() <-chan struct{} { return c.changes }
func (c *fakeCluster) Hints() <-chan string     { return c.hints }

func (c *fakeCluster) Hint(rev string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hinted = append(c.hinted, rev)
}

func (c *fakeCluster) Leave(time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.left = true
	return nil
}

func (c *fakeCluster) SetHealth(ids []spec.CheckID) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.own = slices.Clone(ids)
	return nil
}

func (c *fakeCluster) UnhealthyChecks() map[string][]spec.CheckID {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string][]spec.CheckID{}
	for h, ids := range c.reports {
		out[h] = slices.Clone(ids)
	}
	if len(c.own) > 0 {
		out[c.node] = slices.Clone(c.own)
	}
	return out
}

// report makes host report ids failing and signals a change, as gossip
// would.
func (c *fakeCluster) report(host string, ids ...spec.CheckID) {
	c.mu.Lock()
	if c.reports == nil {
		c.reports = map[string][]spec.CheckID{}
	}
	c.reports[host] = ids
	c.mu.Unlock()
	select {
	case c.changes <- struct{}{}:
	default:
	}
}

// ownReport returns what the agent last reported with SetHealth.
func (c *fakeCluster) ownReport() []spec.CheckID {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.own)
}

// setAlive changes membership and signals it.
func (c *fakeCluster) setAlive(alive ...string) {
	c.mu.Lock()
	c.alive = alive
	c.mu.Unlock()
	select {
	case c.changes <- struct{}{}:
	default:
	}
}

func (c *fakeCluster) lastLocal() cluster.NodeState {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.local) == 0 {
		return cluster.NodeState{}
	}
	return c.local[len(c.local)-1]
}

func (c *fakeCluster) hintList() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.hinted)
}

// fakeStatus lists every member, observers included, and calls the cluster
// converged when it has any.
func fakeStatus(rev string, members []cluster.Member) cluster.Status {
	s := cluster.Status{Revision: rev, Converged: len(members) > 0, Members: []cluster.MemberStatus{}}
	for _, m := range members {
		s.Members = append(s.Members, cluster.MemberStatus{Name: m.Name, Address: m.Address, State: string(m.State)})
	}
	return s
}

// waitFor fails the test with what unless cond holds within 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testsupport.WaitFor(t, 10*time.Second, time.Millisecond, what, testsupport.Until(cond))
}

// waitAdvancing is waitFor advancing the fake clock by step between polls,
// so timers the loop registers late still fire.
func waitAdvancing(t *testing.T, clk *fakeClock, step time.Duration, what string, cond func() bool) {
	t.Helper()
	waitFor(t, what, func() bool {
		if cond() {
			return true
		}
		clk.Advance(step)
		return false
	})
}
