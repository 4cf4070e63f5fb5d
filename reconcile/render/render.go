// Package render turns one host's part of a plan into the netfilter state
// that host must have: the WEIR- chains of the nat and filter tables with
// their rules in iptables-restore form, and the jumps into them from the
// built-in chains. It is pure: the same plan and host give the same bytes.
// The netfilter package applies what it renders.
package render

import (
	"net/netip"

	"weir/reconcile/plan"
	"weir/spec"
)

// Top-level chains. They exist on every host, even one that sets no balancer,
// so the jumps into them never point at a missing chain.
const (
	// ServicesChain is the root of the nat dispatch tree, entered from
	// PREROUTING (guests' traffic) and OUTPUT (the host's own).
	ServicesChain = "WEIR-SERVICES"
	// PostroutingChain masquerades packets the WEIR-SEP chains marked
	// with MasqMark (hairpin traffic).
	PostroutingChain = "WEIR-POSTROUTING"
	// RejectChain is the root of the filter dispatch tree that rejects new
	// connections to balancers without targets taking part; entered from
	// FORWARD and OUTPUT for new connections only.
	RejectChain = "WEIR-REJECT"
)

// MasqMark is the packet mark bit (value/mask) that asks WEIR-POSTROUTING to
// masquerade. It is kube-proxy's bit, so a host running both agrees on its
// meaning: only packets DNATed to a target on the host itself carry it, and
// those are the packets both want masqueraded.
const MasqMark = "0x4000/0x4000"

// OwnerComment is the comment on jumps and on rules that belong to no single
// balancer (the top chains and the dispatch tree).
const OwnerComment = "weir"

// Kinds of hashed chain names: WEIR-<kind>-<16 base32 characters>.
const (
	kindDST = "DST" // dispatch: a destination-address prefix node
	kindPRO = "PRO" // dispatch: one address, split by protocol
	kindPRT = "PRT" // dispatch: one address and protocol, a port-range node
	kindSRC = "SRC" // balancer: match the source guests of this host (more than maxInlineSources)
	kindSVC = "SVC" // balancer: statistic-mode choice of a target, DNAT to targets on other hosts
	kindSEP = "SEP" // one target endpoint on this host, shared by every balancer: mark for masquerading, DNAT
	kindREJ = "REJ" // balancer without targets: reject its source guests (filter)
)

// ServiceChain returns the name of balancer's WEIR-SVC chain in the nat
// table of a host that sets it with targets taking part: its rule i takes
// the new connections that go to the i-th target of the plan's Targets (a
// DNAT to it, or a jump to the WEIR-SEP chain of a target on that host), so
// the rule's packet counter is that target's count of new connections.
func ServiceChain(balancer string) string { return chainName(kindSVC, balancer) }

// Dispatch chooses how the root chain finds a packet's balancer.
type Dispatch int

const (
	// TreeDispatch splits the frontends by destination-address prefix, then
	// protocol, then destination-port range, in a trie of chains with a few
	// rules each, so a new connection meets O(log n) rules instead of n,
	// and no path is deeper than nf_tables allows. It is the default.
	TreeDispatch Dispatch = iota
	// LinearDispatch lists one rule per frontend in the root chain, as
	// kube-proxy's iptables mode does. It exists so benchmarks and tests can
	// compare the two.
	LinearDispatch
)

// RenderOptions tunes Render; the zero value is what agents use for IPv4.
type RenderOptions struct {
	Dispatch Dispatch
	// Family is the address family to render: the balancers whose
	// frontend is of this family, as iptables-restore (IPv4, the zero
	// value) or ip6tables-restore (IPv6) input.
	Family spec.Family
}

// Render returns the owned IPv4 netfilter state host node must have for
// plan p, with tree dispatch. See RenderWith and RenderFamilies.
func Render(p *plan.Plan, node string) *Ruleset {
	return RenderWith(p, node, RenderOptions{})
}

