package cluster

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// offline returns a Cluster without memberlist: the state the delegate
// callbacks drive, for tests of what it accepts and keeps.
func offline(t *testing.T, name string, mod ...func(*Config)) *Cluster {
	t.Helper()
	cfg := Config{Node: name, Logger: testLogger()}
	for _, m := range mod {
		m(&cfg)
	}
	if err := cfg.defaults(); err != nil {
		t.Fatal(err)
	}
	return newCluster(cfg, &logWriter{log: cfg.Logger}, 4)
}

// announce makes c learn that node name at ip is alive with meta m, as
// memberlist's NotifyJoin or NotifyUpdate would tell it.
func announce(c *Cluster, name, ip string, m nodeMeta) {
	b, _ := encodeMeta(m)
	c.nodeEvent(&memberlist.Node{Name: name, Addr: net.ParseIP(ip), Port: 7946, Meta: b}, StateAlive)
}

// depart makes c learn that node name is gone, as NotifyLeave would.
func depart(c *Cluster, name string) {
	r := c.members[name]
	c.nodeEvent(&memberlist.Node{Name: name, Addr: net.IP(r.ip.AsSlice()), Port: 7946, Meta: r.meta}, StateDead)
}

func threeHosts() map[string]netip.Addr {
	return map[string]netip.Addr{
		"host-a": netip.MustParseAddr("198.18.0.1"),
		"host-b": netip.MustParseAddr("198.18.0.2"),
		"host-c": netip.MustParseAddr("198.18.0.3"),
	}
}

func TestMessageAcceptance(t *testing.T) {
	const incB, incC = 0xb0b, 0xc0c
	c := offline(t, "host-a")
	c.SetExpected("rev1", threeHosts())
	announce(c, "host-b", "198.18.0.2", nodeMeta{Incarnation: incB})
	announce(c, "host-c", "198.18.0.9", nodeMeta{Incarnation: incC}) // a Host's name from another address
	announce(c, "host-x", "198.18.0.4", nodeMeta{Incarnation: 0xa})  // no Host of that name
	announce(c, "laptop", "198.18.0.5", nodeMeta{Incarnation: 0x1, Observer: true})
	msg := func(kind byte, origin string, inc, seq uint64) message {
		return message{Kind: kind, Origin: origin, Inc: inc, Seq: seq, Payload: "x"}
	}
	tests := []struct {
		name string
		m    message
		want error
	}{
		{"from a host", msg(msgError, "host-b", incB, 5), nil},
		{"own message", msg(msgError, "host-a", c.incarnation, 1), errOwnMessage},
		{"unknown origin", msg(msgError, "host-z", 1, 1), errUnknownOrigin},
		{"wrong address", msg(msgError, "host-c", incC, 1), errStrangerOrigin},
		{"not a Host", msg(msgHint, "host-x", 0xa, 1), errStrangerOrigin},
		{"observer hint", msg(msgHint, "laptop", 1, 1), errStrangerOrigin},
		{"old incarnation", msg(msgError, "host-b", incB-1, 9), errOtherIncarnation},
		{"same counter again", msg(msgError, "host-b", incB, 5), errOldMessage},
		{"older counter", msg(msgError, "host-b", incB, 4), errOldMessage},
		{"other kind, lower counter", msg(msgHint, "host-b", incB, 3), nil},
		{"far future", msg(msgError, "host-b", incB, 5+maxSeqJump+1), errFarFuture},
		{"next", msg(msgError, "host-b", incB, 6), nil},
		{"observer leave", message{Kind: msgLeave, Origin: "laptop", Inc: 1, Seq: 2}, nil},
	}
	for _, tt := range tests {
		c.mu.Lock()
		_, err := c.admitLocked(tt.m)
		if err == nil {
			c.takeLocked(tt.m, c.now())
		}
		c.mu.Unlock()
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: admit(%+v) = %v; want %v", tt.name, tt.m, err, tt.want)
		}
	}
	// A restart announces a new incarnation: its counters start afresh.
	announce(c, "host-b", "198.18.0.2", nodeMeta{Incarnation: incB + 1})
	c.mu.Lock()
	_, err := c.admitLocked(msg(msgError, "host-b", incB+1, 1))
	c.mu.Unlock()
	if err != nil {
		t.Errorf("first message of a new incarnation: %v; want accepted", err)
	}
}

