package spec

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// checkTree runs the checks that span documents: unique names and addresses,
// distinct frontends, and (when references is set) that every service and
// weighted guest a balancer names exists. Hosts come first, so that a
// balancer's checks see every guest and address of the tree.
func (l *loader) checkTree(references bool) {
	guests := 0
	for _, h := range l.hosts {
		guests += len(h.guests)
	}
	// Sized up front: a Loader runs these checks over the whole tree on
	// every revision, and growing maps of 10,000 entries costs more than
	// filling them.
	t := treeIndex{
		errs:      &l.errs,
		hosts:     make(map[string]Pos, len(l.hosts)),
		guestPos:  make(map[string]Pos, guests),
		guests:    make(map[string]*guestDef, guests),
		balancers: make(map[string]Pos, len(l.balancers)),
		frontends: make(map[Frontend]*balancerDef, len(l.balancers)),
		addrs:     make(map[netip.Addr]addrOwner, len(l.hosts)+guests),
		services:  map[string]bool{},
		runners:   map[string][]*guestDef{},
	}
	for _, h := range l.hosts {
		t.host(h)
	}
	for _, b := range l.balancers {
		t.balancer(b)
		if references {
			t.references(b)
		}
	}
}

// treeIndex is what checkTree has seen of the tree so far, by name.
type treeIndex struct {
	errs      *ErrorList
	hosts     map[string]Pos
	guestPos  map[string]Pos
	guests    map[string]*guestDef // the first guest of each name
	balancers map[string]Pos
	frontends map[Frontend]*balancerDef
	addrs     map[netip.Addr]addrOwner
	services  map[string]bool        // run by some guest
	runners   map[string][]*guestDef // by service: the guests that run it, in tree order
}

// addrOwner is the host or guest an address belongs to, for messages.
type addrOwner struct {
	what string
	pos  Pos
}

// host checks a host and its guests against the tree seen so far.
func (t *treeIndex) host(h *hostDef) {
	file := h.Pos.File
	t.unique(h.Pos, "host", h.Name, t.hosts)
	t.useAddr(file, h.addrLine, h.Address, fmt.Sprintf("host %q", h.Name))
	for i := range h.guests {
		g := &h.guests[i]
		if t.unique(g.Pos, "guest", g.Name, t.guestPos) {
			t.guests[g.Name] = g
		}
		for j, a := range g.Addresses {
			t.useAddr(file, g.addrLines[j], a, fmt.Sprintf("guest %q", g.Name))
		}
		for _, s := range g.Services {
			t.services[s] = true
			t.runners[s] = append(t.runners[s], g)
		}
	}
}

// unique records name (when given) as defined at pos, or reports it there
// as a duplicate of the first definition. It reports whether name is new.
func (t *treeIndex) unique(pos Pos, kind, name string, seen map[string]Pos) bool {
	if name == "" {
		return false
	}
	if first, dup := seen[name]; dup {
		t.errorf(pos, "duplicate %s %q (first defined at %s)", kind, name, first)
		return false
	}
	seen[name] = pos
	return true
}

// useAddr records the address a of a host or guest, given at file:line, or
// reports it as taken. An address that failed its own checks is invalid
// and takes no part.
func (t *treeIndex) useAddr(file string, line int, a netip.Addr, what string) {
	if !a.IsValid() {
		return
	}
	pos := Pos{File: file, Line: line}
	if o, dup := t.addrs[a]; dup {
		t.errorf(pos, "duplicate address %s (first used by %s at %s)", a, o.what, o.pos)
		return
	}
	t.addrs[a] = addrOwner{what, pos}
}

// balancer checks a balancer's name and frontend against the tree.
func (t *treeIndex) balancer(b *balancerDef) {
	file := b.Pos.File
	t.unique(b.Pos, "balancer", b.Name, t.balancers)
	fe := b.Frontend
	if !fe.Address.IsValid() {
		return
	}
	if o, taken := t.addrs[fe.Address]; taken {
		t.errorf(Pos{file, b.feAddrLine}, "spec.frontend.address: %s is the address of %s (%s); a frontend needs an address of its own", fe.Address, o.what, o.pos)
	}
	if fe.Port == 0 || b.protoBad {
		return
	}
	if first, dup := t.frontends[fe]; dup {
		t.errorf(Pos{file, b.feLine}, "frontend %s is already used by balancer %q (%s)", frontendKey(fe), first.Name, first.Pos)
		return
	}
	t.frontends[fe] = b
}

