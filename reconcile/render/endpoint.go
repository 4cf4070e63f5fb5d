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

// sepChains names the WEIR-SEP chains of target endpoints on the host and
// collects those one render sends to. A Renderer keeps one across calls:
// the names depend on the endpoint only.
type sepChains struct {
	names map[endpoint]string
	inUse map[endpoint]bool // this render's
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

// use records that a balancer of this render sends to ep.
func (c *sepChains) use(ep endpoint) {
	if c.inUse == nil {
		c.inUse = map[endpoint]bool{}
	}
	c.inUse[ep] = true
}

// used returns, sorted, the endpoints this render's balancers send to,
// forgets the names of the others, and starts the next render's count.
func (c *sepChains) used() []endpoint {
	eps := make([]endpoint, 0, len(c.inUse))
	for ep := range c.inUse {
		eps = append(eps, ep)
	}
	for ep := range c.names {
		if !c.inUse[ep] {
			delete(c.names, ep)
		}
	}
	c.inUse = nil
	slices.SortFunc(eps, func(a, b endpoint) int {
		return cmp.Or(cmp.Compare(a.proto, b.proto), a.to.Compare(b.to))
	})
	return eps
}
