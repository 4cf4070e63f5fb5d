package plan

import (
	"cmp"
	"slices"

	"weir/spec"
)

// Assign computes the cluster-wide plan for spec s when the hosts named in
// alive are alive in the gossip cluster and health reports which endpoint
// checks fail (nil: none). It is a pure function: the result depends only
// on the content of s, on the set of names in alive and on what health
// answers, never on the order of hosts, guests, balancers or alive names,
// nor on map iteration, so every agent that sees the same revision,
// membership and health reports computes a Plan with the same Digest.
//
// For each balancer (sorted by name):
//   - Sources are all guests running the source service, sorted by (host,
//     guest). They are listed whether or not their host is alive: a source on a
//     dead host sends nothing, and listing it keeps the plan of live hosts
//     independent of who else is up.
//   - SettingHosts are the hosts of those guests, sorted.
//   - Every guest running the target service is a target, at its address
//     of the frontend's family (IPv4 or IPv6; validation makes sure it has
//     one, and a source guest too). A target takes part when its
//     host is alive, its weight is above 0 and its host does not report it
//     unhealthy (see Health). Targets lists those taking part, sorted by
//     (host, guest), each with its share of new connections; Excluded lists
//     the others, in the same order, with their state and no share.
//   - When targets with weight > 0 are on alive hosts but none is healthy,
//     the balancer fails open: all of them take part (FailOpen), by weight.
//
// Names in alive that are not hosts of s are ignored; Plan.Alive is the
// sorted, de-duplicated intersection. Balancers that share a source service
// share their Sources and SettingHosts slices, so a Plan must be treated as
// read-only.
func Assign(s *spec.Spec, alive []string, health Health) *Plan {
	// The maps are made here, not in the helpers, so they need not escape.
	live := map[string]bool{}
	p := &Plan{Alive: aliveHosts(s, alive, live), Balancers: make([]BalancerPlan, 0, len(s.Balancers))}
	byService := map[string][]int{}
	ix := guestIndex{guests: indexGuests(s, byService), byService: byService}
	sources := sourceCache{ix: &ix, sets: map[sourceKey]sourceSet{}}
	tv := targetView{ix: &ix, live: live, health: health}
	for _, b := range sortedBalancers(s) {
		bp := balancerPlan(b, sources.of(b.Source, b.Family()))
		bp.Targets, bp.Excluded, bp.FailOpen = tv.targets(b, bp.Frontend, bp.TargetPort)
		setShares(bp.Targets)
		p.Balancers = append(p.Balancers, bp)
	}
	return p
}

// aliveHosts adds to live the names in alive that are hosts of s, and
// returns them sorted, without duplicates.
func aliveHosts(s *spec.Spec, alive []string, live map[string]bool) []string {
	hosts := map[string]bool{}
	for _, h := range s.Hosts {
		hosts[h.Name] = true
	}
	names := []string{}
	for _, a := range alive {
		if hosts[a] && !live[a] {
			live[a] = true
			names = append(names, a)
		}
	}
	slices.Sort(names)
	return names
}

// guestIndex lists every guest of a spec once, in (host, guest) order, and
// which of them run each service, so each balancer's endpoints come out
// sorted without sorting per balancer.
type guestIndex struct {
	guests    []spec.Guest
	byService map[string][]int // service → indexes in guests, ascending
}

// indexGuests returns the guests of s in (host, guest) order and adds to
// byService the indexes of those running each service.
func indexGuests(s *spec.Spec, byService map[string][]int) []spec.Guest {
	var guests []spec.Guest
	for _, h := range s.Hosts {
		for _, g := range h.Guests {
			g.Host = h.Name // where the guest is listed is where it runs
			guests = append(guests, g)
		}
	}
	slices.SortFunc(guests, func(a, b spec.Guest) int {
		return cmp.Or(cmp.Compare(a.Host, b.Host), cmp.Compare(a.Name, b.Name))
	})
	for i, g := range guests {
		for _, svc := range g.Services {
			idx := byService[svc]
			// A guest listing a service twice still counts once.
			if len(idx) == 0 || idx[len(idx)-1] != i {
				byService[svc] = append(idx, i)
			}
		}
	}
	return guests
}

// sourceSet is the sources of one service and their hosts, both sorted.
type sourceSet struct {
	endpoints []Endpoint
	hosts     []string
}

// sourceCache computes each service's sourceSet once per address family,
// so balancers of one source service and family share its slices.
type sourceCache struct {
	ix   *guestIndex
	sets map[sourceKey]sourceSet
}

type sourceKey struct {
	svc string
	fam spec.Family
}

// of returns the guests running svc with their addresses of family fam.
// Validation makes every source guest of a balancer have one; a guest of a
// hand-built spec that has none could never send to the frontend, so it is
// no source.
func (c *sourceCache) of(svc string, fam spec.Family) sourceSet {
	key := sourceKey{svc, fam}
	if ss, ok := c.sets[key]; ok {
		return ss
	}
	ss := sourceSet{endpoints: []Endpoint{}, hosts: []string{}}
	for _, i := range c.ix.byService[svc] {
		g := &c.ix.guests[i]
		a := g.Addr(fam)
		if !a.IsValid() {
			continue
		}
		ss.endpoints = append(ss.endpoints, Endpoint{Guest: g.Name, Host: g.Host, Address: a})
		if n := len(ss.hosts); n == 0 || ss.hosts[n-1] != g.Host {
			ss.hosts = append(ss.hosts, g.Host)
		}
	}
	c.sets[key] = ss
	return ss
}

// sortedBalancers returns pointers to the balancers of s sorted by name.
func sortedBalancers(s *spec.Spec) []*spec.Balancer {
	balancers := make([]*spec.Balancer, len(s.Balancers))
	for i := range s.Balancers {
		balancers[i] = &s.Balancers[i]
	}
	slices.SortFunc(balancers, func(a, b *spec.Balancer) int { return cmp.Compare(a.Name, b.Name) })
	return balancers
}

// balancerPlan returns b's plan without targets, with the defaults of an
// unset protocol, target port and strategy filled in.
func balancerPlan(b *spec.Balancer, ss sourceSet) BalancerPlan {
	fe := b.Frontend
	if fe.Protocol == "" {
		fe.Protocol = spec.TCP
	}
	port := b.TargetPort
	if port == 0 {
		port = fe.Port
	}
	strategy := b.Strategy
	if strategy == "" {
		strategy = spec.Random
	}
	return BalancerPlan{
		Name:         b.Name,
		Source:       b.Source,
		Target:       b.Target,
		Frontend:     fe,
		TargetPort:   port,
		Strategy:     strategy,
		SettingHosts: ss.hosts,
		Sources:      ss.endpoints,
	}
}

// setShares sets each target's share of new connections to its weight over
// the sum of the weights.
func setShares(targets []Target) {
	sum := 0
	for _, t := range targets {
		sum += t.Weight
	}
	// Targets taking part have positive weights; the guard only keeps a
	// hand-built spec from producing NaN shares.
	if sum > 0 {
		for i := range targets {
			targets[i].Share = float64(targets[i].Weight) / float64(sum)
		}
	}
}
