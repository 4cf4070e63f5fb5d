package spec

import (
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
)

// MaxWeight is the largest weight a balancer may give a target. It keeps the
// sum of weights, and so every rule's probability, far inside what iptables'
// statistic match can express (a 31-bit fraction).
const MaxWeight = 1000000

// dnsLabelRE is RFC 1123 label syntax; the length (≤ 63) is checked apart.
var dnsLabelRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// validName reports whether s is a DNS label: 1–63 lowercase letters, digits
// and '-', starting and ending with a letter or digit.
func validName(s string) bool { return len(s) <= 63 && dnsLabelRE.MatchString(s) }

// hostDef is a decoded Host document with the lines the cross-document
// checks report at. It keeps no reference to the document's line maps, so
// a Loader can keep it from one revision to the next for little memory.
type hostDef struct {
	Host
	addrLine int        // line of spec.address (or its nearest ancestor)
	guests   []guestDef // in document order
}

type guestDef struct {
	Guest
	addrLines []int // line of each of Guest.Addresses
}

// balancerDef is a decoded Balancer document with the lines the
// cross-document checks report at.
type balancerDef struct {
	Balancer
	feAddrLine, feLine, sourceLine, targetLine int
	protoBad                                   bool        // spec.frontend.protocol was rejected
	weightLines                                []namedLine // of each weight kept, by guest name
}

// namedLine is the line of one entry of a mapping.
type namedLine struct {
	name string
	line int
}

// present reports whether path was given and well formed.
func (d *docCtx) present(path string) bool {
	_, ok := d.lines[path]
	return ok && !d.bad[path]
}

// required reports path as missing when its parent is present but it is not.
// A missing parent was reported already; a malformed path was too.
func (d *docCtx) required(path string) bool {
	if d.present(path) {
		return true
	}
	if _, given := d.lines[path]; given || d.bad[path] {
		return false
	}
	if p := parent(path); p == "" || d.present(p) {
		d.errorf(path, "missing required field %q", path)
	}
	return false
}

// apiVersion checks the document's apiVersion value.
func (d *docCtx) apiVersion(v string) {
	if v != APIVersion {
		d.errorf("apiVersion", "unknown apiVersion %q (want %s)", v, APIVersion)
	}
}

// name checks a required name (of a host, guest, balancer or service).
func (d *docCtx) name(path, what, v string) string {
	if !d.required(path) {
		return ""
	}
	return d.label(path, what, v)
}

// label checks that v, given at path, is a DNS label.
func (d *docCtx) label(path, what, v string) string {
	if !validName(v) {
		d.errorf(path, "%s: invalid %s %q: must be a DNS label (at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)", path, what, v)
		return ""
	}
	return v
}

