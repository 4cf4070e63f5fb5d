package plan

import (
	"net/netip"

	"weir/spec"
)

// targetView decides, within one Assign, which targets of a balancer take
// part: those on live hosts, with weight above 0, that health does not
// report failing.
type targetView struct {
	ix     *guestIndex
	live   map[string]bool
	health Health // nil: nothing reported
}

// targets returns the targets of b that take part (in) and those that do
// not (out), both in (host, guest) order and each with its state, and
// whether b fails open. The common case, where every target takes part,
// allocates one slice, sized once.
func (tv *targetView) targets(b *spec.Balancer, fe spec.Frontend, port uint16) (in, out []Target, failOpen bool) {
	guests := tv.ix.byService[b.Target]
	all := make([]Target, 0, len(guests))
	healthy, excluded := 0, 0
	fam := spec.FamilyOf(fe.Address)
	for _, i := range guests {
		g := &tv.ix.guests[i]
		// DNAT cannot change the address family. Validation rejects a
		// target without an address of the frontend's; in a hand-built
		// spec such a guest could never receive a connection, so it is no
		// target.
		addr := g.Addr(fam)
		if !addr.IsValid() {
			continue
		}
		t := Target{
			Endpoint: Endpoint{Guest: g.Name, Host: g.Host, Address: addr},
			Port:     port,
			Weight:   b.Weight(g.Name),
			State:    tv.state(b, g, addr),
		}
		switch t.State {
		case Healthy:
			healthy++
		case Drained, Down:
			excluded++
		}
		all = append(all, t)
	}
	// With no healthy target, the unhealthy ones take part: fail open.
	unhealthy := len(all) - excluded - healthy
	failOpen = healthy == 0 && unhealthy > 0
	if excluded == 0 && (unhealthy == 0 || failOpen) {
		return all, []Target{}, failOpen
	}
	part, n := Healthy, healthy
	if failOpen {
		part, n = Unhealthy, unhealthy
	}
	in, out = split(all, part, n)
	return in, out, failOpen
}

// state is the state of the target g of balancer b, at addr, before
// failing open.
func (tv *targetView) state(b *spec.Balancer, g *spec.Guest, addr netip.Addr) TargetState {
	switch {
	case !tv.live[g.Host]:
		return Down
	case b.Weight(g.Name) <= 0:
		return Drained
	case b.HealthCheck != nil && tv.health != nil && tv.health.Failing(g.Host) &&
		tv.health.Unhealthy(g.Host, spec.EndpointCheck{Address: addr, HealthCheck: *b.HealthCheck}.ID()):
		return Unhealthy
	}
	return Healthy
}

// split returns the targets of all in state part (n of them) and, apart,
// the others, each in their order.
func split(all []Target, part TargetState, n int) (in, out []Target) {
	in = make([]Target, 0, n)
	out = make([]Target, 0, len(all)-n)
	for _, t := range all {
		if t.State == part {
			in = append(in, t)
		} else {
			out = append(out, t)
		}
	}
	return in, out
}
