package reconcile

import (
	"cmp"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"math"
	"math/bits"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	"weir/spec"
)

// Top-level chains. They exist on every host, even one that sets no balancer,
// so the jumps into them never point at a missing chain.
const (
	// ServicesChain is the root of the nat dispatch tree, entered from
	// PREROUTING (guests' traffic) and OUTPUT (the host's own).
	ServicesChain = "WEIR-SERVICES"
	// PostroutingChain masquerades packets marked by MarkMasqChain.
	PostroutingChain = "WEIR-POSTROUTING"
	// MarkMasqChain marks a packet for masquerading (hairpin traffic).
	MarkMasqChain = "WEIR-MARK-MASQ"
	// RejectChain is the root of the filter dispatch tree that rejects new
	// connections to balancers without alive targets; entered from FORWARD
	// and OUTPUT for new connections only.
	RejectChain = "WEIR-REJECT"
)

// MasqMark is the packet mark bit (value/mask) that asks WEIR-POSTROUTING to
// masquerade. It is kube-proxy's bit, so a host running both agrees on its
// meaning.
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
	kindSEP = "SEP" // balancer: one target on this host: mark for masquerading, DNAT
	kindREJ = "REJ" // balancer without targets: reject its source guests (filter)
)

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

// RenderOptions tunes Render; the zero value is what agents use.
type RenderOptions struct {
	Dispatch Dispatch
}

// Render returns the owned netfilter state host node must have for plan p,
// with tree dispatch. See RenderWith.
func Render(p *Plan, node string) *Ruleset {
	return RenderWith(p, node, RenderOptions{})
}

// RenderWith returns the owned netfilter state host node must have for plan p:
//
//	nat    PREROUTING, OUTPUT → WEIR-SERVICES → dispatch tree (WEIR-DST/PRO/PRT-…)
//	         → [WEIR-SRC-<balancer>] -s <each source guest on node> → WEIR-SVC-<balancer>
//	         → statistic random|nth → DNAT addr:port                (target on another host)
//	                                → WEIR-SEP-<target> → WEIR-MARK-MASQ, DNAT addr:port (on node)
//	nat    POSTROUTING → WEIR-POSTROUTING: MASQUERADE packets carrying MasqMark
//	filter FORWARD, OUTPUT (new connections) → WEIR-REJECT → dispatch tree
//	         → WEIR-REJ-<balancer>  -s <each source guest on node> REJECT
//
// Only balancers for which node is a setting host appear, and only traffic from
// their source guests on node to the frontend address, protocol and port is
// touched; everything else falls through every owned chain. Balancers with
// alive targets are dispatched in nat; those without are rejected in filter
// (tcp-reset for TCP, icmp-port-unreachable otherwise) rather than left to time
// out. A target on node itself is marked for masquerading, so its replies come
// back through the host's conntrack even when source and target share a
// bridge or are the same guest (kube-proxy's KUBE-MARK-MASQ).
//
// The kernel's cost of a commit on nf_tables grows with the number of chains
// reachable from a built-in chain (nft_chain_validate walks the whole jump
// graph below each one), so Render writes as few chains as it can: a target
// on another host is DNATed straight from its WEIR-SVC rule, and only a
// target on node gets a WEIR-SEP chain, because marking and DNAT are two
// targets and a rule has one. A balancer with a single source guest on node
// (maxInlineSources) has no WEIR-SRC chain: its dispatch leaf rule matches
// the source itself (`-s G/32 -d V/32 … -j WEIR-SVC-…`).
//
// Rules are written in the form iptables-save (v1.8.9, nft and legacy) prints
// them back, except for one field: a random-mode probability is written with 10
// decimals, while iptables-save prints the kernel's 31-bit fixed-point value
// with 11. SaveForm maps a rendered rule to the saved text exactly.
//
// weir programs IPv4 iptables only: balancers whose frontend is not IPv4, and
// source or target guests whose address is not IPv4, are left out, and
// RenderWarnings lists them.
func RenderWith(p *Plan, node string, o RenderOptions) *Ruleset {
	r := &renderer{node: node, opts: o}
	return r.render(p)
}

// Renderer renders one host's successive plans, as RenderWith does, reusing
// the chains of every balancer whose rendering inputs (its name, kind,
// strategy, protocol, local sources and targets) are those of the previous
// call: when one balancer of 10,000 changes, only its chains and the
// dispatch tree are rendered again, and the unchanged chains' rules are the
// very strings of the previous Ruleset, which the Syncer then finds equal
// without reading them. The output is byte for byte RenderWith's. A
// Renderer is not safe for concurrent use.
type Renderer struct {
	node  string
	opts  RenderOptions
	cache map[string]*balancerOut // by balancer name: the previous call's balancers
}

// NewRenderer returns a Renderer for host node.
func NewRenderer(node string, o RenderOptions) *Renderer {
	return &Renderer{node: node, opts: o}
}

// Render returns the owned netfilter state the host must have for plan p;
// see RenderWith.
func (rr *Renderer) Render(p *Plan) *Ruleset {
	r := &renderer{node: rr.node, opts: rr.opts, prev: rr.cache, next: make(map[string]*balancerOut, max(len(rr.cache), 64))}
	rs := r.render(p)
	// Only this call's balancers are kept, so the cache holds nothing the
	// Ruleset just returned does not refer to. Reused balancers keep the
	// arenas of the call that rendered them alive, partly dead once some of
	// their neighbours changed; when the arenas are more than twice what is
	// still used, the next call renders from scratch.
	live, total := 0, 0
	seen := map[*slab]bool{}
	for _, o := range r.next {
		live += o.size
		if !seen[o.slab] {
			seen[o.slab] = true
			total += o.slab.size
		}
	}
	rr.cache = r.next
	if total > 2*live+1<<20 {
		rr.cache = nil
	}
	return rs
}

