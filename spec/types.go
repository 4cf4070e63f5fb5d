// Package spec holds weir's domain types — hosts, their guests and the balancers
// between services — and loads them from a tree of YAML documents with strict,
// positioned (FILE:LINE) validation. It does no I/O beyond the fs.FS it is given.
package spec

import (
	"net/netip"
	"slices"
	"strconv"
)

// APIVersion is the only apiVersion this package accepts.
const APIVersion = "weir/v1"

// Document kinds.
const (
	KindHost     = "Host"
	KindBalancer = "Balancer"
)

// Protocol is a frontend's transport protocol.
type Protocol string

// Protocols weir balances.
const (
	TCP  Protocol = "tcp"
	UDP  Protocol = "udp"
	SCTP Protocol = "sctp"
)

// Strategy chooses how a balancer spreads new connections over its targets.
type Strategy string

// Strategies; Random is the default.
const (
	// Random uses iptables' statistic --mode random with per-rule probabilities.
	Random Strategy = "random"
	// RoundRobin uses statistic --mode nth; it requires equal weights.
	RoundRobin Strategy = "roundrobin"
)

// Spec is one validated revision of the spec tree. Hosts, each host's guests and
// Balancers are sorted by name, so everything derived from a Spec can iterate
// over it without depending on file layout or document order.
type Spec struct {
	Hosts     []Host
	Balancers []Balancer
}

// Pos is where a document or value was defined, relative to the spec root.
type Pos struct {
	File string
	Line int
}

// String renders the position as FILE:LINE.
func (p Pos) String() string { return p.File + ":" + strconv.Itoa(p.Line) }

// Host is one server's host OS and the guests it runs.
type Host struct {
	Name    string
	Address netip.Addr
	Guests  []Guest
	Pos     Pos // where its name is written
}

// Guest is one guest OS behind a host, with the services it runs.
type Guest struct {
	Name string
	// Addresses are the guest's addresses: one or two, at most one of each
	// family, IPv4 first. A balancer reaches the guest at the one of its
	// own family (Addr).
	Addresses []netip.Addr
	Services  []string // sorted, unique
	Host      string   // name of the host it runs on
	Pos       Pos      // where its name is written
}

// Frontend is the virtual address that source guests send to.
type Frontend struct {
	Address  netip.Addr `json:"address"`
	Port     uint16     `json:"port"`
	Protocol Protocol   `json:"protocol"`
}

// Family is an IP address family. The zero Family is IPv4, so that code
// written before IPv6 balancers existed keeps meaning IPv4.
type Family uint8

// Address families; a balancer's is its frontend's.
const (
	IPv4 Family = iota // programmed with iptables
	IPv6               // programmed with ip6tables
)

// Families returns every family weir programs, IPv4 first: the order in
// which commands print and apply them.
func Families() []Family { return []Family{IPv4, IPv6} }

// FamilyOf returns the family of a (an IPv4-mapped IPv6 address is IPv4).
func FamilyOf(a netip.Addr) Family {
	if a.Unmap().Is4() {
		return IPv4
	}
	return IPv6
}

// String returns "IPv4" or "IPv6".
func (f Family) String() string {
	if f == IPv6 {
		return "IPv6"
	}
	return "IPv4"
}

// Name returns "ipv4" or "ipv6", as flags, URLs and JSON spell a family.
func (f Family) Name() string {
	if f == IPv6 {
		return "ipv6"
	}
	return "ipv4"
}

// Balancer spreads connections that guests running Source open to Frontend over
// the guests running Target.
type Balancer struct {
	Name       string
	Source     string
	Target     string
	Frontend   Frontend
	TargetPort uint16         // defaulted to Frontend.Port
	Strategy   Strategy       // defaulted to Random
	Weights    map[string]int // by target guest name, 0 = drained; nil when none is given
	// HealthCheck is how the agent on each target's host probes it; nil
	// when the balancer has none, and then a target is healthy while its
	// host is alive.
	HealthCheck *HealthCheck
	Pos         Pos // where its name is written
}

// Family returns the balancer's address family: its frontend's.
func (b *Balancer) Family() Family { return FamilyOf(b.Frontend.Address) }

// Weight returns the weight of the target guest named guest (default 1); 0
// means the target is drained: it gets no new connections.
func (b *Balancer) Weight(guest string) int {
	if w, ok := b.Weights[guest]; ok {
		return w
	}
	return 1
}

// Guests returns every guest of the spec in (host, guest) name order.
func (s *Spec) Guests() []Guest {
	var out []Guest
	for _, h := range s.Hosts {
		out = append(out, h.Guests...)
	}
	return out
}

// Host returns the host named name, or nil.
func (s *Spec) Host(name string) *Host {
	for i := range s.Hosts {
		if s.Hosts[i].Name == name {
			return &s.Hosts[i]
		}
	}
	return nil
}

// Addr returns the guest's address of family f, or the zero Addr when it
// has none.
func (g *Guest) Addr(f Family) netip.Addr {
	for _, a := range g.Addresses {
		if FamilyOf(a) == f {
			return a
		}
	}
	return netip.Addr{}
}

// Runs reports whether the guest runs service.
func (g *Guest) Runs(service string) bool {
	_, found := slices.BinarySearch(g.Services, service)
	return found
}

// Guest returns the guest named name, or nil.
func (s *Spec) Guest(name string) *Guest {
	for i := range s.Hosts {
		for j := range s.Hosts[i].Guests {
			if s.Hosts[i].Guests[j].Name == name {
				return &s.Hosts[i].Guests[j]
			}
		}
	}
	return nil
}

// Balancer returns the balancer named name, or nil.
func (s *Spec) Balancer(name string) *Balancer {
	for i := range s.Balancers {
		if s.Balancers[i].Name == name {
			return &s.Balancers[i]
		}
	}
	return nil
}
