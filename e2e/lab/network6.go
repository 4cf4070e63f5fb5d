package lab

import (
	"context"
	"fmt"
)

// The IPv6 half of a dual-stack lab (Options.IPv6). Each function does
// nothing in an IPv4-only lab.

// addHost6 gives host h its IPv6 address on its uplink, IPv6 forwarding,
// and an unreachable route for FrontendNet6.
func (l *Lab) addHost6(ctx context.Context, h *Host) error {
	if !l.ipv6 {
		return nil
	}
	h.Addr6 = fmt.Sprintf("fd00:18::%d", h.Index)
	if err := l.sysctl(ctx, h.NS, "net.ipv6.conf.all.forwarding=1"); err != nil {
		return err
	}
	up := fmt.Sprintf("%sh%du", l.Prefix, h.Index)
	if err := l.ip(ctx, h.NS, "-6", "addr", "add", h.Addr6+"/64", "dev", up, "nodad"); err != nil {
		return err
	}
	return l.ip(ctx, h.NS, "-6", "route", "add", "unreachable", FrontendNet6)
}

// addGuest6 gives guest g of host h its IPv6 address on its link gv (hv
// on the host's side). The host's end of every guest link answers as
// fe80::1, the guest's IPv6 default router: a link-local gateway needs no
// address of the host on that link.
func (l *Lab) addGuest6(ctx context.Context, h *Host, g *Guest, hv, gv string) error {
	if !l.ipv6 {
		return nil
	}
	g.Addr6 = fmt.Sprintf("fd00:19:%d::%d", h.Index, g.Index+1)
	steps := [][]string{
		{h.NS, "-6", "addr", "add", "fe80::1/64", "dev", hv, "nodad"},
		{h.NS, "-6", "route", "add", g.Addr6 + "/128", "dev", hv},
		{g.NS, "-6", "addr", "add", g.Addr6 + "/128", "dev", gv, "nodad"},
		{g.NS, "-6", "route", "add", "default", "via", "fe80::1", "dev", gv},
	}
	for _, s := range steps {
		if err := l.ip(ctx, s[0], s[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// routeHosts6 routes every host's guest /64 via that host on all others.
func (l *Lab) routeHosts6(ctx context.Context) error {
	if !l.ipv6 {
		return nil
	}
	for _, h := range l.Hosts {
		for _, o := range l.Hosts {
			if o == h {
				continue
			}
			if err := l.ip(ctx, h.NS, "-6", "route", "add", fmt.Sprintf("fd00:19:%d::/64", o.Index), "via", o.Addr6); err != nil {
				return err
			}
		}
	}
	return nil
}
