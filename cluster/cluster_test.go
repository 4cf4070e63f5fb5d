package cluster

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"weir/internal/testsupport"
)

// fastTimings shrinks memberlist's intervals so failure detection takes
// about a second on loopback instead of tens of seconds.
func fastTimings(mc *memberlist.Config) {
	mc.ProbeInterval = 100 * time.Millisecond
	mc.ProbeTimeout = 50 * time.Millisecond
	mc.GossipInterval = 20 * time.Millisecond
	mc.PushPullInterval = time.Second
	mc.TCPTimeout = 500 * time.Millisecond
	mc.SuspicionMult = 3
	mc.SuspicionMaxTimeoutMult = 3
	// Long on purpose: without DeadNodeReclaimTime a restarted node on a new
	// address would wait this long, which TestRestartRejoinsAtOnce rules out.
	mc.GossipToTheDeadTime = 30 * time.Second
}

// testLogger discards logs unless WEIR_TEST_LOG is set, because memberlist
// goroutines may still log after a test has finished.
func testLogger() *slog.Logger {
	if os.Getenv("WEIR_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func testConfig(name string, join ...string) Config {
	return Config{
		Node:           name,
		Bind:           "127.0.0.1:0",
		Join:           join,
		Label:          "test",
		Profile:        "local",
		SettleTime:     time.Hour,
		Logger:         testLogger(),
		Tune:           fastTimings,
		Debounce:       20 * time.Millisecond,
		DebounceMax:    200 * time.Millisecond,
		JoinBackoff:    50 * time.Millisecond,
		JoinBackoffMax: 200 * time.Millisecond,
		RejoinInterval: 200 * time.Millisecond,
	}
}

func start(t testing.TB, cfg Config) *Cluster {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", cfg.Node, err)
	}
	t.Cleanup(func() { _ = c.Shutdown() })
	return c
}

// eventually fails the test with what and what cond last saw unless cond
// holds within the deadline; it returns how long that took.
func eventually(t testing.TB, within time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	return testsupport.WaitFor(t, within, 10*time.Millisecond, what, func() error {
		if ok, got := cond(); !ok {
			return fmt.Errorf("last saw %s", got)
		}
		return nil
	})
}

func hostsAre(c *Cluster, want ...string) func() (bool, string) {
	return func() (bool, string) {
		got := c.AliveHosts()
		return slices.Equal(got, want), fmt.Sprint(got)
	}
}

func stateOf(c *Cluster, name string) State {
	for _, m := range c.Members() {
		if m.Name == name {
			return m.State
		}
	}
	return ""
}

func stateIs(c *Cluster, name string, want State) func() (bool, string) {
	return func() (bool, string) {
		got := stateOf(c, name)
		return got == want, fmt.Sprintf("%s is %q in %s's view", name, got, c.cfg.Node)
	}
}

// trio starts host-a, then host-b and host-c joining it, and waits until all
// three see each other.
func trio(t *testing.T) (a, b, c *Cluster) {
	t.Helper()
	a = start(t, testConfig("host-a"))
	b = start(t, testConfig("host-b", a.LocalAddr()))
	c = start(t, testConfig("host-c", a.LocalAddr()))
	for _, n := range []*Cluster{a, b, c} {
		eventually(t, 5*time.Second, n.cfg.Node+" sees all three", hostsAre(n, "host-a", "host-b", "host-c"))
	}
	return a, b, c
}

func TestJoin(t *testing.T) {
	a, b, c := trio(t)
	for _, n := range []*Cluster{a, b, c} {
		if !n.Settled() {
			t.Errorf("%s.Settled() = false after joining peers", n.cfg.Node)
		}
		ms := n.Members()
		if len(ms) != 3 {
			t.Fatalf("%s.Members() = %d members; want 3", n.cfg.Node, len(ms))
		}
		for _, m := range ms {
			if m.Address == "" || !strings.HasPrefix(m.Address, "127.0.0.1:") {
				t.Errorf("%s sees %s at %q; want 127.0.0.1:PORT", n.cfg.Node, m.Name, m.Address)
			}
		}
	}
	if got := a.Members()[1].Address; got != b.LocalAddr() {
		t.Errorf("host-a sees host-b at %s; want %s", got, b.LocalAddr())
	}
}

