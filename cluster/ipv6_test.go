package cluster

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestJoinIPv6 runs three nodes on IPv6 loopback, as agents started with
// --bind [fd00:18::1]:7946 gossip over their hosts' IPv6 addresses: they
// join by "[IP]:PORT" and by a bare IP with the port given apart, see each
// other at bracketed addresses, and count as hosts of Host addresses given
// as IPv6.
func TestJoinIPv6(t *testing.T) {
	cfg := func(name string, join ...string) Config {
		c := testConfig(name, join...)
		c.Bind = "[::1]:0"
		return c
	}
	a := start(t, cfg("host-a"))
	if !strings.HasPrefix(a.LocalAddr(), "[::1]:") {
		t.Fatalf("LocalAddr() = %q; want [::1]:PORT", a.LocalAddr())
	}
	b := start(t, cfg("host-b", a.LocalAddr()))
	c := start(t, cfg("host-c", " "+a.LocalAddr()+" "))
	for _, n := range []*Cluster{a, b, c} {
		eventually(t, 5*time.Second, n.cfg.Node+" sees all three", hostsAre(n, "host-a", "host-b", "host-c"))
		for _, m := range n.Members() {
			if !strings.HasPrefix(m.Address, "[::1]:") {
				t.Errorf("%s sees %s at %q; want [::1]:PORT", n.cfg.Node, m.Name, m.Address)
			}
		}
	}
	lo := netip.MustParseAddr("::1")
	a.SetExpected("rev", map[string]netip.Addr{"host-a": lo, "host-b": lo, "host-c": lo})
	eventually(t, 5*time.Second, "hosts at ::1 count", hostsAre(a, "host-a", "host-b", "host-c"))
	a.SetExpected("rev", map[string]netip.Addr{"host-a": lo, "host-b": lo, "host-c": netip.MustParseAddr("fd00:18::3")})
	eventually(t, 5*time.Second, "host-c at another address is a stranger", hostsAre(a, "host-a", "host-b"))
}

func TestIPv6Addresses(t *testing.T) {
	for _, tt := range []struct {
		in       string
		wantIP   string
		wantPort int
	}{
		{"[fd00:18::1]:7946", "fd00:18::1", 7946},
		{"[fd00:18::1]", "fd00:18::1", 7946},
		{"fd00:18::1", "fd00:18::1", 7946},
		{"[fd00:18::1]:0", "fd00:18::1", 0},
	} {
		ip, port, err := splitIPPort(tt.in)
		if err != nil || ip != tt.wantIP || port != tt.wantPort {
			t.Errorf("splitIPPort(%q) = %q, %d, %v; want %q, %d", tt.in, ip, port, err, tt.wantIP, tt.wantPort)
		}
	}
	for in, want := range map[string]string{
		"fd00:18::2":        "[fd00:18::2]:7946",
		"[fd00:18::2]":      "[fd00:18::2]:7946",
		"[fd00:18::2]:7000": "[fd00:18::2]:7000",
		"fd00:18::2:7000":   "[fd00:18::2:7000]:7946", // a bare IPv6 address has no port
		"198.18.0.2":        "198.18.0.2:7946",
	} {
		if got := withDefaultPort(in); got != want {
			t.Errorf("withDefaultPort(%q) = %q; want %q", in, got, want)
		}
	}
	if got := ipOfAddr("[fd00:18::1]:7946"); got != netip.MustParseAddr("fd00:18::1") {
		t.Errorf("ipOfAddr([fd00:18::1]:7946) = %v", got)
	}
	if _, _, err := splitIPPort("[fd00:18::1"); err == nil {
		t.Errorf("splitIPPort([fd00:18::1) succeeded; want an error")
	}
}
