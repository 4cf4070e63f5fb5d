package netfilter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"weir/reconcile/render"
	"weir/spec"
)

// removedFlows returns the UDP flows whose target left its balancer between old
// and new: a target no longer listed, or every target of a balancer that is gone
// or whose frontend changed. TCP and SCTP need nothing: their established
// connections keep their DNAT until they end, and new ones follow the new rules,
// whereas a UDP "connection" never ends while datagrams keep coming, so without
// this a client would keep talking to a target that left.
func removedFlows(old, new []render.Flow) []ConntrackFlow {
	udp := map[string]int{} // balancer → index in old
	for i, o := range old {
		if o.Frontend.Protocol == spec.UDP {
			udp[o.Balancer] = i
		}
	}
	if len(udp) == 0 {
		return nil
	}
	cur := make(map[string]render.Flow, len(udp))
	for _, f := range new {
		if _, ok := udp[f.Balancer]; ok {
			cur[f.Balancer] = f
		}
	}
	var out []ConntrackFlow
	for _, o := range old {
		if o.Frontend.Protocol != spec.UDP {
			continue
		}
		fe := netip.AddrPortFrom(o.Frontend.Address, o.Frontend.Port)
		keep := map[netip.AddrPort]bool{}
		if n, ok := cur[o.Balancer]; ok && n.Frontend == o.Frontend {
			for _, t := range n.Targets {
				keep[t] = true
			}
		}
		for _, t := range o.Targets {
			if !keep[t] {
				out = append(out, ConntrackFlow{Protocol: spec.UDP, Frontend: fe, Target: t})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// conntrackTimeout bounds each netlink exchange of a conntrack deletion.
const conntrackTimeout = 10 * time.Second

// DeleteConntrack implements Netfilter over netlink's conntrack filter, in the
// configured network namespace.
func (t *IPTables) DeleteConntrack(ctx context.Context, flows []ConntrackFlow) (uint, error) {
	if len(flows) == 0 {
		return 0, ctx.Err()
	}
	var h *netlink.Handle
	var err error
	if t.netns == "" {
		h, err = netlink.NewHandle(unix.NETLINK_NETFILTER)
	} else {
		var ns netns.NsHandle
		ns, err = netns.GetFromName(t.netns)
		if err == nil {
			defer ns.Close()
			h, err = netlink.NewHandleAt(ns, unix.NETLINK_NETFILTER)
		}
	}
	if err != nil {
		return 0, fmt.Errorf("opening a netlink handle for conntrack: %w", err)
	}
	defer h.Close()
	// Each netlink send and receive waits at most until ctx's deadline (or
	// conntrackTimeout): a kernel that never answers cannot hold the pass.
	timeout := conntrackTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, max(time.Until(d), time.Millisecond))
	}
	if err := h.SetSocketTimeout(timeout); err != nil {
		return 0, fmt.Errorf("setting the conntrack netlink socket's timeout: %w", err)
	}
	var v4, v6 []netlink.CustomConntrackFilter
	for _, f := range flows {
		cf, err := conntrackFilter(f)
		if err != nil {
			return 0, err
		}
		if f.Frontend.Addr().Is4() {
			v4 = append(v4, cf)
		} else {
			v6 = append(v6, cf)
		}
	}
	var total uint
	var errs []error
	for _, g := range []struct {
		family  netlink.InetFamily
		filters []netlink.CustomConntrackFilter
	}{{unix.AF_INET, v4}, {unix.AF_INET6, v6}} {
		if len(g.filters) == 0 {
			continue
		}
		n, err := h.ConntrackDeleteFilters(netlink.ConntrackTable, g.family, g.filters...)
		total += n
		if err != nil {
			errs = append(errs, fmt.Errorf("deleting conntrack entries (family %d): %w", g.family, err))
		}
	}
	return total, errors.Join(errs...)
}

// conntrackFilter matches entries with original destination f.Frontend and
// reply source f.Target's address (the DNATed destination). netlink's filter
// cannot match the reply source port, so the original destination port narrows
// it instead.
func conntrackFilter(f ConntrackFlow) (*netlink.ConntrackFilter, error) {
	var proto uint8
	switch f.Protocol {
	case spec.UDP:
		proto = unix.IPPROTO_UDP
	case spec.TCP:
		proto = unix.IPPROTO_TCP
	case spec.SCTP:
		proto = unix.IPPROTO_SCTP
	default:
		return nil, fmt.Errorf("conntrack filter for %s: unknown protocol %q", f, f.Protocol)
	}
	cf := &netlink.ConntrackFilter{}
	steps := []error{
		cf.AddProtocol(proto),
		cf.AddIP(netlink.ConntrackOrigDstIP, net.IP(f.Frontend.Addr().AsSlice())),
		cf.AddPort(netlink.ConntrackOrigDstPort, f.Frontend.Port()),
		cf.AddIP(netlink.ConntrackReplySrcIP, net.IP(f.Target.Addr().AsSlice())),
	}
	if err := errors.Join(steps...); err != nil {
		return nil, fmt.Errorf("conntrack filter for %s: %w", f, err)
	}
	return cf, nil
}