func TestGracefulLeave(t *testing.T) {
	a, b, c := trio(t)
	if err := c.Leave(2 * time.Second); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	if got := stateOf(c, "host-c"); got != StateLeft {
		t.Errorf("host-c sees itself %q after Leave; want left", got)
	}
	_ = c.Shutdown()
	for _, n := range []*Cluster{a, b} {
		eventually(t, 5*time.Second, "host-c left in "+n.cfg.Node+"'s view", stateIs(n, "host-c", StateLeft))
		if got := n.AliveHosts(); !slices.Equal(got, []string{"host-a", "host-b"}) {
			t.Errorf("%s.AliveHosts() = %v after host-c left", n.cfg.Node, got)
		}
	}
	if err := c.SetLocal(NodeState{Revision: "ab"}); err == nil {
		t.Errorf("SetLocal after Leave = nil; want ErrClosed")
	}
}

func TestKilledNodeBecomesDead(t *testing.T) {
	a, b, c := trio(t)
	_ = c.Shutdown() // no Leave: to the others it crashed
	for _, n := range []*Cluster{a, b} {
		took := eventually(t, 10*time.Second, "host-c dead in "+n.cfg.Node+"'s view", stateIs(n, "host-c", StateDead))
		t.Logf("%s saw host-c dead after %v", n.cfg.Node, took)
		if got := n.AliveHosts(); !slices.Equal(got, []string{"host-a", "host-b"}) {
			t.Errorf("%s.AliveHosts() = %v with host-c dead", n.cfg.Node, got)
		}
	}
}

func TestRestartRejoinsAtOnce(t *testing.T) {
	for _, samePort := range []bool{false, true} {
		t.Run(fmt.Sprintf("samePort=%v", samePort), func(t *testing.T) {
			a, b, c := trio(t)
			addr := c.LocalAddr()
			_ = c.Shutdown()
			eventually(t, 10*time.Second, "host-c dead", stateIs(a, "host-c", StateDead))

			cfg := testConfig("host-c", a.LocalAddr())
			if samePort {
				cfg.Bind = addr
			}
			c2 := start(t, cfg)
			// memberlist keeps a dead node GossipToTheDeadTime (30s here);
			// rejoining must not wait for that.
			for _, n := range []*Cluster{a, b} {
				took := eventually(t, 3*time.Second, "restarted host-c alive in "+n.cfg.Node+"'s view", stateIs(n, "host-c", StateAlive))
				t.Logf("%s saw restarted host-c after %v", n.cfg.Node, took)
			}
			eventually(t, 3*time.Second, "restarted host-c sees everyone", hostsAre(c2, "host-a", "host-b", "host-c"))
			for _, m := range a.Members() {
				if m.Name == "host-c" && m.Address != c2.LocalAddr() {
					t.Errorf("host-a sees host-c at %s; want the new address %s", m.Address, c2.LocalAddr())
				}
			}
		})
	}
}

