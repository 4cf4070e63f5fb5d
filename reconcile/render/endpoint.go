package render

import (
	"cmp"
	"net/netip"
	"slices"

	"weir/spec"
)

// endpoint is a target endpoint on the rendering host: the key of its
// WEIR-SEP chain.
type endpoint struct {
	proto spec.Protocol
	to    netip.AddrPort
}

// sepChains names the WEIR-SEP chains of target endpoints on the host. A
// Renderer keeps one across calls: the names depend on the endpoint only.
type sepChains struct {
	names map[endpoint]string
}

// name returns the name of ep's WEIR-SEP chain: WEIR-SEP- and the hash of
// "PROTO ADDR:PORT", like the other hashed chains.
func (c *sepChains) name(ep endpoint) string {
	if n, ok := c.names[ep]; ok {
		return n
	}
	if c.names == nil {
		c.names = map[endpoint]string{}
	}
	n := chainName(kindSEP, string(ep.proto)+" "+ep.to.String())
	c.names[ep] = n
	return n
}

// used returns, sorted, the endpoints on the host that the balancers outs
// send to, and forgets the names of the others.
func (c *sepChains) used(outs []*balancerOut) []endpoint {
	seen := map[endpoint]bool{}
	var eps []endpoint
	for _, o := range outs {
		for _, t := range o.in.targets {
			ep := endpoint{proto: o.in.proto, to: netip.AddrPortFrom(t.addr, t.port)}
			if t.local && !seen[ep] {
				seen[ep] = true
				eps = append(eps, ep)
			}
		}
	}
	for ep := range c.names {
		if !seen[ep] {
			delete(c.names, ep)
		}
	}
	slices.SortFunc(eps, func(a, b endpoint) int {
		return cmp.Or(cmp.Compare(a.proto, b.proto), a.to.Compare(b.to))
	})
	return eps
}
