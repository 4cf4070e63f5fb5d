package lab

import (
	"context"
	"fmt"

	"weir/internal/testsupport"
)

// build creates the switch, the hosts with their guests, the routes between
// hosts and, when withGit is set, the Git server.
func (l *Lab) build(ctx context.Context, guests []int, withGit bool) error {
	if err := l.addSwitch(ctx); err != nil {
		return err
	}
	for i := 1; i <= len(guests); i++ {
		h, err := l.addHost(ctx, i, guests[i-1])
		if err != nil {
			return err
		}
		l.Hosts = append(l.Hosts, h)
	}
	if err := l.routeHosts(ctx); err != nil {
		return err
	}
	if err := l.routeHosts6(ctx); err != nil {
		return err
	}
	if withGit {
		g, err := l.startGit(ctx)
		if err != nil {
			return err
		}
		l.Git = g
	}
	return nil
}

// addSwitch creates the switch namespace and its bridge.
func (l *Lab) addSwitch(ctx context.Context) error {
	br := l.Prefix + "br"
	if err := l.addNS(ctx, l.Switch); err != nil {
		return err
	}
	if err := l.ip(ctx, l.Switch, "link", "add", br, "type", "bridge"); err != nil {
		return err
	}
	return l.ip(ctx, l.Switch, "link", "set", br, "up")
}

// addHost creates host i (1-based) on the bridge, forwarding for its guests.
func (l *Lab) addHost(ctx context.Context, i, guests int) (*Host, error) {
	h := &Host{Index: i, Name: "host-" + string(rune('a'+i-1)), NS: fmt.Sprintf("%sh%d", l.Prefix, i), Addr: fmt.Sprintf("198.18.0.%d", i)}
	if err := l.addNS(ctx, h.NS); err != nil {
		return h, err
	}
	if err := l.sysctl(ctx, h.NS, "net.ipv4.ip_forward=1"); err != nil {
		return h, err
	}
	if err := l.uplink(ctx, h.NS, fmt.Sprintf("h%d", i), h.Addr); err != nil {
		return h, err
	}
	// A frontend that no rule rewrote must fail loudly, not leak or hang.
	if err := l.ip(ctx, h.NS, "route", "add", "unreachable", FrontendNet); err != nil {
		return h, err
	}
	if err := l.addHost6(ctx, h); err != nil {
		return h, err
	}
	for j := 1; j <= guests; j++ {
		g, err := l.addGuest(ctx, h, j)
		if err != nil {
			return h, err
		}
		h.Guests = append(h.Guests, g)
	}
	return h, nil
}

// routeHosts routes every host's guest range via that host on all others.
func (l *Lab) routeHosts(ctx context.Context) error {
	for _, h := range l.Hosts {
		for _, o := range l.Hosts {
			if o == h {
				continue
			}
			if err := l.ip(ctx, h.NS, "route", "add", fmt.Sprintf("198.19.%d.0/24", o.Index), "via", o.Addr); err != nil {
				return err
			}
		}
	}
	return nil
}

// uplink connects namespace ns to the bridge with address addr/24; tag
// distinguishes the veth names.
func (l *Lab) uplink(ctx context.Context, ns, tag, addr string) error {
	sw, up := l.Prefix+tag+"s", l.Prefix+tag+"u"
	if err := l.ip(ctx, l.Switch, "link", "add", sw, "type", "veth", "peer", "name", up, "netns", ns); err != nil {
		return err
	}
	if err := l.ip(ctx, l.Switch, "link", "set", sw, "master", l.Prefix+"br", "up"); err != nil {
		return err
	}
	if err := l.ip(ctx, ns, "addr", "add", addr+"/24", "dev", up); err != nil {
		return err
	}
	return l.ip(ctx, ns, "link", "set", up, "up")
}

func (l *Lab) addGuest(ctx context.Context, h *Host, j int) (*Guest, error) {
	g := &Guest{Host: h.Index, Index: j, NS: fmt.Sprintf("%sh%dg%d", l.Prefix, h.Index, j), Addr: fmt.Sprintf("198.19.%d.%d", h.Index, j+1)}
	if err := l.addNS(ctx, g.NS); err != nil {
		return nil, err
	}
	hv, gv := fmt.Sprintf("%sh%dg%d", l.Prefix, h.Index, j), fmt.Sprintf("%sg%de", l.Prefix, j)
	steps := [][]string{
		{h.NS, "link", "add", hv, "type", "veth", "peer", "name", gv, "netns", g.NS},
		{h.NS, "link", "set", hv, "up"},
		{h.NS, "route", "add", g.Addr + "/32", "dev", hv},
		{g.NS, "addr", "add", g.Addr + "/32", "dev", gv},
		{g.NS, "link", "set", gv, "up"},
		// The host answers ARP for its own address on every interface, so it can
		// be the gateway of a /32 guest without an address on the guest's link.
		{g.NS, "route", "add", h.Addr, "dev", gv, "scope", "link"},
		{g.NS, "route", "add", "default", "via", h.Addr, "dev", gv},
	}
	for _, s := range steps {
		if err := l.ip(ctx, s[0], s[1:]...); err != nil {
			return nil, err
		}
	}
	return g, l.addGuest6(ctx, h, g, hv, gv)
}

// addNS creates a namespace with loopback up and reverse-path filtering off
// (guests' replies come back over other interfaces than a strict check expects).
func (l *Lab) addNS(ctx context.Context, ns string) error {
	if err := testsupport.AddNetns(ctx, ns); err != nil {
		return err
	}
	if err := l.ip(ctx, ns, "link", "set", "lo", "up"); err != nil {
		return err
	}
	if l.ipv6 {
		// Before any interface exists, so that none of them waits for
		// duplicate address detection, link-local addresses included.
		if err := l.sysctl(ctx, ns, "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"); err != nil {
			return err
		}
	}
	return l.sysctl(ctx, ns, "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0")
}

func (l *Lab) ip(ctx context.Context, ns string, args ...string) error {
	return run(ctx, "ip", append([]string{"-n", ns}, args...)...)
}

func (l *Lab) sysctl(ctx context.Context, ns string, settings ...string) error {
	_, err := l.Exec(ctx, ns, "sysctl", append([]string{"-qw"}, settings...)...)
	return err
}
