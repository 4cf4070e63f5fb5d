package reconcile

import (
	"cmp"
	"slices"

	"weir/spec"
)

// Assign computes the cluster-wide plan for spec s when the hosts named in
// alive are alive in the gossip cluster. It is a pure function: the result
// depends only on the content of s and on the set of names in alive, never on
// the order of hosts, guests, balancers or alive names, nor on map iteration,
// so every agent that sees the same revision and membership computes a Plan
// with the same Digest.
//
// For each balancer (sorted by name):
//   - Sources are all guests running the source service, sorted by (host,
//     guest). They are listed whether or not their host is alive: a source on a
//     dead host sends nothing, and listing it keeps the plan of live hosts
//     independent of who else is up.
//   - SettingHosts are the hosts of those guests, sorted.
//   - Targets are the guests running the target service on alive hosts,
//     sorted by (host, guest), each with its weight and share of new
//     connections; guests whose address family (IPv4 or IPv6) differs from
//     the frontend's are left out, as no DNAT can reach them.
//
// Names in alive that are not hosts of s are ignored; Plan.Alive is the
// sorted, de-duplicated intersection. Balancers that share a source service
// share their Sources and SettingHosts slices, so a Plan must be treated as
// read-only.
func Assign(s *spec.Spec, alive []string) *Plan {
	hosts := map[string]bool{}
	for _, h := range s.Hosts {
		hosts[h.Name] = true
	}
	live := map[string]bool{}
	p := &Plan{Alive: []string{}, Balancers: make([]BalancerPlan, 0, len(s.Balancers))}
	for _, a := range alive {
		if hosts[a] && !live[a] {
			live[a] = true
			p.Alive = append(p.Alive, a)
		}
	}
	slices.Sort(p.Alive)

	// Index the guests by service once, in (host, guest) order, so each
	// balancer's endpoints come out sorted without sorting per balancer.
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
	byService := map[string][]int{}
	for i, g := range guests {
		for _, svc := range g.Services {
			idx := byService[svc]
			// A guest listing a service twice still counts once.
			if len(idx) == 0 || idx[len(idx)-1] != i {
				byService[svc] = append(idx, i)
			}
		}
	}

	type sourceSet struct {
		endpoints []Endpoint
		hosts     []string
	}
	sources := map[string]sourceSet{}
	sourcesOf := func(svc string) sourceSet {
		if ss, ok := sources[svc]; ok {
			return ss
		}
		ss := sourceSet{endpoints: []Endpoint{}, hosts: []string{}}
		for _, i := range byService[svc] {
			g := guests[i]
			ss.endpoints = append(ss.endpoints, Endpoint{Guest: g.Name, Host: g.Host, Address: g.Address})
			if n := len(ss.hosts); n == 0 || ss.hosts[n-1] != g.Host {
				ss.hosts = append(ss.hosts, g.Host)
			}
		}
		sources[svc] = ss
		return ss
	}

	balancers := make([]*spec.Balancer, len(s.Balancers))
	for i := range s.Balancers {
		balancers[i] = &s.Balancers[i]
	}
	slices.SortFunc(balancers, func(a, b *spec.Balancer) int { return cmp.Compare(a.Name, b.Name) })

	for _, b := range balancers {
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
		ss := sourcesOf(b.Source)
		bp := BalancerPlan{
			Name:         b.Name,
			Source:       b.Source,
			Target:       b.Target,
			Frontend:     fe,
			TargetPort:   port,
			Strategy:     strategy,
			SettingHosts: ss.hosts,
			Sources:      ss.endpoints,
			Targets:      []Target{},
		}
		sum := 0
		for _, i := range byService[b.Target] {
			g := guests[i]
			// DNAT cannot change the address family: a target of the other
			// family than the frontend could never receive a connection, so
			// it gets no share.
			if !live[g.Host] || g.Address.Unmap().Is4() != fe.Address.Unmap().Is4() {
				continue
			}
			w := b.Weight(g.Name)
			sum += w
			bp.Targets = append(bp.Targets, Target{
				Endpoint: Endpoint{Guest: g.Name, Host: g.Host, Address: g.Address},
				Port:     port,
				Weight:   w,
			})
		}
		// Validation guarantees positive weights; the guard only keeps a
		// hand-built spec from producing NaN shares.
		if sum > 0 {
			for i := range bp.Targets {
				bp.Targets[i].Share = float64(bp.Targets[i].Weight) / float64(sum)
			}
		}
		p.Balancers = append(p.Balancers, bp)
	}
	return p
}
