package spec

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
)

// checkTree runs the checks that span documents: unique names and addresses,
// distinct frontends, and (when references is set) that every service and
// weighted guest a balancer names exists. Hosts come first, so that a
// balancer's checks see every guest and address of the tree.
func (l *loader) checkTree(references bool) {
	t := treeIndex{
		hosts:     map[string]Pos{},
		guestPos:  map[string]Pos{},
		guests:    map[string]*guestDef{},
		balancers: map[string]Pos{},
		frontends: map[string]*balancerDef{},
		addrs:     map[netip.Addr]addrOwner{},
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
	hosts     map[string]Pos
	guestPos  map[string]Pos
	guests    map[string]*guestDef // the first guest of each name
	balancers map[string]Pos
	frontends map[string]*balancerDef // by frontendKey
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
	d := h.doc
	unique(d, "metadata.name", "host", h.Name, h.Pos, t.hosts)
	t.useAddr(d, "spec.address", h.Address, fmt.Sprintf("host %q", h.Name))
	for i := range h.guests {
		g := &h.guests[i]
		if unique(d, g.path+".name", "guest", g.Name, g.Pos, t.guestPos) {
			t.guests[g.Name] = g
		}
		for j, a := range g.Addresses {
			t.useAddr(d, g.addrPaths[j], a, fmt.Sprintf("guest %q", g.Name))
		}
		for _, s := range g.Services {
			t.services[s] = true
			t.runners[s] = append(t.runners[s], g)
		}
	}
}

// unique records name (when given) as defined at pos, or reports it at path
// as a duplicate of the first definition. It reports whether name is new.
func unique(d *docCtx, path, kind, name string, pos Pos, seen map[string]Pos) bool {
	if name == "" {
		return false
	}
	if first, dup := seen[name]; dup {
		d.errorf(path, "duplicate %s %q (first defined at %s)", kind, name, first)
		return false
	}
	seen[name] = pos
	return true
}

// useAddr records the address a of a host or guest, given at path, or
// reports it as taken.
func (t *treeIndex) useAddr(d *docCtx, path string, a netip.Addr, what string) {
	if !a.IsValid() || d.bad[path] {
		return
	}
	if o, dup := t.addrs[a]; dup {
		d.errorf(path, "duplicate address %s (first used by %s at %s)", a, o.what, o.pos)
		return
	}
	t.addrs[a] = addrOwner{what, d.pos(path)}
}

// balancer checks a balancer's name and frontend against the tree.
func (t *treeIndex) balancer(b *balancerDef) {
	d := b.doc
	unique(d, "metadata.name", "balancer", b.Name, b.Pos, t.balancers)
	fe := b.Frontend
	if !fe.Address.IsValid() {
		return
	}
	if o, taken := t.addrs[fe.Address]; taken {
		d.errorf("spec.frontend.address", "spec.frontend.address: %s is the address of %s (%s); a frontend needs an address of its own", fe.Address, o.what, o.pos)
	}
	if fe.Port == 0 || d.bad["spec.frontend.protocol"] {
		return
	}
	key := frontendKey(fe)
	if first, dup := t.frontends[key]; dup {
		d.errorf("spec.frontend", "frontend %s is already used by balancer %q (%s)", key, first.Name, first.Pos)
		return
	}
	t.frontends[key] = b
}

// references checks that the services and weighted guests of a balancer exist.
func (t *treeIndex) references(b *balancerDef) {
	d := b.doc
	if b.Source != "" && !t.services[b.Source] {
		d.errorf("spec.source", "spec.source: no guest runs service %q", b.Source)
	}
	if b.Target != "" && !t.services[b.Target] {
		d.errorf("spec.target", "spec.target: no guest runs service %q", b.Target)
	}
	t.families(b)
	if b.Target == "" || !t.services[b.Target] {
		return
	}
	for _, name := range slices.Sorted(maps.Keys(b.Weights)) {
		p := "spec.weights." + name
		g, ok := t.guests[name]
		switch {
		case !ok:
			d.errorf(p, "%s: guest %q is not defined", p, name)
		case !slices.Contains(g.Services, b.Target):
			d.errorf(p, "%s: guest %q does not run target service %q (defined at %s)", p, name, b.Target, g.Pos)
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
	for _, role := range []struct{ path, what, service string }{
		{"spec.source", "source", b.Source},
		{"spec.target", "target", b.Target},
	} {
		for _, g := range t.runners[role.service] {
			if len(g.Addresses) > 0 && !g.Addr(fam).IsValid() {
				b.doc.errorf(role.path, "%s: guest %q (%s), which runs %s service %q, has no %s address, which balancer %q needs for its %s frontend %s",
					role.path, g.Name, g.Pos, role.what, role.service, fam, b.Name, fam, b.Frontend.Address)
			}
		}
	}
}

// frontendKey renders a frontend as ADDRESS:PORT/PROTOCOL, bracketing IPv6.
func frontendKey(f Frontend) string {
	return netip.AddrPortFrom(f.Address, f.Port).String() + "/" + string(f.Protocol)
}

// build assembles the Spec from a tree that passed every check.
func (l *loader) build() *Spec {
	s := &Spec{}
	for _, h := range l.hosts {
		host := h.Host
		for _, g := range h.guests {
			guest := g.Guest
			guest.Host = host.Name
			slices.Sort(guest.Services)
			host.Guests = append(host.Guests, guest)
		}
		slices.SortFunc(host.Guests, func(a, b Guest) int { return strings.Compare(a.Name, b.Name) })
		s.Hosts = append(s.Hosts, host)
	}
	slices.SortFunc(s.Hosts, func(a, b Host) int { return strings.Compare(a.Name, b.Name) })
	for _, b := range l.balancers {
		s.Balancers = append(s.Balancers, b.Balancer)
	}
	slices.SortFunc(s.Balancers, func(a, b Balancer) int { return strings.Compare(a.Name, b.Name) })
	return s
}