// balancerOut is the rendered chains of one balancer and what they were
// rendered from.
type balancerOut struct {
	in   balancerInput
	leaf string // the chain the dispatch tree jumps to
	// srcs are the source guests the dispatch leaf matches itself, one rule
	// each, or nil when leaf (a WEIR-SRC chain) matches them.
	srcs   []netip.Addr
	chains []outChain // in the order declared
	slab   *slab      // the memory the chains' strings live in
	size   int        // bytes of names and rules in it
}

// outChain is one chain of the Ruleset being assembled.
type outChain struct {
	table int
	name  string
	rules []string
}

// balancerInput is everything a balancer's own chains depend on.
type balancerInput struct {
	reject   bool
	strategy spec.Strategy
	proto    spec.Protocol
	srcs     []netip.Addr
	targets  []targetInput
}

type targetInput struct {
	guest  string
	local  bool
	addr   netip.Addr
	port   uint16
	weight int
}

// matches reports whether the balancer would be rendered from the same inputs.
func (in *balancerInput) matches(bp *BalancerPlan, srcs []netip.Addr, targets []*Target, node string) bool {
	if in.reject != (len(targets) == 0) || in.strategy != bp.Strategy || in.proto != protocol(bp.Frontend.Protocol) ||
		!slices.Equal(in.srcs, srcs) || len(in.targets) != len(targets) {
		return false
	}
	for i, t := range targets {
		x := in.targets[i]
		if x.guest != t.Guest || x.local != (t.Host == node) || x.addr != t.Address.Unmap() || x.port != t.Port || x.weight != t.Weight {
			return false
		}
	}
	return true
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

// renderer builds a Ruleset. Rendering 10,000 balancers makes about 100,000
// rules, so it writes every chain name into one byte arena and every rule
// into another, and turns each arena into a single string at the end: the
// chain names and rules of the Ruleset are substrings of those two strings,
// which keeps allocations (and GC work) independent of the number of rules.
type renderer struct {
	node string
	opts RenderOptions

	names  []byte     // chain names, back to back
	text   []byte     // rule texts, back to back
	start  int        // offset in text of the rule being written
	chains []chainRec // by chain id
	rules  []ruleRec  // in the order they were added
	key    []byte     // scratch for hash keys
	match  []byte     // scratch for a dispatch leaf's match, see leafRules

	srcCache map[sourcesKey][]netip.Addr // see localSources

	prev, next map[string]*balancerOut // see Renderer; nil for RenderWith
	outSlab    []balancerOut           // backing array of the balancerOuts rendered
	outs       []*balancerOut          // this call's balancers, in plan order
	pending    []pendingOut            // balancers rendered by this call, not yet packed
	tin        []targetInput           // backing array of their inputs' targets
	slab       *slab                   // the arenas they are packed from
}

// pendingOut is a balancer whose chains are in the arenas: ids [c0, c1) of
// renderer.chains, leaf among them.
type pendingOut struct {
	out          *balancerOut
	c0, c1, leaf int
}

// slab is the memory of one Render's balancer chains, which balancers reused
// by later calls keep alive; see Renderer.Render.
type slab struct{ size int }

type span struct{ lo, hi int }

type chainRec struct {
	table int
	name  span // in renderer.names
}

type ruleRec struct {
	chain int
	text  span // in renderer.text
}

// dispatchEntry is one frontend the dispatch tree leads to.
type dispatchEntry struct {
	addr    uint32
	proto   spec.Protocol
	port    uint16
	leaf    string       // chain to jump to
	srcs    []netip.Addr // sources the leaf rule matches, one rule each; nil: none
	out     *balancerOut // whose leaf it is, until the leaf is known
	comment string       // balancer name
}

func (r *renderer) render(p *Plan) *Ruleset {
	rs := &Ruleset{Flows: []Flow{}}
	nb, nt := r.count(p)
	// The balancers' own chains are written first, into arenas of their own
	// that become the chains' strings (see packBalancers); the top chains
	// and the dispatch tree go into fresh arenas after them.
	if len(r.prev) == 0 {
		r.presize(nb, nt)
	}
	r.tin = make([]targetInput, 0, nt)
	r.outSlab = make([]balancerOut, 0, nb)
	var natEntries, filterEntries []dispatchEntry
	var targets []*Target
	var flowTargets []netip.AddrPort // backing array of every Flow.Targets
	for i := range p.Balancers {
		bp := &p.Balancers[i]
		if !bp.Frontend.Address.Unmap().Is4() || !bp.setBy(r.node) {
			continue
		}
		srcs := r.localSources(bp.Sources)
		if len(srcs) == 0 {
			continue
		}
		targets = targets[:0]
		first := len(flowTargets)
		for j := range bp.Targets {
			t := &bp.Targets[j]
			if a := t.Address.Unmap(); a.Is4() {
				targets = append(targets, t)
				flowTargets = append(flowTargets, netip.AddrPortFrom(a, t.Port))
			}
		}
		// Flow.Targets are re-sliced from flowTargets once it stops growing.
		rs.Flows = append(rs.Flows, Flow{Balancer: bp.Name, Frontend: bp.Frontend,
			Targets: flowTargets[first:len(flowTargets):len(flowTargets)]})
		e := dispatchEntry{
			addr:    addrBits(bp.Frontend.Address),
			proto:   protocol(bp.Frontend.Protocol),
			port:    bp.Frontend.Port,
			comment: bp.Name,
		}
		out, dup := r.prev[bp.Name], r.next[bp.Name] != nil
		if out == nil || dup || !out.in.matches(bp, srcs, targets, r.node) {
			out = r.renderBalancer(bp, srcs, targets)
		}
		if !dup && r.next != nil {
			// Names are unique in a valid spec; of duplicates, only the
			// first is remembered.
			r.next[bp.Name] = out
		}
		r.outs = append(r.outs, out)
		e.out, e.srcs = out, out.srcs
		if len(targets) == 0 {
			filterEntries = append(filterEntries, e)
		} else {
			natEntries = append(natEntries, e)
		}
	}
	r.packBalancers()
	for _, es := range [][]dispatchEntry{natEntries, filterEntries} {
		for i := range es {
			es[i].leaf, es[i].out = es[i].out.leaf, nil
		}
	}
	r.presize(nb/2, 0)
	mark := r.namedChain(tableNat, MarkMasqChain)
	r.rule("")
	r.comment(OwnerComment)
	r.text = append(r.text, " -j MARK --set-xmark "+MasqMark...)
	r.end(mark)
	post := r.namedChain(tableNat, PostroutingChain)
	r.rule("-m mark --mark " + MasqMark)
	r.comment(OwnerComment)
	r.text = append(r.text, " -j MASQUERADE"...)
	r.end(post)

	// flowTargets may have moved while growing: point every flow at the final array.
	off := 0
	for i := range rs.Flows {
		n := len(rs.Flows[i].Targets)
		rs.Flows[i].Targets = flowTargets[off : off+n : off+n]
		off += n
	}

	r.dispatch(tableNat, r.namedChain(tableNat, ServicesChain), natEntries)
	r.dispatch(tableFilter, r.namedChain(tableFilter, RejectChain), filterEntries)

	jump := func(chain string) []string {
		return []string{"-m", "comment", "--comment", OwnerComment, "-j", chain}
	}
	newJump := func(chain string) []string {
		return append([]string{"-m", "conntrack", "--ctstate", "NEW"}, jump(chain)...)
	}
	rs.Tables = []Table{
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
	r.assemble(rs)
	return rs
}

// localSources returns the IPv4 addresses of the source guests on r.node.
// Balancers of one source service share their Sources slice (see Assign), so
// the answer is cached by slice identity: scanning 200 sources of each of
// 10,000 balancers was a tenth of Render's time.
func (r *renderer) localSources(sources []Endpoint) []netip.Addr {
	key := sourcesKey{unsafe.SliceData(sources), len(sources)}
	if srcs, ok := r.srcCache[key]; ok {
		return srcs
	}
	var srcs []netip.Addr
	for _, e := range sources {
		if a := e.Address.Unmap(); e.Host == r.node && a.Is4() && !slices.Contains(srcs, a) {
			srcs = append(srcs, a)
		}
	}
	if r.srcCache == nil {
		r.srcCache = map[sourcesKey][]netip.Addr{}
	}
	r.srcCache[key] = srcs
	return srcs
}

type sourcesKey struct {
	first *Endpoint
	n     int
}

// renderBalancer renders the chains of one balancer into the arenas;
// packBalancers turns them into its balancerOut once every balancer is done.
func (r *renderer) renderBalancer(bp *BalancerPlan, srcs []netip.Addr, targets []*Target) *balancerOut {
	c0 := len(r.chains)
	var leaf int
	var leafSrcs []netip.Addr
	if len(targets) == 0 {
		leaf = r.rejectChains(bp, srcs)
	} else {
		leaf, leafSrcs = r.balancerChains(bp, srcs, targets)
	}
	if len(r.outSlab) == cap(r.outSlab) {
		r.outSlab = make([]balancerOut, 0, max(64, cap(r.outSlab)))
	}
	r.outSlab = append(r.outSlab, balancerOut{in: balancerInput{reject: len(targets) == 0, strategy: bp.Strategy, proto: protocol(bp.Frontend.Protocol), srcs: srcs}})
	out := &r.outSlab[len(r.outSlab)-1]
	out.srcs = leafSrcs
	t0 := len(r.tin)
	for _, t := range targets {
		r.tin = append(r.tin, targetInput{guest: t.Guest, local: t.Host == r.node, addr: t.Address.Unmap(), port: t.Port, weight: t.Weight})
	}
	out.in.targets = r.tin[t0:len(r.tin):len(r.tin)]
	r.pending = append(r.pending, pendingOut{out: out, c0: c0, c1: len(r.chains), leaf: leaf})
	return out
}

// packBalancers turns the arenas, which hold the chains of the balancers
// rendered by this call, into their balancerOuts without copying: their
// names and rules become substrings of the arenas, and the arenas are left
// to them (the top chains and the tree get new ones).
func (r *renderer) packBalancers() {
	if len(r.pending) > 0 {
		sl := &slab{size: cap(r.names) + cap(r.text)}
		chains := r.outChains()
		for _, pd := range r.pending {
			pd.out.chains = chains[pd.c0:pd.c1:pd.c1]
			pd.out.leaf = chains[pd.leaf].name
			pd.out.slab = sl
			for _, c := range pd.out.chains {
				pd.out.size += len(c.name)
				for _, rule := range c.rules {
					pd.out.size += len(rule)
				}
			}
		}
	}
	r.pending = nil
	r.names, r.text, r.chains, r.rules = nil, nil, nil, nil
}

// outChains turns the arenas' chain and rule records into chains whose names
// and rules are substrings of the arenas, indexed like r.chains. The arenas
// are never written again, so the strings may share their memory (as
// strings.Builder does) instead of copying them; all rules sit in one slice.
func (r *renderer) outChains() []outChain {
	names, text := arenaString(r.names), arenaString(r.text)
	count := make([]int, len(r.chains))
	for _, rr := range r.rules {
		count[rr.chain]++
	}
	rules := make([]string, len(r.rules))
	out := make([]outChain, len(r.chains))
	next := 0
	for id, c := range r.chains {
		out[id] = outChain{table: c.table, name: names[c.name.lo:c.name.hi], rules: rules[next : next : next+count[id]]}
		next += count[id]
	}
	for _, rr := range r.rules {
		oc := &out[rr.chain]
		oc.rules = append(oc.rules, text[rr.text.lo:rr.text.hi])
	}
	return out
}

// count returns how many balancers node sets in p, and their targets.
func (r *renderer) count(p *Plan) (nb, nt int) {
	for i := range p.Balancers {
		if p.Balancers[i].setBy(r.node) {
			nb++
			nt += len(p.Balancers[i].Targets)
		}
	}
	return nb, nt
}

// presize gives the arenas about the capacity nb balancers with nt targets
// need: growing a slice of many megabytes by appending copies it several
// times over, which used to be most of Render's time at 10,000 balancers.
func (r *renderer) presize(nb, nt int) {
	// Measured on random plans: about 330 bytes of rules per balancer (source
	// match and dispatch tree) and 190 per target (choice and DNAT); at most
	// 3 chains per balancer plus one per target (only local targets have one).
	chains := 4 + 3*nb + nt
	r.text = make([]byte, 0, 256+340*nb+200*nt)
	r.names = make([]byte, 0, 25*chains)
	r.chains = make([]chainRec, 0, chains)
	r.rules = make([]ruleRec, 0, 2+4*nb+2*nt)
	if r.key == nil {
		r.key = make([]byte, 0, 128)
	}
}

// assemble turns the arenas and the balancers' chains into the Ruleset's
// chains, sorted by name.
func (r *renderer) assemble(rs *Ruleset) {
	own := r.outChains()
	// Sorting 100,000 chains by string comparison was a fifth of Render's
	// time. Every name starts with "WEIR-" and is ASCII (top bit clear), so
	// the table in the top bit and the next 16 bytes packed big-endian into
	// two words order the chains as (table, name) do; the rare names equal
	// in those bytes fall back to comparing the rest.
	type sortKey struct {
		hi, lo uint64
		c      *outChain
	}
	n := len(own)
	for _, o := range r.outs {
		n += len(o.chains)
	}
	keys := make([]sortKey, 0, n)
	add := func(c *outChain) {
		var buf [16]byte
		copy(buf[:], c.name[len("WEIR-"):])
		keys = append(keys, sortKey{
			hi: uint64(c.table)<<63 | binary.BigEndian.Uint64(buf[:8]),
			lo: binary.BigEndian.Uint64(buf[8:]),
			c:  c,
		})
	}
	for i := range own {
		add(&own[i])
	}
	for _, o := range r.outs {
		for i := range o.chains {
			add(&o.chains[i])
		}
	}
	slices.SortFunc(keys, func(a, b sortKey) int {
		if a.hi != b.hi {
			return cmp.Compare(a.hi, b.hi)
		}
		if a.lo != b.lo {
			return cmp.Compare(a.lo, b.lo)
		}
		return strings.Compare(a.c.name, b.c.name)
	})
	perTable := [2][]Chain{make([]Chain, 0, 1), make([]Chain, 0, len(keys))}
	for _, k := range keys {
		c := k.c
		perTable[c.table] = append(perTable[c.table], Chain{Name: c.name, Rules: c.rules[:len(c.rules):len(c.rules)]})
	}
	rs.Tables[0].Chains, rs.Tables[1].Chains = perTable[tableFilter], perTable[tableNat]
}

// arenaString returns b as a string without copying; b must never be
// modified afterwards.
func arenaString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// namedChain declares a chain with a fixed name and returns its id.
func (r *renderer) namedChain(table int, name string) int {
	lo := len(r.names)
	r.names = append(r.names, name...)
	r.chains = append(r.chains, chainRec{table: table, name: span{lo, len(r.names)}})
	return len(r.chains) - 1
}

// hashedChain declares the chain WEIR-<kind>-<16 base32 characters of
// sha256(key)> and returns its id: 25 characters, under iptables' limit of
// 28, with 80 bits of hash so that names do not collide in practice
// (kube-proxy's KUBE-SVC-… scheme).
func (r *renderer) hashedChain(table int, kind string, key []byte) int {
	sum := sha256.Sum256(key)
	lo := len(r.names)
	r.names = append(r.names, "WEIR-"...)
	r.names = append(r.names, kind...)
	r.names = append(r.names, '-')
	r.names = slices.Grow(r.names, 16)
	n := len(r.names)
	r.names = r.names[:n+16]
	base32.StdEncoding.Encode(r.names[n:], sum[:10])
	r.chains = append(r.chains, chainRec{table: table, name: span{lo, len(r.names)}})
	return len(r.chains) - 1
}

// chainName is the name hashedChain gives; for tests and tools.
func chainName(kind, key string) string {
	var r renderer
	id := r.hashedChain(0, kind, []byte(key))
	c := r.chains[id]
	return string(r.names[c.name.lo:c.name.hi])
}

func (r *renderer) nameOf(id int) []byte {
	c := r.chains[id]
	return r.names[c.name.lo:c.name.hi]
}

// maxInlineSources is the most source guests a balancer may have on a host
// for the dispatch leaf to match them itself (one rule per guest) instead of
// jumping to a WEIR-SRC chain that does. With one, the leaf rule only gains
// `-s G/32`: a chain and a rule fewer per balancer, a jump fewer per packet,
// and no packet meets more rules. With more, a packet bound for a frontend
// later in the same tree node meets one rule per source of each earlier
// leaf: measured at 10,000 balancers with two sources each
// (TestTreeDispatchDepth's spec), allowing 2 cut another 5,000 of 22,700 nat
// chains but raised the most dispatch rules a packet meets from 33 to 36,
// over the tree's 2·log2(n)+6 bound, so it stays at 1.
const maxInlineSources = 1

// balancerChains adds the nat chains of a balancer with alive targets and
// returns the id of the chain the dispatch tree jumps to and, when that is
// the WEIR-SVC chain, the sources the dispatch leaf must match.
func (r *renderer) balancerChains(bp *BalancerPlan, srcs []netip.Addr, targets []*Target) (int, []netip.Addr) {
	r.key = append(r.key[:0], bp.Name...)
	leaf, leafSrcs := -1, srcs
	if len(srcs) > maxInlineSources {
		leaf, leafSrcs = r.hashedChain(tableNat, kindSRC, r.key), nil
	}
	svc := r.hashedChain(tableNat, kindSVC, r.key)
	if leaf < 0 {
		leaf = svc
	}
	if leafSrcs == nil {
		for _, a := range srcs {
			r.rule("-s ")
			r.appendAddr(a, 32)
			r.jump(leaf, bp.Name, svc)
		}
	}

	proto := protocol(bp.Frontend.Protocol)
	n := len(targets)
	rest := 0
	for _, t := range targets {
		rest += t.Weight
	}
	for i, t := range targets {
		local := t.Host == r.node
		if local {
			r.rule("")
		} else {
			// DNAT with a port needs the protocol; iptables-save prints -p
			// before the matches.
			r.rule("-p ")
			r.text = append(r.text, proto...)
		}
		r.comment(bp.Name)
		switch {
		case i == n-1:
			// The last rule is unconditional: every packet that reaches it
			// goes to the last target, whatever rounding did before.
		case bp.Strategy == spec.RoundRobin:
			// Rule i sees the connections rules 1..i-1 did not take and keeps
			// one in (n-i+1) of them: a fair rotation when weights are equal,
			// which validation requires of roundrobin balancers.
			r.text = append(r.text, " -m statistic --mode nth --every "...)
			r.text = strconv.AppendInt(r.text, int64(n-i), 10)
			r.text = append(r.text, " --packet 0"...)
		default:
			// Rule i takes wi/(wi+…+wn) of what reaches it, so target i gets
			// wi/Σw overall. Ten decimals put the rounding error (5e-11)
			// below the kernel's own 31-bit fixed-point step (4.7e-10).
			r.text = append(r.text, " -m statistic --mode random --probability "...)
			r.text = strconv.AppendFloat(r.text, float64(t.Weight)/float64(rest), 'f', 10, 64)
		}
		rest -= t.Weight
		if !local {
			r.text = append(r.text, " -j DNAT --to-destination "...)
			r.text = netip.AddrPortFrom(t.Address.Unmap(), t.Port).AppendTo(r.text)
			r.end(svc)
			continue
		}
		// A target on this host is marked for masquerading first; MARK and
		// DNAT are two targets, so it needs a chain of its own.
		r.key = append(append(append(r.key[:0], bp.Name...), '/'), t.Guest...)
		sep := r.hashedChain(tableNat, kindSEP, r.key)
		r.text = append(r.text, " -j "...)
		r.text = append(r.text, r.nameOf(sep)...)
		r.end(svc)

		r.rule("")
		r.jumpTo(sep, bp.Name, MarkMasqChain)
		r.rule("-p ")
		r.text = append(r.text, proto...)
		r.comment(bp.Name)
		r.text = append(r.text, " -j DNAT --to-destination "...)
		r.text = netip.AddrPortFrom(t.Address.Unmap(), t.Port).AppendTo(r.text)
		r.end(sep)
	}
	return leaf, leafSrcs
}

// rejectChains adds the filter chain of a balancer without alive targets and
// returns its id.
func (r *renderer) rejectChains(bp *BalancerPlan, srcs []netip.Addr) int {
	r.key = append(r.key[:0], bp.Name...)
	c := r.hashedChain(tableFilter, kindREJ, r.key)
	proto := protocol(bp.Frontend.Protocol)
	for _, a := range srcs {
		r.rule("-s ")
		r.appendAddr(a, 32)
		// A TCP reset fails connect() at once; ICMP port-unreachable does the
		// same for UDP and SCTP sockets.
		if proto == spec.TCP {
			r.text = append(r.text, " -p tcp"...)
			r.comment(bp.Name)
			r.text = append(r.text, " -j REJECT --reject-with tcp-reset"...)
		} else {
			r.comment(bp.Name)
			r.text = append(r.text, " -j REJECT --reject-with icmp-port-unreachable"...)
		}
		r.end(c)
	}
	return c
}

// maxChainDepth is how deep a chain may be below a built-in chain. nf_tables
// (Debian's default iptables backend) refuses, with EMLINK "Too many links",
// any ruleset in which a base chain reaches more than 15 nested chains
// (NFT_JUMP_STACK_SIZE is 16, base chain included); the kernel checks it only
// when the jump from the built-in chain is added or the graph below it grows.
const maxChainDepth = 15

// treeDepth bounds the dispatch chains (WEIR-DST/PRO/PRT) on any path, so
// that WEIR-SERVICES, the tree, and a balancer's SRC → SVC → SEP →
// WEIR-MARK-MASQ stay within maxChainDepth with one level to spare.
const treeDepth = maxChainDepth - 1 - 4 - 1

// dispatch fills root with the dispatch tree (or list) leading to entries.
//
// The tree is a path-compressed trie: first over the 32 bits of the distinct
// frontend addresses, then, at an address with several frontends, over
// protocols, then over the 16 bits of their ports. A trie node is a chain
// whose rules each match one child's whole prefix (`-d p/len`, or `--dport
// lo:hi` for an aligned port range) and jump to it, so a packet evaluates a
// few rules per level and leaves the tree at the first level where it matches
// no frontend.
//
// Each node splits on the next s bits after its common prefix (at most 2^s
// rules). A binary trie (s = 1) would be the fewest rules per packet, but it
// is about log2(n) chains deep, and nf_tables allows only maxChainDepth; so s
// is the smallest stride whose trie fits in treeDepth levels: 1 for small
// sets, 2 or 3 for 10,000 random frontends (about 1.2–1.5·log2(n) rules per
// packet). If no stride fits, the last level lists its keys flat, so the
// depth bound always holds. Node chains are named after their prefix, so
// adding or removing a frontend changes only the chains on its path.
func (r *renderer) dispatch(table, root int, entries []dispatchEntry) {
	slices.SortFunc(entries, func(a, b dispatchEntry) int {
		return cmp.Or(cmp.Compare(a.addr, b.addr), cmp.Compare(a.proto, b.proto),
			cmp.Compare(a.port, b.port), cmp.Compare(a.comment, b.comment))
	})
	// Two balancers on one address:port:protocol is a validation error; if
	// one slips through, the first by name wins in both dispatch modes.
	entries = slices.CompactFunc(entries, func(a, b dispatchEntry) bool {
		return a.addr == b.addr && a.proto == b.proto && a.port == b.port
	})
	if r.opts.Dispatch == LinearDispatch {
		for i := range entries {
			e := &entries[i]
			r.rule("-d ")
			r.appendAddrBits(e.addr, 32)
			r.appendPort(e.proto, uint32(e.port), 16)
			r.leafRules(root, e)
		}
		return
	}
	if len(entries) == 0 {
		return
	}
	keys := make([]uint64, 0, len(entries))
	starts := make([]int, 0, len(entries)+1)
	for i, e := range entries {
		if i == 0 || e.addr != entries[i-1].addr {
			keys = append(keys, uint64(e.addr))
			starts = append(starts, i)
		}
	}
	starts = append(starts, len(entries))
	t := &tree{r: r, table: table, entries: entries, starts: starts}
	if len(keys) == 1 {
		t.addrLeaf(root, 0, 0)
		return
	}
	_, l := commonPrefix(keys[0], keys[len(keys)-1], 32)
	// An address leaf may still need a protocol split and a port node
	// below it: keep two levels for them.
	stride := chooseStride(keys, 32, l, treeDepth-2)
	t.addrNode(root, 0, keys, 0, len(keys), l, stride)
}

// tree builds the dispatch chains of one table.
type tree struct {
	r       *renderer
	table   int
	entries []dispatchEntry // sorted by address, protocol, port
	starts  []int           // starts[i]: index in entries of the i-th distinct address
}

// nodeChain declares the dispatch node chain of the given kind for the
// prefix bits of addr (and, for port nodes, the port range of proto).
func (t *tree) nodeChain(kind string, addr uint32, bits int, proto spec.Protocol, lo, hi uint64) int {
	k := append(t.r.key[:0], tableName(t.table)...)
	k = append(k, ' ')
	k = netip.PrefixFrom(bitsAddr(addr), bits).AppendTo(k)
	if proto != "" {
		k = append(k, ' ')
		k = append(k, proto...)
		k = append(k, ' ')
		k = strconv.AppendUint(k, lo, 10)
		k = append(k, '-')
		k = strconv.AppendUint(k, hi, 10)
	}
	t.r.key = k
	return t.r.hashedChain(t.table, kind, k)
}

// addrNode fills chain c, depth chains below the root, with the rules that
// split the addresses keys[lo:hi], which share their first l bits, on the
// next stride bits.
func (t *tree) addrNode(c, depth int, keys []uint64, lo, hi, l, stride int) {
	for _, g := range groups(keys, lo, hi, 32, l, stride) {
		if g.hi-g.lo == 1 {
			t.addrLeaf(c, depth, g.lo)
			continue
		}
		child := t.nodeChain(kindDST, uint32(g.prefix), g.bits, "", 0, 0)
		t.r.rule("-d ")
		t.r.appendAddrBits(uint32(g.prefix), g.bits)
		t.r.jump(c, OwnerComment, child)
		t.addrNode(child, depth+1, keys, g.lo, g.hi, g.bits, stride)
	}
}

// addrLeaf adds to chain c, depth chains below the root, the rule for the
// i-th distinct address: straight to the balancer when the address has one
// frontend, else into a protocol or port split.
func (t *tree) addrLeaf(c, depth, i int) {
	es := t.entries[t.starts[i]:t.starts[i+1]]
	addr := es[0].addr
	if es[0].proto == es[len(es)-1].proto {
		t.r.rule("-d ")
		t.r.appendAddrBits(addr, 32)
		t.protoNode(c, depth, es)
		return
	}
	split := t.nodeChain(kindPRO, addr, 32, "", 0, 0)
	t.r.rule("-d ")
	t.r.appendAddrBits(addr, 32)
	t.r.jump(c, OwnerComment, split)
	for len(es) > 0 {
		n := 1
		for n < len(es) && es[n].proto == es[0].proto {
			n++
		}
		t.r.rule("")
		t.protoNode(split, depth+1, es[:n])
		es = es[n:]
	}
}

// protoNode completes the rule being written in chain c (depth chains below
// the root) for the frontends es, which share address and protocol: to the
// balancer for one port, else into the root of their port trie.
func (t *tree) protoNode(c, depth int, es []dispatchEntry) {
	if len(es) == 1 {
		t.r.appendPort(es[0].proto, uint32(es[0].port), 16)
		t.r.leafRules(c, &es[0])
		return
	}
	keys := make([]uint64, len(es))
	for i, e := range es {
		keys[i] = uint64(e.port)
	}
	prefix, l := commonPrefix(keys[0], keys[len(keys)-1], 16)
	lo, hi := portRange(prefix, l)
	// The rule in progress lives in r.text; declaring a chain only touches
	// r.names, so it is safe here.
	child := t.nodeChain(kindPRT, es[0].addr, 32, es[0].proto, lo, hi)
	t.r.appendPort(es[0].proto, uint32(prefix), l)
	t.r.jump(c, OwnerComment, child)
	stride := chooseStride(keys, 16, l, treeDepth-(depth+1))
	t.portNode(child, depth+1, es, keys, 0, len(keys), l, stride)
}

// portNode fills chain c (depth chains below the root) with the rules that
// split the ports keys[lo:hi] of the frontends es (one address and
// protocol), which share their first l bits, on the next stride bits.
func (t *tree) portNode(c, depth int, es []dispatchEntry, keys []uint64, lo, hi, l, stride int) {
	for _, g := range groups(keys, lo, hi, 16, l, stride) {
		t.r.rule("")
		if g.hi-g.lo == 1 {
			e := es[g.lo]
			t.r.appendPort(e.proto, uint32(e.port), 16)
			t.r.leafRules(c, &e)
			continue
		}
		plo, phi := portRange(g.prefix, g.bits)
		child := t.nodeChain(kindPRT, es[0].addr, 32, es[0].proto, plo, phi)
		t.r.appendPort(es[0].proto, uint32(g.prefix), g.bits)
		t.r.jump(c, OwnerComment, child)
		t.portNode(child, depth+1, es, keys, g.lo, g.hi, g.bits, stride)
	}
}

// trieGroup is one child of a trie node: keys[lo:hi], which share their first
// bits bits, equal to those of prefix.
type trieGroup struct {
	lo, hi int
	prefix uint64
	bits   int
}

// groups splits the sorted, distinct keys[lo:hi] (width bits wide, sharing
// their first l bits) by their next stride bits. Each group carries its own
// longest common prefix (path compression).
func groups(keys []uint64, lo, hi, width, l, stride int) []trieGroup {
	shift := max(width-l-stride, 0)
	out := make([]trieGroup, 0, min(hi-lo, 1<<min(stride, 8)))
	for i := lo; i < hi; {
		j := i + 1
		for j < hi && keys[j]>>shift == keys[i]>>shift {
			j++
		}
		p, b := commonPrefix(keys[i], keys[j-1], width)
		out = append(out, trieGroup{lo: i, hi: j, prefix: p, bits: b})
		i = j
	}
	return out
}

// chooseStride returns the smallest stride whose trie over keys (sorted,
// distinct, at least two, sharing their first l bits) needs at most budget
// chains below the node that holds them. The stride that splits the rest of
// the bits at once needs none, so there always is one.
func chooseStride(keys []uint64, width, l, budget int) int {
	for s := 1; s < width-l; s++ {
		if extraDepth(keys, 0, len(keys), width, l, s, budget) <= budget {
			return s
		}
	}
	return width - l
}

// extraDepth is the number of chains below a node over keys[lo:hi] with the
// given stride, or more than budget once it is known to exceed it.
func extraDepth(keys []uint64, lo, hi, width, l, stride, budget int) int {
	if budget < 0 {
		return 1
	}
	d := 0
	shift := max(width-l-stride, 0)
	for i := lo; i < hi; {
		j := i + 1
		for j < hi && keys[j]>>shift == keys[i]>>shift {
			j++
		}
		if j-i > 1 {
			_, b := commonPrefix(keys[i], keys[j-1], width)
			if e := 1 + extraDepth(keys, i, j, width, b, stride, budget-1); e > d {
				d = e
				if d > budget {
					return d
				}
			}
		}
		i = j
	}
	return d
}

// commonPrefix returns the longest common prefix of a and b (width bits
// wide) as a masked value and its length.
func commonPrefix(a, b uint64, width int) (uint64, int) {
	n := width
	if x := a ^ b; x != 0 {
		n = bits.LeadingZeros64(x) - (64 - width)
	}
	return a & prefixMask(n, width), n
}

func prefixMask(n, width int) uint64 {
	return (uint64(1)<<width - 1) &^ (uint64(1)<<(width-n) - 1)
}

// portRange is the port range of a prefix of a 16-bit port.
func portRange(prefix uint64, bits int) (lo, hi uint64) {
	return prefix, prefix | (uint64(1)<<(16-bits) - 1)
}

// rule starts a new rule with s.
func (r *renderer) rule(s string) {
	r.start = len(r.text)
	r.text = append(r.text, s...)
}

// space separates the next argument from the rule written so far.
func (r *renderer) space() {
	if n := len(r.text); n > r.start && r.text[n-1] != ' ' {
		r.text = append(r.text, ' ')
	}
}

// comment appends `-m comment --comment c`.
func (r *renderer) comment(c string) {
	r.space()
	r.text = append(r.text, "-m comment --comment "...)
	r.text = appendCommentArg(r.text, c)
}

// end adds the rule being written to chain c.
func (r *renderer) end(c int) {
	r.rules = append(r.rules, ruleRec{chain: c, text: span{r.start, len(r.text)}})
}

// jump finishes the rule being written with a comment and a jump to chain
// target, and adds it to chain c.
func (r *renderer) jump(c int, comment string, target int) {
	r.comment(comment)
	r.text = append(r.text, " -j "...)
	r.text = append(r.text, r.nameOf(target)...)
	r.end(c)
}

// jumpTo is jump to a chain given by name.
func (r *renderer) jumpTo(c int, comment, target string) {
	r.comment(comment)
	r.text = append(r.text, " -j "...)
	r.text = append(r.text, target...)
	r.end(c)
}

// leafRules finishes the dispatch leaf rule being written in chain c for
// entry e: one jump to e.leaf, or, when the leaf rule matches the sources
// itself, one such rule per source guest with `-s G/32` in front of the
// match written so far (iptables-save prints -s first).
func (r *renderer) leafRules(c int, e *dispatchEntry) {
	if len(e.srcs) == 0 {
		r.jumpTo(c, e.comment, e.leaf)
		return
	}
	// r.text may move while the rules are appended, so the match is copied.
	r.match = append(r.match[:0], r.text[r.start:]...)
	r.text = r.text[:r.start]
	for _, a := range e.srcs {
		r.rule("-s ")
		r.appendAddr(a, 32)
		if len(r.match) > 0 {
			r.text = append(r.text, ' ')
			r.text = append(r.text, r.match...)
		}
		r.jumpTo(c, e.comment, e.leaf)
	}
}

func (r *renderer) appendAddr(a netip.Addr, bits int) {
	r.appendAddrBits(addrBits(a), bits)
}

// appendAddrBits appends the masked prefix a/bits as iptables-save prints it.
func (r *renderer) appendAddrBits(a uint32, bits int) {
	a &= uint32(prefixMask(bits, 32))
	r.text = strconv.AppendUint(r.text, uint64(a>>24), 10)
	r.text = append(r.text, '.')
	r.text = strconv.AppendUint(r.text, uint64(a>>16&0xff), 10)
	r.text = append(r.text, '.')
	r.text = strconv.AppendUint(r.text, uint64(a>>8&0xff), 10)
	r.text = append(r.text, '.')
	r.text = strconv.AppendUint(r.text, uint64(a&0xff), 10)
	r.text = append(r.text, '/')
	r.text = strconv.AppendInt(r.text, int64(bits), 10)
}

// appendPort appends `-p P -m P --dport lo[:hi]` for the port prefix/bits.
func (r *renderer) appendPort(proto spec.Protocol, prefix uint32, bits int) {
	lo, hi := portRange(uint64(prefix), bits)
	r.space()
	r.text = append(r.text, "-p "...)
	r.text = append(r.text, proto...)
	r.text = append(r.text, " -m "...)
	r.text = append(r.text, proto...)
	r.text = append(r.text, " --dport "...)
	r.text = strconv.AppendUint(r.text, lo, 10)
	if hi != lo {
		r.text = append(r.text, ':')
		r.text = strconv.AppendUint(r.text, hi, 10)
	}
}

// appendCommentArg appends a comment argument, quoted the way iptables-save
// quotes it when it holds anything but plain characters. Balancer names are
// DNS labels, so in practice it is never quoted.
func appendCommentArg(b []byte, c string) []byte {
	plain := c != ""
	for i := 0; i < len(c) && plain; i++ {
		switch c[i] {
		case ' ', '\t', '"', '\'', '\\':
			plain = false
		}
	}
	if plain {
		return append(b, c...)
	}
	b = append(b, '"')
	for i := 0; i < len(c); i++ {
		if c[i] == '"' || c[i] == '\\' {
			b = append(b, '\\')
		}
		b = append(b, c[i])
	}
	return append(b, '"')
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

// Balancers returns the number of balancers the ruleset sets on its host.
func (r *Ruleset) Balancers() int { return len(r.Flows) }

// Rules returns the number of rules in the ruleset's owned chains (the jumps
// from built-in chains are not counted).
func (r *Ruleset) Rules() int {
	n := 0
	for _, t := range r.Tables {
		for _, c := range t.Chains {
			n += len(c.Rules)
		}
	}
	return n
}

// SaveForm returns rule as iptables-save prints it back once applied. Render
// writes every rule in saved form except random-mode probabilities: the
// kernel keeps them as round(p·2^31) and iptables-save prints that value with
// 11 decimals, so 0.3333333333 comes back as 0.33333333349. Compare live
// rules with SaveForm of the desired ones.
func SaveForm(rule string) string {
	const flag = "--probability "
	i := strings.Index(rule, flag)
	if i < 0 {
		return rule
	}
	start := i + len(flag)
	end := start + strings.IndexByte(rule[start:]+" ", ' ')
	p, err := strconv.ParseFloat(rule[start:end], 64)
	if err != nil {
		return rule
	}
	q := math.Round(p*0x80000000) / 0x80000000
	return rule[:start] + strconv.FormatFloat(q, 'f', 11, 64) + rule[end:]
}

// RenderWarnings lists what Render leaves out of node's ruleset because
// iptables rules are IPv4 only: balancers node sets whose frontend is not
// IPv4, and non-IPv4 source guests of the others. (Assign already leaves
// out targets of the other address family than their frontend.) Commands and the
// agent show them, so nothing is dropped silently.
func RenderWarnings(p *Plan, node string) []string {
	var out []string
	for i := range p.Balancers {
		bp := &p.Balancers[i]
		if !bp.setBy(node) {
			continue
		}
		if !bp.Frontend.Address.Unmap().Is4() {
			out = append(out, "balancer "+bp.Name+": frontend "+bp.Frontend.Address.String()+" is not IPv4; weir programs IPv4 iptables only, so it is not applied")
			continue
		}
		for _, e := range bp.Sources {
			if e.Host == node && !e.Address.Unmap().Is4() {
				out = append(out, "balancer "+bp.Name+": source guest "+e.Guest+" has non-IPv4 address "+e.Address.String()+"; its traffic is not balanced")
			}
		}
	}
	return out
}
