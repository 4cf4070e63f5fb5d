package render

import (
	"net/netip"
	"slices"

	"weir/reconcile/plan"
	"weir/spec"
)

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
	seps  sepChains
}

// NewRenderer returns a Renderer for host node.
func NewRenderer(node string, o RenderOptions) *Renderer {
	return &Renderer{node: node, opts: o}
}

// Render returns the owned netfilter state the host must have for plan p;
// see RenderWith.
func (rr *Renderer) Render(p *plan.Plan) *Ruleset {
	r := &renderer{node: rr.node, opts: rr.opts, seps: &rr.seps}
	r.bal.prev, r.bal.next = rr.cache, make(map[string]*balancerOut, max(len(rr.cache), 64))
	rs := r.render(p)
	// Only this call's balancers are kept, so the cache holds nothing the
	// Ruleset just returned does not refer to. Reused balancers keep the
	// arenas of the call that rendered them alive, partly dead once some of
	// their neighbours changed; when the arenas are more than twice what is
	// still used, the next call renders from scratch.
	live, total := 0, 0
	seen := map[*slab]bool{}
	for _, o := range r.bal.next {
		live += o.size
		if !seen[o.slab] {
			seen[o.slab] = true
			total += o.slab.size
		}
	}
	rr.cache = r.bal.next
	if total > 2*live+1<<20 {
		rr.cache = nil
	}
	return rs
}

// balancerCache holds the balancers' chains of one render: those reused
// from the previous call of a Renderer and those this call renders, which
// stay pending until packBalancers turns the arena into their strings.
type balancerCache struct {
	prev, next map[string]*balancerOut // see Renderer; nil for RenderWith
	outSlab    []balancerOut           // backing array of the balancerOuts rendered
	outs       []*balancerOut          // this call's balancers, in plan order
	pending    []pendingOut            // balancers rendered by this call, not yet packed
	tin        []targetInput           // backing array of their inputs' targets
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

// pendingOut is a balancer whose chains are in the arena: ids [c0, c1) of
// arena.chains, leaf among them.
type pendingOut struct {
	out          *balancerOut
	c0, c1, leaf int
}

// slab is the memory of one Render's balancer chains, which balancers reused
// by later calls keep alive; see Renderer.Render.
type slab struct{ size int }

// start sizes the backing arrays for nb balancers with nt targets, when
// all of them are to be rendered; otherwise they grow with the few that are.
func (bc *balancerCache) start(nb, nt int) {
	bc.tin = make([]targetInput, 0, nt)
	bc.outSlab = make([]balancerOut, 0, nb)
}

// add returns a new balancerOut rendered from in and targets.
func (bc *balancerCache) add(in balancerInput, targets []*plan.Target, node string) *balancerOut {
	if len(bc.outSlab) == cap(bc.outSlab) {
		bc.outSlab = make([]balancerOut, 0, max(64, cap(bc.outSlab)))
	}
	bc.outSlab = append(bc.outSlab, balancerOut{in: in})
	out := &bc.outSlab[len(bc.outSlab)-1]
	t0 := len(bc.tin)
	for _, t := range targets {
		bc.tin = append(bc.tin, targetInput{guest: t.Guest, local: t.Host == node, addr: t.Address.Unmap(), port: t.Port, weight: t.Weight})
	}
	out.in.targets = bc.tin[t0:len(bc.tin):len(bc.tin)]
	return out
}

// matches reports whether the balancer would be rendered from the same inputs.
func (in *balancerInput) matches(bp *plan.BalancerPlan, srcs []netip.Addr, targets []*plan.Target, node string) bool {
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

// packBalancers turns the arena, which holds the chains of the balancers
// rendered by this call, into their balancerOuts without copying: their
// names and rules become substrings of the arena, and the arena is left to
// them (the top chains and the tree get a new one).
func (r *renderer) packBalancers() {
	if len(r.bal.pending) > 0 {
		chains := r.a.outChains()
		sl := &slab{size: cap(r.a.names) + cap(r.a.text)}
		for _, pd := range r.bal.pending {
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
	r.bal.pending = nil
	r.a.reset()
}
