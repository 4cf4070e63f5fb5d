package testsupport

import (
	"cmp"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"weir/reconcile/plan"
	"weir/spec"
)

// Spec builders for tests. They build *spec.Spec values the way spec.Load
// returns them: hosts, guests and balancers sorted by name, Guest.Host set,
// defaults filled.

// Guest returns a guest at addrs running services; addrs is one address,
// or an IPv4 and an IPv6 one separated by a comma ("198.19.1.2,fd00:19:1::2").
func Guest(name, addrs string, services ...string) spec.Guest {
	svcs := slices.Clone(services)
	slices.Sort(svcs)
	g := spec.Guest{Name: name, Services: svcs}
	for a := range strings.SplitSeq(addrs, ",") {
		g.Addresses = append(g.Addresses, netip.MustParseAddr(a))
	}
	slices.SortFunc(g.Addresses, func(a, b netip.Addr) int { return cmp.Compare(spec.FamilyOf(a), spec.FamilyOf(b)) })
	return g
}

// Host returns a host at addr running guests.
func Host(name, addr string, guests ...spec.Guest) spec.Host {
	h := spec.Host{Name: name, Address: netip.MustParseAddr(addr)}
	for _, g := range guests {
		g.Host = name
		h.Guests = append(h.Guests, g)
	}
	slices.SortFunc(h.Guests, func(a, b spec.Guest) int { return strings.Compare(a.Name, b.Name) })
	return h
}

// BalancerOpt changes a balancer Balancer builds.
type BalancerOpt func(*spec.Balancer)

// Weights sets the balancer's weights by target guest.
func Weights(kv map[string]int) BalancerOpt { return func(b *spec.Balancer) { b.Weights = kv } }

// TargetPort sets the balancer's target port.
func TargetPort(p uint16) BalancerOpt { return func(b *spec.Balancer) { b.TargetPort = p } }

// RoundRobin makes the balancer roundrobin.
func RoundRobin(b *spec.Balancer) { b.Strategy = spec.RoundRobin }

// Balancer returns a random-strategy balancer from the guests running
// source to those running target; frontend is "ADDR:PORT/PROTO". The target
// port is the frontend's unless an option sets it.
func Balancer(name, source, target, frontend string, opts ...BalancerOpt) spec.Balancer {
	ap, proto, _ := strings.Cut(frontend, "/")
	fe := netip.MustParseAddrPort(ap)
	b := spec.Balancer{
		Name: name, Source: source, Target: target,
		Frontend: spec.Frontend{Address: fe.Addr(), Port: fe.Port(), Protocol: spec.Protocol(proto)},
		Strategy: spec.Random,
	}
	for _, o := range opts {
		o(&b)
	}
	if b.TargetPort == 0 {
		b.TargetPort = b.Frontend.Port
	}
	return b
}

// Spec returns a spec of hosts and balancers, each sorted by name.
func Spec(hosts []spec.Host, balancers ...spec.Balancer) *spec.Spec {
	s := &spec.Spec{Hosts: slices.Clone(hosts), Balancers: slices.Clone(balancers)}
	slices.SortFunc(s.Hosts, func(a, b spec.Host) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(s.Balancers, func(a, b spec.Balancer) int { return strings.Compare(a.Name, b.Name) })
	return s
}

// DemoSpec is README.md's example grown to three hosts: web guests on
// host-a and host-b send to orders guests on all three (weights 3:1:1,
// target port 8080), and to a roundrobin UDP dns service on host-c.
func DemoSpec() *spec.Spec {
	return Spec(demoHosts(false),
		Balancer("frontend-orders", "frontend", "orders", "198.20.0.10:80/tcp",
			TargetPort(8080), Weights(map[string]int{"orders-1": 3})),
		Balancer("frontend-dns", "frontend", "dns", "198.20.0.53:53/udp", RoundRobin),
	)
}

// DualSpec is DemoSpec with an IPv6 address on every web and orders guest
// (the test ranges of docs/test-network.md) and a second orders balancer on the IPv6
// frontend [fd00:20::10]:80, with the same weights: the same source guests
// send to both.
func DualSpec() *spec.Spec {
	return Spec(demoHosts(true),
		Balancer("frontend-orders", "frontend", "orders", "198.20.0.10:80/tcp",
			TargetPort(8080), Weights(map[string]int{"orders-1": 3})),
		Balancer("frontend-orders-v6", "frontend", "orders", "[fd00:20::10]:80/tcp",
			TargetPort(8080), Weights(map[string]int{"orders-1": 3})),
		Balancer("frontend-dns", "frontend", "dns", "198.20.0.53:53/udp", RoundRobin),
	)
}

// demoHosts are DemoSpec's hosts; with dual, every web and orders guest
// has an IPv6 address beside its IPv4 one.
func demoHosts(dual bool) []spec.Host {
	addr := func(v4, v6 string) string {
		if dual {
			return v4 + "," + v6
		}
		return v4
	}
	return []spec.Host{
		Host("host-a", "198.18.0.1",
			Guest("web-1", addr("198.19.1.2", "fd00:19:1::2"), "frontend"),
			Guest("orders-1", addr("198.19.1.3", "fd00:19:1::3"), "orders")),
		Host("host-b", "198.18.0.2",
			Guest("web-2", addr("198.19.2.2", "fd00:19:2::2"), "frontend"),
			Guest("orders-2", addr("198.19.2.3", "fd00:19:2::3"), "orders")),
		Host("host-c", "198.18.0.3",
			Guest("orders-3", addr("198.19.3.3", "fd00:19:3::3"), "orders"),
			Guest("dns-1", "198.19.3.4", "dns"),
			Guest("dns-2", "198.19.3.5", "dns")),
	}
}

// HostNames returns the names of the hosts of s, in spec order.
func HostNames(s *spec.Spec) []string {
	names := make([]string, len(s.Hosts))
	for i, h := range s.Hosts {
		names[i] = h.Name
	}
	return names
}

// TargetNames lists targets as "host/guest@port×weight", comma-separated.
func TargetNames(ts []plan.Target) string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Host+"/"+t.Guest+"@"+strconv.Itoa(int(t.Port))+"×"+strconv.Itoa(t.Weight))
	}
	return strings.Join(out, ",")
}

// Shuffled returns a copy of s with every list in a random order, and maps
// rebuilt so they iterate differently.
func Shuffled(rng *rand.Rand, s *spec.Spec) *spec.Spec {
	out := &spec.Spec{}
	for _, h := range s.Hosts {
		h.Guests = slices.Clone(h.Guests)
		for i := range h.Guests {
			h.Guests[i].Services = slices.Clone(h.Guests[i].Services)
			rng.Shuffle(len(h.Guests[i].Services), reflect.Swapper(h.Guests[i].Services))
		}
		rng.Shuffle(len(h.Guests), reflect.Swapper(h.Guests))
		out.Hosts = append(out.Hosts, h)
	}
	rng.Shuffle(len(out.Hosts), reflect.Swapper(out.Hosts))
	for _, b := range s.Balancers {
		w := map[string]int{}
		for k, v := range b.Weights {
			w[k] = v
		}
		b.Weights = w
		out.Balancers = append(out.Balancers, b)
	}
	rng.Shuffle(len(out.Balancers), reflect.Swapper(out.Balancers))
	return out
}
