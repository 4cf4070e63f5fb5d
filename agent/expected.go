package agent

import "net/netip"

// expect tells the cluster the Hosts of r, the revision about to be planned
// (or, at start, the last good one), so that only members matching a Host
// by name and address count as alive; the cluster ignores a repeat.
func (a *Agent) expect(r *revisionSpec) {
	hosts := make(map[string]netip.Addr, len(r.spec.Hosts))
	for _, h := range r.spec.Hosts {
		hosts[h.Name] = h.Address
	}
	a.deps.Cluster.SetExpected(r.revision, hosts)
}
