// Package health runs the health checks of balancer targets: the agent on a
// host probes its own guests from the host OS, one probe per distinct
// endpoint check however many balancers share it, and damps the results into
// a state per check that it reports on every change. It knows nothing of
// gossip or planning: ChecksFor derives what a host must probe from a spec,
// a Prober probes it, and the agent carries the states to the cluster.
package health

import (
	"bytes"
	"slices"

	"weir/spec"
)

// Check is one endpoint check with its ID.
type Check struct {
	ID spec.CheckID
	spec.EndpointCheck
}

// ChecksFor returns the endpoint checks that host node must run for spec s:
// for every balancer with a health check, each of its target guests on node
// whose address family is the frontend's (the others are no targets; see
// plan.Assign). Checks are distinct — balancers that check one guest
// address with the same parameters share one — and sorted by ID. Drained
// targets are checked too, so their state is known when they come back.
func ChecksFor(s *spec.Spec, node string) []Check {
	h := s.Host(node)
	if h == nil {
		return nil
	}
	seen := map[spec.CheckID]bool{}
	var out []Check
	for i := range s.Balancers {
		b := &s.Balancers[i]
		if b.HealthCheck == nil {
			continue
		}
		for j := range h.Guests {
			g := &h.Guests[j]
			// A target is checked at its address of the balancer's family,
			// the one its rules DNAT to.
			addr := g.Addr(b.Family())
			if !g.Runs(b.Target) || !addr.IsValid() {
				continue
			}
			ec := spec.EndpointCheck{Address: addr, HealthCheck: *b.HealthCheck}
			if id := ec.ID(); !seen[id] {
				seen[id] = true
				out = append(out, Check{ID: id, EndpointCheck: ec})
			}
		}
	}
	slices.SortFunc(out, func(a, b Check) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	return out
}
