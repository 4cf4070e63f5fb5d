package main

import (
	"fmt"

	"weir/reconcile/netfilter"
	"weir/spec"
)

// family is one address family's packet filter, as cleanup and diff walk
// them.
type family struct {
	name    string // "ipv4"; the agent's GET /rules?family=NAME
	command string // "iptables"
	nf      *netfilter.IPTables
}

// label is what output adds to a table/chain of the family: nothing for
// IPv4, whose lines read as they did before weir programmed IPv6, and
// " (ip6tables)" for IPv6.
func (f family) label() string {
	if f.nf.Family() == spec.IPv4 {
		return ""
	}
	return " (" + f.command + ")"
}

// families returns the families weir programs on this host, through the
// chosen backend: IPv4 through iptables, IPv6 through ip6tables. A host
// without a working iptables is an error; one without ip6tables (IPv6
// disabled, the binaries not installed) has no IPv6 balancers either, so
// it is left out, and skipped says why.
func families(backend, netns string) (fams []family, skipped []string, err error) {
	for _, f := range spec.Families() {
		cmd := netfilter.Command(f)
		nf, err := netfilter.NewIPTables(netfilter.IPTablesOptions{Family: f, Backend: backend, Netns: netns})
		switch {
		case err != nil && f == spec.IPv4:
			return nil, nil, fmt.Errorf("%s: %w", cmd, err)
		case err != nil:
			skipped = append(skipped, fmt.Sprintf("%s unavailable, skipped: %v", cmd, err))
		default:
			fams = append(fams, family{name: f.Name(), command: cmd, nf: nf})
		}
	}
	return fams, skipped, nil
}
