package cluster

import (
	"fmt"
	"maps"
	"net/netip"
)

// expectedHosts are the Hosts of the revision the agent applies: the only
// members that may count as alive.
type expectedHosts struct {
	revision string
	hosts    map[string]netip.Addr
}

// SetExpected tells the cluster the Hosts (name → address) of the revision
// the agent has accepted, revision naming it in the reasons Members gives.
// From then on a member counts as a host only when its meta decodes, it is
// not an observer, its name is one of hosts and its gossip address is that
// Host's address; any other member is a stranger: listed with the reason,
// never in AliveHosts, and its hints and error texts are refused. Before
// the first call nothing can be checked, and members are not strangers.
// A change fires Changes.
func (c *Cluster) SetExpected(revision string, hosts map[string]netip.Addr) {
	e := &expectedHosts{revision: revision, hosts: make(map[string]netip.Addr, len(hosts))}
	for name, ip := range hosts {
		e.hosts[name] = ip.Unmap()
	}
	c.mu.Lock()
	same := c.expected != nil && maps.Equal(c.expected.hosts, e.hosts)
	c.expected = e
	c.mu.Unlock()
	if !same {
		signal(c.raw)
	}
}

// strangerLocked says why member name (with record r) does not count as a
// host; "" when it counts, is an observer, or nothing is known to check it
// against.
func (c *Cluster) strangerLocked(name string, r *memberRec) string {
	if r.metaErr != nil {
		return "meta not understood: " + r.metaErr.Error()
	}
	if r.decoded.Observer || c.expected == nil {
		return ""
	}
	want, ok := c.expected.hosts[name]
	switch {
	case !ok:
		return fmt.Sprintf("not a Host in revision %s", ShortRevision(c.expected.revision))
	case r.ip != want:
		return fmt.Sprintf("gossips from %s, but Host %s has address %s", orUnknown(r.ip), name, want)
	}
	return ""
}

func orUnknown(ip netip.Addr) string {
	if !ip.IsValid() {
		return "an unknown address"
	}
	return ip.String()
}