// RenderAll returns the owned netfilter state host node must have for plan
// p in both address families; o.Family is ignored.
func RenderAll(p *plan.Plan, node string, o RenderOptions) Rulesets {
	var rs Rulesets
	for _, f := range spec.Families() {
		o.Family = f
		rs[f] = RenderWith(p, node, o)
	}
	return rs
}

// RenderWith returns the owned netfilter state host node must have for plan p:
//
//	nat    PREROUTING, OUTPUT → WEIR-SERVICES → dispatch tree (WEIR-DST/PRO/PRT-…)
//	         → [WEIR-SRC-<balancer>] -s <each source guest on node> → WEIR-SVC-<balancer>
//	         → statistic random|nth → DNAT addr:port                   (target on another host)
//	                                → WEIR-SEP-<proto addr:port>       (target on node)
//	                                    → MARK MasqMark, DNAT addr:port
//	nat    POSTROUTING → WEIR-POSTROUTING: MASQUERADE packets carrying MasqMark
//	filter FORWARD, OUTPUT (new connections) → WEIR-REJECT → dispatch tree
//	         → WEIR-REJ-<balancer>  -s <each source guest on node> REJECT
//
// Only balancers for which node is a setting host appear, and only traffic from
// their source guests on node to the frontend address, protocol and port is
// touched; everything else falls through every owned chain. Balancers with
// targets taking part (plan.BalancerPlan.Targets; Excluded ones get no rule)
// are dispatched in nat; those without are rejected in filter (tcp-reset for
// TCP, icmp-port-unreachable or icmp6-port-unreachable otherwise) rather
// than left to time out.
//
// A connection DNATed to a target on node itself is masqueraded, so its
// replies come back through the host's conntrack even when source and target
// share a bridge or are the same guest (hairpin; kube-proxy's KUBE-MARK-MASQ).
// Marking and DNAT are two targets and a rule has one, so the DNAT to such a
// target sits in a WEIR-SEP chain that marks the packet first; there is one
// per target endpoint (protocol, address, port) on node, shared by every
// balancer that sends to it, so their number is bounded by the host's own
// guests and ports, not by balancers × targets. The mark is set only on
// packets DNATed to node's own guests, which are the ones to masquerade:
// connections to targets on other hosts keep their source address, traffic
// weir does not balance (a port forward to a local guest) is never marked,
// and kube-proxy, which masquerades every packet carrying the same bit, agrees.
// (Marking a whole balancer's traffic in its WEIR-SVC chain instead would
// need a bit of weir's own, a rule per balancer, and a MASQUERADE rule per
// local guest in POSTROUTING, to save only one chain per endpoint.)
//
// Commits cost more the more chains they name: iptables-nft-restore keeps
// every chain name a transaction mentions in a sorted list (quadratic in
// their number), and nf_tables re-validates the jump graph below each
// built-in chain. So Render writes as few chains as it can: a target on
// another host is DNATed straight from its WEIR-SVC rule, and a balancer
// with a single source guest on node (maxInlineSources) has no WEIR-SRC
// chain: its dispatch leaf rule matches the source itself
// (`-s G/32 -d V/32 … -j WEIR-SVC-…`).
//
// Rules are written in the form iptables-save (v1.8.9, nft and legacy) prints
// them back, except for one field: a random-mode probability is written with 10
// decimals, while iptables-save prints the kernel's 31-bit fixed-point value
// with 11. SaveForm maps a rendered rule to the saved text exactly.
//
// One call renders one address family (o.Family): the balancers whose
// frontend is of that family, for iptables-restore or ip6tables-restore. The
// IPv6 ruleset has the shape of the IPv4 one: the same chains, /128 instead
// of /32, a dispatch tree over 128-bit addresses and icmp6-port-unreachable.
// A family in which node sets no balancer renders to an empty Ruleset (no
// table, no jump) when it is IPv6, so hosts without IPv6 balancers never
// need ip6tables; IPv4 always has its top chains, as it did before IPv6
// balancers existed.
func RenderWith(p *plan.Plan, node string, o RenderOptions) *Ruleset {
	r := &renderer{node: node, opts: o, seps: &sepChains{}}
	return r.render(p)
}