// addr checks a required IP address.
func (d *docCtx) addr(path, v string) netip.Addr {
	if !d.required(path) {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(v)
	if err != nil || a.Zone() != "" {
		d.errorf(path, "%s: %q is not an IPv4 or IPv6 address", path, v)
		return netip.Addr{}
	}
	// An IPv4-mapped IPv6 address is the IPv4 address: compare and
	// program it as such.
	return a.Unmap()
}

// port checks a port number at path; 0 means absent or invalid.
func (d *docCtx) port(path string, v int64) uint16 {
	if !d.present(path) {
		return 0
	}
	if v < 1 || v > 65535 {
		d.errorf(path, "%s: port %d is out of range 1-65535", path, v)
		return 0
	}
	return uint16(v)
}

// host validates a Host document and records it.
func (d *docCtx) host(doc *hostDoc) {
	d.apiVersionOf(doc.APIVersion)
	h := &hostDef{}
	d.required("metadata")
	h.Name = d.name("metadata.name", "host name", doc.Metadata.Name)
	h.Pos = d.pos("metadata.name")
	d.required("spec")
	h.Address = d.addr("spec.address", doc.Spec.Address)
	h.addrLine = d.lineOf("spec.address")
	for i, g := range doc.Spec.Guests {
		p := "spec.guests[" + strconv.Itoa(i) + "]"
		if !d.bad[p] {
			h.guests = append(h.guests, d.guest(p, g))
		}
	}
	d.l.hosts = append(d.l.hosts, h)
}

// guest validates the guest at path p of a Host document.
func (d *docCtx) guest(p string, g guestDoc) guestDef {
	gd := guestDef{}
	gd.Name = d.name(p+".name", "guest name", g.Name)
	gd.Pos = d.pos(p + ".name")
	gd.Addresses, gd.addrLines = d.guestAddrs(p, g)
	seen := map[string]int{}
	for j, s := range g.Services {
		sp := p + ".services[" + strconv.Itoa(j) + "]"
		if d.bad[sp] || d.label(sp, "service name", s) == "" {
			continue
		}
		if first, dup := seen[s]; dup {
			d.errorf(sp, "duplicate service %q in guest %q (first listed at line %d)", s, g.Name, first)
			continue
		}
		seen[s] = d.lines[sp]
		gd.Services = append(gd.Services, s)
	}
	// Sorted here, once: a Loader shares the slice with every Spec it
	// builds from this document.
	slices.Sort(gd.Services)
	return gd
}

// guestAddrs checks the address, or the addresses, of the guest at path p:
// one of the two fields, one or two unicast addresses, at most one of each
// family. It returns them IPv4 first, with the line of each.
func (d *docCtx) guestAddrs(p string, g guestDoc) ([]netip.Addr, []int) {
	one, many := p+".address", p+".addresses"
	if _, given := d.lines[many]; !given {
		if a := d.unicast(one, d.addr(one, g.Address), "guest"); a.IsValid() {
			return []netip.Addr{a}, []int{d.lineOf(one)}
		}
		return nil, nil
	}
	if _, given := d.lines[one]; given {
		d.errorf(many, "%s: give address or addresses, not both", many)
		return nil, nil
	}
	if d.bad[many] {
		return nil, nil
	}
	if len(g.Addresses) == 0 || len(g.Addresses) > 2 {
		d.errorf(many, "%s: a guest has one or two addresses (at most one IPv4 and one IPv6), not %d", many, len(g.Addresses))
		return nil, nil
	}
	var addrs []netip.Addr
	var lines []int
	for j, v := range g.Addresses {
		ap := many + "[" + strconv.Itoa(j) + "]"
		a := d.unicast(ap, d.addr(ap, v), "guest")
		if !a.IsValid() {
			continue
		}
		if len(addrs) == 1 && FamilyOf(addrs[0]) == FamilyOf(a) {
			d.errorf(ap, "%s: a second %s address (%s after %s); a guest has at most one IPv4 and one IPv6 address", ap, FamilyOf(a), a, addrs[0])
			continue
		}
		addrs, lines = append(addrs, a), append(lines, d.lineOf(ap))
	}
	if len(addrs) == 2 && FamilyOf(addrs[0]) == IPv6 {
		addrs[0], addrs[1] = addrs[1], addrs[0]
		lines[0], lines[1] = lines[1], lines[0]
	}
	return addrs, lines
}

// unicast reports a, given at path for a frontend or guest (what), when it
// is not a unicast address, and then returns the zero Addr. A rule for such
// a frontend would catch the host's own traffic (a loopback resolver, say)
// or traffic that DNAT cannot balance; such a guest could never be reached.
func (d *docCtx) unicast(path string, a netip.Addr, what string) netip.Addr {
	if kind := specialKind(a); kind != "" {
		d.errorf(path, "%s: %s is a %s address; a %s needs a unicast address", path, a, kind, what)
		return netip.Addr{}
	}
	return a
}

// specialKind names what kind of non-unicast address a is, or returns ""
// for a unicast address (or the zero Addr, reported elsewhere).
func specialKind(a netip.Addr) string {
	switch {
	case !a.IsValid():
		return ""
	case a.IsUnspecified():
		return "unspecified"
	case a.IsLoopback():
		return "loopback"
	case a.IsMulticast():
		return "multicast"
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "broadcast"
	case a.IsLinkLocalUnicast():
		// 169.254.0.0/16 (cloud metadata services live there) and fe80::/10.
		return "link-local"
	}
	return ""
}

// apiVersionOf checks a decoded document's apiVersion.
func (d *docCtx) apiVersionOf(v string) {
	if d.required("apiVersion") {
		d.apiVersion(v)
	}
}

// pos is the position of path in this document.
func (d *docCtx) pos(path string) Pos { return Pos{File: d.file, Line: d.lineOf(path)} }

// balancer validates a Balancer document and records it.
func (d *docCtx) balancer(doc *balancerDoc) {
	d.apiVersionOf(doc.APIVersion)
	s := doc.Spec
	b := &balancerDef{}
	d.required("metadata")
	b.Name = d.name("metadata.name", "balancer name", doc.Metadata.Name)
	b.Pos = d.pos("metadata.name")
	d.required("spec")
	b.Source = d.name("spec.source", "service name", s.Source)
	b.Target = d.name("spec.target", "service name", s.Target)
	b.Frontend = d.frontend(s.Frontend)
	b.TargetPort = b.Frontend.Port
	if d.present("spec.targetPort") {
		b.TargetPort = d.port("spec.targetPort", s.TargetPort)
	}
	b.Strategy = d.strategy(s.Strategy)
	b.Weights = d.weights(s.Weights, b.Strategy)
	b.HealthCheck = d.healthCheck(s.HealthCheck, b.TargetPort)
	b.feAddrLine, b.feLine = d.lineOf("spec.frontend.address"), d.lineOf("spec.frontend")
	b.sourceLine, b.targetLine = d.lineOf("spec.source"), d.lineOf("spec.target")
	b.protoBad = d.bad["spec.frontend.protocol"]
	for _, g := range slices.Sorted(maps.Keys(b.Weights)) {
		b.weightLines = append(b.weightLines, namedLine{g, d.lineOf("spec.weights." + g)})
	}
	d.l.balancers = append(d.l.balancers, b)
}

// frontend checks spec.frontend; the protocol defaults to tcp.
func (d *docCtx) frontend(f frontendDoc) Frontend {
	var fe Frontend
	if d.required("spec.frontend") {
		fe.Address = d.unicast("spec.frontend.address", d.addr("spec.frontend.address", f.Address), "frontend")
		if d.required("spec.frontend.port") {
			fe.Port = d.port("spec.frontend.port", f.Port)
		}
	}
	fe.Protocol = TCP
	if d.present("spec.frontend.protocol") {
		switch p := Protocol(f.Protocol); p {
		case TCP, UDP, SCTP:
			fe.Protocol = p
		default:
			d.errorf("spec.frontend.protocol", "spec.frontend.protocol: unknown protocol %q (want tcp, udp or sctp)", f.Protocol)
		}
	}
	return fe
}

// strategy checks spec.strategy, random by default.
func (d *docCtx) strategy(v string) Strategy {
	if !d.present("spec.strategy") {
		return Random
	}
	switch st := Strategy(v); st {
	case Random, RoundRobin:
		return st
	}
	d.errorf("spec.strategy", "spec.strategy: unknown strategy %q (want random or roundrobin)", v)
	return Random
}

// weights checks spec.weights, in guest name order; nil when none are given.
// A weight of 0 drains its target. With strategy roundrobin, which gives
// every target an equal share, 0 is the only weight allowed.
func (d *docCtx) weights(ws map[string]int64, st Strategy) map[string]int {
	if len(ws) == 0 || !d.present("spec.weights") {
		return nil
	}
	out := map[string]int{}
	for _, g := range slices.Sorted(maps.Keys(ws)) {
		p := "spec.weights." + g
		if d.bad[p] || d.label(p, "guest name", g) == "" {
			continue
		}
		switch w := ws[g]; {
		case w < 0 || w > MaxWeight:
			d.errorf(p, "%s: weight %d is out of range 0-%d (0 drains the target)", p, w, MaxWeight)
		case st == RoundRobin && w != 0:
			d.errorf(p, "%s: weight %d is not allowed with strategy roundrobin, which gives every target an equal share; only 0 (drain) is", p, w)
		default:
			out[g] = int(w)
		}
	}
	return out
}