// neverSees fails if any of watchers lists any of names while the outsiders'
// join loops retry for window.
func neverSees(t *testing.T, window time.Duration, watchers []*Cluster, names ...string) {
	t.Helper()
	deadline := time.Now().Add(window)
	for time.Now().Before(deadline) {
		for _, w := range watchers {
			for _, m := range w.Members() {
				if slices.Contains(names, m.Name) {
					t.Fatalf("%s lists %s (%s); it must never appear", w.cfg.Node, m.Name, m.State)
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestWrongKeyKeptOut(t *testing.T) {
	k1, k2, k3 := key(1), key(2), key(3)
	withKeys := func(cfg Config, keys ...[]byte) Config { cfg.Keys = keys; return cfg }
	a := start(t, withKeys(testConfig("host-a"), k1, k2))
	b := start(t, withKeys(testConfig("host-b", a.LocalAddr()), k1))
	// Mid-rotation: encrypts with k2, still accepts k1; host-a accepts both.
	r := start(t, withKeys(testConfig("host-r", a.LocalAddr()), k2, k1))
	eventually(t, 5*time.Second, "keyed nodes see each other", hostsAre(a, "host-a", "host-b", "host-r"))

	wrong := start(t, withKeys(testConfig("host-wrong", a.LocalAddr(), b.LocalAddr()), k3))
	none := start(t, testConfig("host-none", a.LocalAddr(), b.LocalAddr()))
	neverSees(t, 1500*time.Millisecond, []*Cluster{a, b, r}, "host-wrong", "host-none")
	for _, n := range []*Cluster{wrong, none} {
		if got := n.AliveHosts(); len(got) != 1 {
			t.Errorf("%s.AliveHosts() = %v; want only itself", n.cfg.Node, got)
		}
		if n.Settled() {
			t.Errorf("%s.Settled() = true though no peer accepted it", n.cfg.Node)
		}
	}
}

func key(seed byte) []byte { return bytes.Repeat([]byte{seed}, 32) }

func TestLabelsKeptApart(t *testing.T) {
	blue := func(name string, join ...string) Config { c := testConfig(name, join...); c.Label = "blue"; return c }
	green := func(name string, join ...string) Config { c := testConfig(name, join...); c.Label = "green"; return c }
	b1 := start(t, blue("blue-1"))
	b2 := start(t, blue("blue-2", b1.LocalAddr()))
	g1 := start(t, green("green-1", b1.LocalAddr())) // wrong cluster's seed
	g2 := start(t, green("green-2", g1.LocalAddr(), b2.LocalAddr()))
	eventually(t, 5*time.Second, "blue cluster formed", hostsAre(b1, "blue-1", "blue-2"))
	eventually(t, 5*time.Second, "green cluster formed", hostsAre(g2, "green-1", "green-2"))
	neverSees(t, time.Second, []*Cluster{b1, b2}, "green-1", "green-2")
	neverSees(t, 200*time.Millisecond, []*Cluster{g1, g2}, "blue-1", "blue-2")
}

func TestHintsPropagate(t *testing.T) {
	a, b, c := trio(t)
	a.Hint("rev-1")
	for _, n := range []*Cluster{b, c} {
		select {
		case got := <-n.Hints():
			if got != "rev-1" {
				t.Errorf("%s got hint %q; want rev-1", n.cfg.Node, got)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("%s got no hint", n.cfg.Node)
		}
	}
	// b fetching rev-1 because of the hint must not hint it back to everyone.
	b.Hint("rev-1")
	a.Hint("rev-2")
	select {
	case got := <-c.Hints():
		if got != "rev-2" {
			t.Errorf("host-c got hint %q after rev-1; want rev-2 (rev-1 only once)", got)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("host-c got no second hint")
	}
	select {
	case got := <-a.Hints():
		t.Errorf("host-a got hint %q; a node must not get its own hints", got)
	case <-time.After(300 * time.Millisecond):
	}
}

// TestHintReachesLateJoiner checks the push/pull path: a node that joins
// after a hint was gossiped still learns it when it syncs.
func TestHintReachesLateJoiner(t *testing.T) {
	a := start(t, testConfig("host-a"))
	b := start(t, testConfig("host-b", a.LocalAddr()))
	eventually(t, 5*time.Second, "pair formed", hostsAre(a, "host-a", "host-b"))
	a.Hint("rev-9")
	select {
	case <-b.Hints():
	case <-time.After(3 * time.Second):
		t.Fatal("host-b got no hint")
	}
	late := start(t, testConfig("host-late", b.LocalAddr()))
	select {
	case got := <-late.Hints():
		if got != "rev-9" {
			t.Errorf("late joiner got %q; want rev-9", got)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("late joiner got no hint from push/pull")
	}
}

func TestObserversExcluded(t *testing.T) {
	a := start(t, testConfig("host-a"))
	b := start(t, testConfig("host-b", a.LocalAddr()))
	ocfg := testConfig("laptop", a.LocalAddr())
	ocfg.Observer = true
	o := start(t, ocfg)
	eventually(t, 5*time.Second, "observer sees the hosts", func() (bool, string) {
		return len(o.Members()) == 3, fmt.Sprint(o.Members())
	})
	eventually(t, 5*time.Second, "host-a lists the observer", func() (bool, string) {
		return stateOf(a, "laptop") == StateAlive, fmt.Sprint(a.Members())
	})
	for _, n := range []*Cluster{a, b, o} {
		if got := n.AliveHosts(); !slices.Equal(got, []string{"host-a", "host-b"}) {
			t.Errorf("%s.AliveHosts() = %v; want [host-a host-b] without the observer", n.cfg.Node, got)
		}
	}
	for _, m := range a.Members() {
		if m.Name == "laptop" && !m.Observer {
			t.Errorf("host-a sees laptop without the observer flag")
		}
	}
	s := BuildStatus("", o.Members())
	for _, m := range s.Members {
		if m.Name == "laptop" {
			t.Errorf("BuildStatus lists the observer")
		}
	}
	// An observer saying goodbye leaves no trace.
	if err := o.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "observer forgotten after leaving", func() (bool, string) {
		return stateOf(a, "laptop") == "", fmt.Sprint(stateOf(a, "laptop"))
	})
}

// fakeClock is a settable clock for Settled.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (f *fakeClock) Now() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.now }

func (f *fakeClock) Add(d time.Duration) { f.mu.Lock(); f.now = f.now.Add(d); f.mu.Unlock() }

func TestSettled(t *testing.T) {
	t.Run("alone until the settle time passes", func(t *testing.T) {
		clk := &fakeClock{now: time.Unix(1_700_000_000, 0)}
		cfg := testConfig("host-a", "127.0.0.1:1") // a seed nobody answers
		cfg.SettleTime, cfg.Now = 10*time.Second, clk.Now
		a := start(t, cfg)
		if a.Settled() {
			t.Fatal("Settled() = true at start with an unreachable seed")
		}
		clk.Add(9 * time.Second)
		if a.Settled() {
			t.Fatal("Settled() = true before SettleTime")
		}
		clk.Add(time.Second)
		if !a.Settled() {
			t.Fatal("Settled() = false once SettleTime has passed")
		}
	})
	t.Run("negative settle time is at once", func(t *testing.T) {
		cfg := testConfig("host-a")
		cfg.SettleTime = -1
		if a := start(t, cfg); !a.Settled() {
			t.Fatal("Settled() = false with SettleTime < 0")
		}
	})
	t.Run("settle period fires Changes", func(t *testing.T) {
		cfg := testConfig("host-a")
		cfg.SettleTime = 100 * time.Millisecond
		a := start(t, cfg)
		select {
		case <-a.Changes():
		case <-time.After(2 * time.Second):
			t.Fatal("no Changes signal when the settle period ended")
		}
		if !a.Settled() {
			t.Fatal("Settled() = false after the settle period")
		}
	})
	t.Run("an observer does not settle a node, a peer does", func(t *testing.T) {
		a := start(t, testConfig("host-a")) // no seeds, SettleTime 1h
		ocfg := testConfig("laptop", a.LocalAddr())
		ocfg.Observer = true
		start(t, ocfg)
		eventually(t, 5*time.Second, "observer joined", func() (bool, string) { return stateOf(a, "laptop") == StateAlive, "" })
		if a.Settled() {
			t.Fatal("Settled() = true because an observer joined")
		}
		b := start(t, testConfig("host-b", a.LocalAddr()))
		eventually(t, 5*time.Second, "host-a settled by host-b joining it", func() (bool, string) { return a.Settled(), "unsettled" })
		eventually(t, 5*time.Second, "host-b settled by joining", func() (bool, string) { return b.Settled(), "unsettled" })
	})
}

func TestSeedsRetriedUntilReachable(t *testing.T) {
	// host-b starts first with host-a's future address as its seed.
	probe := start(t, testConfig("probe"))
	addr := probe.LocalAddr()
	_ = probe.Shutdown()
	b := start(t, testConfig("host-b", addr))
	time.Sleep(300 * time.Millisecond) // let a few join attempts fail
	cfg := testConfig("host-a")
	cfg.Bind = addr
	a := start(t, cfg)
	eventually(t, 5*time.Second, "host-b joins host-a once it is up", hostsAre(b, "host-a", "host-b"))
	eventually(t, 5*time.Second, "host-a sees host-b", hostsAre(a, "host-a", "host-b"))
}

func TestStatePropagates(t *testing.T) {
	a, b, c := trio(t)
	drain(b.Changes())
	st := NodeState{Revision: "dir:" + strings.Repeat("ab", 32), Digest: strings.Repeat("cd", 32), Balancers: 2, Rules: 6, Error: "specs/x.yaml:3: unknown field \"foo\""}
	if err := a.SetLocal(st); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*Cluster{b, c} {
		eventually(t, 5*time.Second, n.cfg.Node+" sees host-a's state and error text", func() (bool, string) {
			for _, m := range n.Members() {
				if m.Name == "host-a" {
					return m.NodeState == st, fmt.Sprintf("%+v", m.NodeState)
				}
			}
			return false, "host-a missing"
		})
	}
	select {
	case <-b.Changes():
	case <-time.After(2 * time.Second):
		t.Error("no Changes signal after host-a's state changed")
	}
	st.Error = ""
	if err := a.SetLocal(st); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "error cleared on host-b", func() (bool, string) {
		for _, m := range b.Members() {
			if m.Name == "host-a" {
				return m.NodeState == st, fmt.Sprintf("%+v", m.NodeState)
			}
		}
		return false, "host-a missing"
	})
	if got := a.Members()[0].NodeState; got != st {
		t.Errorf("host-a sees itself as %+v; want %+v", got, st)
	}
	if err := a.SetLocal(NodeState{Revision: strings.Repeat("z", maxMetaString+1)}); err == nil {
		t.Error("SetLocal with an oversized revision = nil; want an error")
	}
}

func TestChangesDebounced(t *testing.T) {
	a := start(t, testConfig("host-a"))
	drain(a.Changes())
	for i := range 4 {
		start(t, testConfig(fmt.Sprintf("host-%d", i), a.LocalAddr()))
	}
	eventually(t, 5*time.Second, "all joined", func() (bool, string) { return len(a.AliveHosts()) == 5, fmt.Sprint(a.AliveHosts()) })
	select {
	case <-a.Changes():
	case <-time.After(time.Second):
		t.Fatal("no Changes signal after four joins")
	}
	// Four joins within a few milliseconds coalesce into few signals, and the
	// channel never holds more than one.
	if n := len(a.Changes()); n > 1 {
		t.Errorf("Changes() buffered %d signals; want at most 1", n)
	}
}

func drain(ch <-chan struct{}) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no name", func(c *Config) { c.Node = "" }, "node name is empty"},
		{"bad bind", func(c *Config) { c.Bind = "nohost:1" }, "not an IP address"},
		{"bad port", func(c *Config) { c.Bind = "127.0.0.1:99999" }, "bad port"},
		{"bad profile", func(c *Config) { c.Profile = "moon" }, "gossip profile \"moon\""},
		{"bad key", func(c *Config) { c.Keys = [][]byte{[]byte("short")} }, "gossip key 1"},
		{"long label", func(c *Config) { c.Label = strings.Repeat("l", 256) }, "longer than 255"},
	}
	for _, tt := range tests {
		cfg := testConfig("host-a")
		tt.mod(&cfg)
		c, err := New(cfg)
		if err == nil {
			_ = c.Shutdown()
			t.Errorf("New(%s) = nil error; want %q", tt.name, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%s) error = %v; want it to contain %q", tt.name, err, tt.want)
		}
	}
}

func TestSplitIPPort(t *testing.T) {
	tests := []struct {
		in       string
		wantIP   string
		wantPort int
	}{
		{"198.18.0.1:7000", "198.18.0.1", 7000},
		{"198.18.0.1", "198.18.0.1", 7946},
		{"[::1]:80", "::1", 80},
		{"::1", "::1", 7946},
	}
	for _, tt := range tests {
		ip, port, err := splitIPPort(tt.in)
		if err != nil || ip != tt.wantIP || port != tt.wantPort {
			t.Errorf("splitIPPort(%q) = %q, %d, %v; want %q, %d", tt.in, ip, port, err, tt.wantIP, tt.wantPort)
		}
	}
	if got := withDefaultPort("10.0.0.1"); got != "10.0.0.1:7946" {
		t.Errorf("withDefaultPort(10.0.0.1) = %q", got)
	}
}