func TestStrangers(t *testing.T) {
	c := offline(t, "host-a")
	announce(c, "host-b", "198.18.0.2", nodeMeta{Incarnation: 1})
	announce(c, "host-c", "198.18.0.9", nodeMeta{Incarnation: 2})
	c.nodeEvent(&memberlist.Node{Name: "host-d", Addr: net.ParseIP("198.18.0.4"), Meta: []byte{1, 0}}, StateAlive)
	stranger := func() map[string]string {
		out := map[string]string{}
		for _, m := range c.Members() {
			out[m.Name] = m.Stranger
		}
		return out
	}
	if got := stranger(); got["host-b"] != "" || got["host-c"] != "" || !strings.Contains(got["host-d"], "meta not understood") {
		t.Errorf("before any specs, strangers = %q; want only host-d (old meta)", got)
	}
	c.SetExpected("1a2b3c4d5e", threeHosts())
	got := stranger()
	want := map[string]string{
		"host-a": "gossips from an unknown address, but Host host-a has address 198.18.0.1",
		"host-b": "",
		"host-c": "gossips from 198.18.0.9, but Host host-c has address 198.18.0.3",
		"host-d": "meta not understood: node meta version 1 not understood (this weir reads 2)",
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("stranger[%s] = %q; want %q", name, got[name], w)
		}
	}
	delete(c.expected.hosts, "host-b")
	if got := stranger()["host-b"]; got != "not a Host in revision 1a2b3c4" {
		t.Errorf("stranger[host-b] without its Host = %q", got)
	}
	if hosts := c.AliveHosts(); len(hosts) != 0 {
		t.Errorf("AliveHosts() = %v; want none (every member is a stranger)", hosts)
	}
	st := BuildStatus("", c.Members())
	if st.Converged || st.Reason != "no alive member" {
		t.Errorf("BuildStatus over strangers: converged %v reason %q; want no alive member", st.Converged, st.Reason)
	}
}

func TestStatePrunedWithTheMember(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	c := offline(t, "host-a", func(cfg *Config) { cfg.Now, cfg.ReapAfter = clk.Now, time.Hour })
	c.SetExpected("rev1", threeHosts())
	announce(c, "host-b", "198.18.0.2", nodeMeta{Incarnation: 7, HasError: true, ErrorCRC: errorCRC("boom")})
	announce(c, "host-c", "198.18.0.3", nodeMeta{Incarnation: 8})
	c.mu.Lock()
	c.takeLocked(message{Kind: msgError, Origin: "host-b", Inc: 7, Seq: 1, Payload: "boom"}, c.now())
	c.takeLocked(message{Kind: msgHint, Origin: "host-c", Inc: 8, Seq: 1, Payload: "rev2"}, c.now())
	c.takeLocked(message{Kind: msgLeave, Origin: "host-c", Inc: 8, Seq: 2}, c.now())
	c.mu.Unlock()
	if got := c.Members()[1].Error; got != "boom" {
		t.Fatalf("host-b's error = %q; want boom", got)
	}
	depart(c, "host-c")
	if r := c.members["host-c"]; r.state != StateLeft || r.origin.hint.seq != 0 || r.origin.leave != 2 {
		t.Errorf("host-c after leaving: state %s, origin %+v; want left with only its leave intent", r.state, r.origin)
	}
	// A restart (new incarnation) forgets what the previous run said.
	announce(c, "host-b", "198.18.0.2", nodeMeta{Incarnation: 9, HasError: true, ErrorCRC: errorCRC("boom")})
	if r := c.members["host-b"]; r.origin.err.seq != 0 || r.origin.top != 0 {
		t.Errorf("host-b after a restart: origin %+v; want empty", r.origin)
	}
	depart(c, "host-b")
	clk.Add(2 * time.Hour)
	c.reap()
	if len(c.members) != 0 {
		t.Errorf("after reap: %d member records; want none", len(c.members))
	}
}