// renderer builds one Ruleset. Its three parts have three lifetimes: the
// arena holds the chains being written and is handed over to the Ruleset
// (see arena); bal holds the balancers' chains, reused from the previous
// call of a Renderer or rendered by this one; srcs only saves work within
// this call.
type renderer struct {
	node string
	opts RenderOptions

	a    arena
	bal  balancerCache
	srcs sourceCache
	seps *sepChains
}

// Tables of the ruleset, in output order.
const (
	tableFilter = iota
	tableNat
)

func tableName(t int) string {
	if t == tableFilter {
		return "filter"
	}
	return "nat"
}

// render renders the balancers of p that r.node sets, then the top chains
// and the dispatch trees leading to them, and assembles the Ruleset.
func (r *renderer) render(p *plan.Plan) *Ruleset {
	rs := &Ruleset{Family: r.opts.Family, Flows: []Flow{}}
	nb, nt := r.count(p)
	if nb == 0 && r.opts.Family == spec.IPv6 {
		r.seps.used() // forgets the names of endpoints no longer sent to
		return rs
	}
	// The balancers' own chains are written first, into arenas of their own
	// that become the chains' strings (see packBalancers); the top chains
	// and the dispatch tree go into fresh arenas after them.
	if len(r.bal.prev) == 0 {
		r.a.presize(nb, nt)
		r.bal.start(nb)
	}
	natEntries, filterEntries := r.balancers(p, rs, nb, nt)
	r.packBalancers()
	for _, es := range [][]dispatchEntry{natEntries, filterEntries} {
		for i := range es {
			es[i].leaf, es[i].out = es[i].out.leaf, nil
		}
	}
	r.a.presize(nb/2, 0)
	r.topChains()
	r.dispatch(tableNat, r.a.namedChain(tableNat, ServicesChain), natEntries)
	r.dispatch(tableFilter, r.a.namedChain(tableFilter, RejectChain), filterEntries)
	rs.Tables = jumpTables()
	r.assemble(rs)
	return rs
}

// balancers renders (or reuses) the chains of every balancer of p that
// r.node sets (nb of them, with nt targets), adds their flows to rs, and
// returns the dispatch entries of those with targets (nat) and without
// (filter).
func (r *renderer) balancers(p *plan.Plan, rs *Ruleset, nb, nt int) (natEntries, filterEntries []dispatchEntry) {
	var targets []*plan.Target
	flowTargets := make([]netip.AddrPort, 0, nt) // backing array of every Flow.Targets
	rs.Flows = make([]Flow, 0, nb)
	natEntries = make([]dispatchEntry, 0, nb)
	for i := range p.Balancers {
		bp := &p.Balancers[i]
		if !r.renders(bp) {
			continue
		}
		srcs := r.srcs.local(r.node, bp.Sources)
		if len(srcs) == 0 {
			continue
		}
		targets = targets[:0]
		first := len(flowTargets)
		// Assign gives every target its address of the frontend's family.
		for j := range bp.Targets {
			t := &bp.Targets[j]
			a := t.Address.Unmap()
			targets = append(targets, t)
			flowTargets = append(flowTargets, netip.AddrPortFrom(a, t.Port))
			if t.Host == r.node {
				r.seps.use(endpoint{proto: protocol(bp.Frontend.Protocol), to: netip.AddrPortFrom(a, t.Port)})
			}
		}
		rs.Flows = append(rs.Flows, Flow{Balancer: bp.Name, Frontend: bp.Frontend,
			Targets: flowTargets[first:len(flowTargets):len(flowTargets)]})
		e := r.balancer(bp, srcs, targets)
		if len(targets) == 0 {
			filterEntries = append(filterEntries, e)
		} else {
			natEntries = append(natEntries, e)
		}
	}
	// flowTargets may have moved while growing: point every flow at the final array.
	off := 0
	for i := range rs.Flows {
		n := len(rs.Flows[i].Targets)
		rs.Flows[i].Targets = flowTargets[off : off+n : off+n]
		off += n
	}
	return natEntries, filterEntries
}