// references checks that the services and weighted guests of a balancer exist.
func (t *treeIndex) references(b *balancerDef) {
	file := b.Pos.File
	if b.Source != "" && !t.services[b.Source] {
		t.errorf(Pos{file, b.sourceLine}, "spec.source: no guest runs service %q", b.Source)
	}
	if b.Target != "" && !t.services[b.Target] {
		t.errorf(Pos{file, b.targetLine}, "spec.target: no guest runs service %q", b.Target)
	}
	t.families(b)
	if b.Target == "" || !t.services[b.Target] {
		return
	}
	for _, w := range b.weightLines {
		p := "spec.weights." + w.name
		g, ok := t.guests[w.name]
		switch {
		case !ok:
			t.errorf(Pos{file, w.line}, "%s: guest %q is not defined", p, w.name)
		case !slices.Contains(g.Services, b.Target):
			t.errorf(Pos{file, w.line}, "%s: guest %q does not run target service %q (defined at %s)", p, w.name, b.Target, g.Pos)
		}
	}
}

// families checks that every guest running the source or target service
// of b has an address of b's family: DNAT cannot change the family, so a
// target without one could never be reached, and a source without one could
// never send to the frontend. Each such guest is an error at the field that
// names its service.
func (t *treeIndex) families(b *balancerDef) {
	if !b.Frontend.Address.IsValid() {
		return
	}
	fam := b.Family()
	for _, role := range []struct {
		line                int
		path, what, service string
	}{
		{b.sourceLine, "spec.source", "source", b.Source},
		{b.targetLine, "spec.target", "target", b.Target},
	} {
		for _, g := range t.runners[role.service] {
			if len(g.Addresses) > 0 && !g.Addr(fam).IsValid() {
				t.errorf(Pos{b.Pos.File, role.line}, "%s: guest %q (%s), which runs %s service %q, has no %s address, which balancer %q needs for its %s frontend %s",
					role.path, g.Name, g.Pos, role.what, role.service, fam, b.Name, fam, b.Frontend.Address)
			}
		}
	}
}

// errorf records a problem at pos.
func (t *treeIndex) errorf(pos Pos, format string, args ...any) {
	*t.errs = append(*t.errs, Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

// frontendKey renders a frontend as ADDRESS:PORT/PROTOCOL, bracketing IPv6.
func frontendKey(f Frontend) string {
	return netip.AddrPortFrom(f.Address, f.Port).String() + "/" + string(f.Protocol)
}

// build assembles the Spec from a tree that passed every check.
func (l *loader) build() *Spec {
	s := &Spec{Hosts: make([]Host, 0, len(l.hosts)), Balancers: make([]Balancer, 0, len(l.balancers))}
	// Sorting the documents' pointers moves 8 bytes a swap, not the whole
	// value; names are unique in a tree that passed every check.
	for _, h := range sortedByName(l.hosts, func(h *hostDef) string { return h.Name }) {
		host := h.Host
		host.Guests = make([]Guest, 0, len(h.guests))
		for _, g := range h.guests {
			guest := g.Guest
			guest.Host = host.Name
			host.Guests = append(host.Guests, guest)
		}
		slices.SortFunc(host.Guests, func(a, b Guest) int { return strings.Compare(a.Name, b.Name) })
		s.Hosts = append(s.Hosts, host)
	}
	for _, b := range sortedByName(l.balancers, func(b *balancerDef) string { return b.Name }) {
		s.Balancers = append(s.Balancers, b.Balancer)
	}
	return s
}

// sortedByName returns a copy of defs sorted by name.
func sortedByName[T any](defs []*T, name func(*T) string) []*T {
	out := slices.Clone(defs)
	slices.SortFunc(out, func(a, b *T) int { return strings.Compare(name(a), name(b)) })
	return out
}