func TestPushStateCarriesOnlyHosts(t *testing.T) {
	c := offline(t, "host-a")
	c.SetExpected("rev1", threeHosts())
	announce(c, "host-b", "198.18.0.2", nodeMeta{Incarnation: 7})
	announce(c, "host-x", "198.18.0.4", nodeMeta{Incarnation: 8})
	c.mu.Lock()
	c.takeLocked(message{Kind: msgError, Origin: "host-b", Inc: 7, Seq: 1, Payload: "boom"}, c.now())
	c.members["host-x"].origin.err = errRec{seq: 1, text: "forged"} // as if taken before host-x became a stranger
	c.mu.Unlock()
	if err := c.SetLocal(NodeState{Error: "mine"}); err != nil {
		t.Fatal(err)
	}
	st, err := decodePushState(c.localState())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range st.Messages {
		got = append(got, m.Msg.Origin+":"+m.Msg.Payload)
	}
	if strings.Join(got, ",") != "host-a:mine,host-b:boom" {
		t.Errorf("push/pull state messages = %v; want host-a:mine, host-b:boom", got)
	}
}

// TestStrangerNeverCounts runs real nodes: host-c gossips from 127.0.0.2
// while the specs put it at 127.0.0.3, and host-x is no Host at all. Both
// are listed as strangers, never counted, and their hints and error texts
// are refused.
func TestStrangerNeverCounts(t *testing.T) {
	a := start(t, testConfig("host-a"))
	b := start(t, testConfig("host-b", a.LocalAddr()))
	cc := testConfig("host-c", a.LocalAddr())
	cc.Bind = "127.0.0.2:0"
	c := start(t, cc)
	x := start(t, testConfig("host-x", a.LocalAddr()))
	eventually(t, 5*time.Second, "all four joined", hostsAre(a, "host-a", "host-b", "host-c", "host-x"))
	lo := netip.MustParseAddr("127.0.0.1")
	a.SetExpected("1a2b3c4", map[string]netip.Addr{"host-a": lo, "host-b": lo, "host-c": netip.MustParseAddr("127.0.0.3")})
	if got := a.AliveHosts(); strings.Join(got, ",") != "host-a,host-b" {
		t.Errorf("AliveHosts() = %v; want host-a, host-b", got)
	}
	for _, n := range []*Cluster{c, x} {
		n.Hint("rev-from-" + n.cfg.Node)
		if err := n.SetLocal(NodeState{Revision: "ab", Error: "run curl … | sh"}); err != nil {
			t.Fatal(err)
		}
	}
	b.Hint("rev-from-host-b")
	select {
	case got := <-a.Hints():
		if got != "rev-from-host-b" {
			t.Errorf("host-a got hint %q; want only host-b's", got)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("host-a got no hint from host-b")
	}
	eventually(t, 3*time.Second, "strangers' states arrive", func() (bool, string) {
		ms := a.Members()
		return ms[2].Revision == "ab" && ms[3].Revision == "ab", ""
	})
	for _, m := range a.Members()[2:] {
		if m.Stranger == "" || m.Counts() || strings.Contains(m.Error, "curl") {
			t.Errorf("host-a lists %s as %+v; want a stranger whose error text was refused", m.Name, m)
		}
	}
	select {
	case got := <-a.Hints():
		t.Errorf("host-a took hint %q from a stranger", got)
	default:
	}
}

// TestStrangerDoesNotSettle: a node that knows its Hosts is not settled by
// a stranger joining it, only by a host.
func TestStrangerDoesNotSettle(t *testing.T) {
	c := offline(t, "host-a", func(cfg *Config) { cfg.SettleTime = time.Hour })
	c.SetExpected("rev1", threeHosts())
	announce(c, "host-x", "198.18.0.4", nodeMeta{Incarnation: 1})
	announce(c, "host-c", "198.18.0.9", nodeMeta{Incarnation: 2})
	if c.Settled() {
		t.Fatal("Settled() = true after only strangers joined")
	}
	announce(c, "host-b", "198.18.0.2", nodeMeta{Incarnation: 3})
	if !c.Settled() {
		t.Fatal("Settled() = false after host-b joined")
	}
}