// balancer reuses the previous call's chains of bp when they were rendered
// from the same inputs, else renders them, and returns bp's dispatch entry.
func (r *renderer) balancer(bp *plan.BalancerPlan, srcs []netip.Addr, targets []*plan.Target) dispatchEntry {
	in := r.bal.fingerprint(bp, srcs, targets, r.node)
	out, dup := r.bal.prev[bp.Name], r.bal.next[bp.Name] != nil
	if out == nil || dup || out.in != in {
		out = r.renderBalancer(bp, srcs, targets, in)
	}
	if !dup && r.bal.next != nil {
		// Names are unique in a valid spec; of duplicates, only the
		// first is remembered.
		r.bal.next[bp.Name] = out
	}
	r.bal.outs = append(r.bal.outs, out)
	addr, _ := addrKey(bp.Frontend.Address)
	return dispatchEntry{
		addr:    addr,
		proto:   protocol(bp.Frontend.Protocol),
		port:    bp.Frontend.Port,
		comment: bp.Name,
		out:     out,
		srcs:    out.srcs,
	}
}

// topChains writes the chain that masquerades marked packets and the
// WEIR-SEP chains of the target endpoints on r.node that the balancers
// jump to.
func (r *renderer) topChains() {
	post := r.a.namedChain(tableNat, PostroutingChain)
	r.a.rule(post).match("mark --mark " + MasqMark).comment(OwnerComment).to("MASQUERADE")
	for _, ep := range r.seps.used() {
		sep := r.a.namedChain(tableNat, r.seps.name(ep))
		r.a.rule(sep).comment(OwnerComment).to("MARK --set-xmark " + MasqMark)
		r.a.rule(sep).proto(ep.proto).comment(OwnerComment).dnat(ep.to)
	}
}

// jumpTables returns the ruleset's tables with their jumps from the built-in
// chains and no chains yet.
func jumpTables() []Table {
	jump := func(chain string) []string {
		return []string{"-m", "comment", "--comment", OwnerComment, "-j", chain}
	}
	newJump := func(chain string) []string {
		return append([]string{"-m", "conntrack", "--ctstate", "NEW"}, jump(chain)...)
	}
	return []Table{
		{Name: "filter", Jumps: []Jump{
			{Chain: "FORWARD", Rule: newJump(RejectChain)},
			{Chain: "OUTPUT", Rule: newJump(RejectChain)},
		}},
		{Name: "nat", Jumps: []Jump{
			{Chain: "OUTPUT", Rule: jump(ServicesChain)},
			{Chain: "POSTROUTING", Rule: jump(PostroutingChain)},
			{Chain: "PREROUTING", Rule: jump(ServicesChain)},
		}},
	}
}

// renders reports whether bp is rendered: node sets it and its frontend is
// of the family being rendered.
func (r *renderer) renders(bp *plan.BalancerPlan) bool {
	return spec.FamilyOf(bp.Frontend.Address) == r.opts.Family && bp.SetBy(r.node)
}

// width is the width of the rendered family's addresses in the dispatch trie.
func (r *renderer) width() int {
	if r.opts.Family == spec.IPv6 {
		return width6
	}
	return width4
}

// count returns how many balancers of the family node sets in p, and their
// targets.
func (r *renderer) count(p *plan.Plan) (nb, nt int) {
	for i := range p.Balancers {
		if r.renders(&p.Balancers[i]) {
			nb++
			nt += len(p.Balancers[i].Targets)
		}
	}
	return nb, nt
}

func protocol(p spec.Protocol) spec.Protocol {
	if p == "" {
		return spec.TCP
	}
	return p
}

func addrBits(a netip.Addr) uint32 {
	b := a.Unmap().As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func bitsAddr(a uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)})
}
