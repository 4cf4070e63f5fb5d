package main

import (
	"fmt"

	"weir/reconcile/netfilter"
)

// family is one address family's packet filter, as cleanup and diff walk
// them.
type family struct {
	name    string // "ipv4"; the agent's GET /rules?family=NAME
	command string // "iptables"
	nf      *netfilter.IPTables
}

// families returns the families weir programs on this host, through the
// chosen backend: IPv4 through iptables. ip6tables joins this list when
// weir programs IPv6 balancers.
func families(backend, netns string) ([]family, error) {
	nf, err := netfilter.NewIPTables(netfilter.IPTablesOptions{Backend: backend, Netns: netns})
	if err != nil {
		return nil, fmt.Errorf("iptables: %w", err)
	}
	return []family{{name: "ipv4", command: "iptables", nf: nf}}, nil
}
