package render

import (
	"net/netip"
	"slices"
	"unsafe"

	"weir/reconcile/plan"
	"weir/spec"
)

// maxInlineSources is the most source guests a balancer may have on a host
// for the dispatch leaf to match them itself (one rule per guest) instead of
// jumping to a WEIR-SRC chain that does. With one, the leaf rule only gains
// `-s G/32`: a chain and a rule fewer per balancer, a jump fewer per packet,
// and no packet meets more rules. With more, a packet bound for a frontend
// later in the same tree node meets one rule per source of each earlier
// leaf: at 10,000 balancers with two sources each (TestTreeDispatchDepth's
// spec), allowing 2 would save another 5,000 of 22,700 nat chains but raise
// the most dispatch rules a packet meets from 33 to 36, over the tree's
// 2·log2(n)+6 bound.
const maxInlineSources = 1

// renderBalancer renders the chains of one balancer into the arena;
// packBalancers turns them into its balancerOut once every balancer is done.
func (r *renderer) renderBalancer(bp *plan.BalancerPlan, srcs []netip.Addr, targets []*plan.Target, in balancerInput) *balancerOut {
	c0 := len(r.a.chains)
	var leaf int
	var leafSrcs []netip.Addr
	if len(targets) == 0 {
		leaf = r.rejectChains(bp, srcs)
	} else {
		leaf, leafSrcs = r.balancerChains(bp, srcs, targets)
	}
	out := r.bal.add(in)
	out.srcs = leafSrcs
	r.bal.pending = append(r.bal.pending, pendingOut{out: out, c0: c0, c1: len(r.a.chains), leaf: leaf})
	return out
}

// balancerChains adds the nat chains of a balancer with targets taking part
// and returns the id of the chain the dispatch tree jumps to and, when that
// is the WEIR-SVC chain, the sources the dispatch leaf must match.
func (r *renderer) balancerChains(bp *plan.BalancerPlan, srcs []netip.Addr, targets []*plan.Target) (int, []netip.Addr) {
	r.a.key = append(r.a.key[:0], bp.Name...)
	leaf, leafSrcs := -1, srcs
	if len(srcs) > maxInlineSources {
		leaf, leafSrcs = r.a.hashedChain(tableNat, kindSRC, r.a.key), nil
	}
	svc := r.a.hashedChain(tableNat, kindSVC, r.a.key)
	if leaf < 0 {
		leaf = svc
	}
	if leafSrcs == nil {
		for _, a := range srcs {
			r.a.rule(leaf).src(a).comment(bp.Name).jump(svc)
		}
	}
	rest := 0
	for _, t := range targets {
		rest += t.Weight
	}
	for i, t := range targets {
		r.targetRule(svc, bp, i, len(targets), rest, t)
		rest -= t.Weight
	}
	return leaf, leafSrcs
}

// targetRule writes the rule of chain svc that chooses targets[i] of n: it
// takes its share of the connections that reach it (rest is the weight of
// targets[i:]) and DNATs them, or, for a target on this host, sends them to
// the WEIR-SEP chain of its endpoint, which marks them for masquerading
// first (see RenderWith).
func (r *renderer) targetRule(svc int, bp *plan.BalancerPlan, i, n, rest int, t *plan.Target) {
	proto := protocol(bp.Frontend.Protocol)
	to := netip.AddrPortFrom(t.Address.Unmap(), t.Port)
	local := t.Host == r.node
	w := r.a.rule(svc)
	if !local {
		// DNAT with a port needs the protocol; iptables-save prints -p
		// before the matches.
		w = w.proto(proto)
	}
	w = w.comment(bp.Name)
	switch {
	case i == n-1:
		// The last rule is unconditional: every packet that reaches it
		// goes to the last target, whatever rounding did before.
	case bp.Strategy == spec.RoundRobin:
		// Rule i sees the connections rules 1..i-1 did not take and keeps
		// one in (n-i+1) of them: a fair rotation when weights are equal,
		// which validation requires of roundrobin balancers.
		w = w.nth(n - i)
	default:
		// Rule i takes wi/(wi+…+wn) of what reaches it, so target i gets
		// wi/Σw overall.
		w = w.random(float64(t.Weight) / float64(rest))
	}
	if !local {
		w.dnat(to)
		return
	}
	w.jumpTo(r.seps.name(endpoint{proto: proto, to: to}))
}

// rejectChains adds the filter chain of a balancer without targets taking
// part and returns its id.
func (r *renderer) rejectChains(bp *plan.BalancerPlan, srcs []netip.Addr) int {
	r.a.key = append(r.a.key[:0], bp.Name...)
	c := r.a.hashedChain(tableFilter, kindREJ, r.a.key)
	proto := protocol(bp.Frontend.Protocol)
	unreachable := "REJECT --reject-with icmp-port-unreachable"
	if r.opts.Family == spec.IPv6 {
		unreachable = "REJECT --reject-with icmp6-port-unreachable"
	}
	for _, a := range srcs {
		// A TCP reset fails connect() at once; ICMP port-unreachable does the
		// same for UDP and SCTP sockets.
		if proto == spec.TCP {
			r.a.rule(c).src(a).proto(spec.TCP).comment(bp.Name).to("REJECT --reject-with tcp-reset")
		} else {
			r.a.rule(c).src(a).comment(bp.Name).to(unreachable)
		}
	}
	return c
}

// sourceCache remembers, within one render, the addresses of each Sources
// slice's guests on the node.
type sourceCache map[sourcesKey][]netip.Addr

type sourcesKey struct {
	first *plan.Endpoint
	n     int
}

// local returns the addresses of the source guests on node (Assign gives
// each its address of the balancer's family). Balancers
// of one source service share their Sources slice (see plan.Assign), so the
// answer is cached by slice identity: 10,000 balancers of one service then
// scan its sources once, not 10,000 times.
func (c *sourceCache) local(node string, sources []plan.Endpoint) []netip.Addr {
	key := sourcesKey{unsafe.SliceData(sources), len(sources)}
	if srcs, ok := (*c)[key]; ok {
		return srcs
	}
	var srcs []netip.Addr
	for _, e := range sources {
		if a := e.Address.Unmap(); e.Host == node && !slices.Contains(srcs, a) {
			srcs = append(srcs, a)
		}
	}
	if *c == nil {
		*c = sourceCache{}
	}
	(*c)[key] = srcs
	return srcs
}
