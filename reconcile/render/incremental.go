package render

import (
	"crypto/sha256"
	"encoding/binary"
	"net/netip"

	"weir/reconcile/plan"
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
	scratch    []byte                  // where fingerprints are computed
	outSlab    []balancerOut           // backing array of the balancerOuts rendered
	outs       []*balancerOut          // this call's balancers, in plan order
	pending    []pendingOut            // balancers rendered by this call, not yet packed
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

// balancerInput is a fingerprint (128 bits of SHA-256) of everything a
// balancer's own chains depend on besides its name, under which the cache
// keeps them: its kind, strategy and protocol, its local sources, and each
// target's address, port, weight and whether it is local. Keeping the
// fingerprint rather than the inputs themselves saves a copy of every
// target of 10,000 balancers.
type balancerInput [16]byte

// fingerprint returns the balancerInput of a balancer; the zero value when
// there is no cache to look it up in.
func (bc *balancerCache) fingerprint(bp *plan.BalancerPlan, srcs []netip.Addr, targets []*plan.Target, node string) balancerInput {
	if bc.next == nil {
		return balancerInput{}
	}
	b := bc.scratch[:0]
	b = append(b, byte(len(targets)>>8), byte(len(targets)), byte(len(srcs)>>8), byte(len(srcs)))
	b = append(append(b, bp.Strategy...), 0)
	b = append(append(b, protocol(bp.Frontend.Protocol)...), 0)
	for _, a := range srcs {
		b = append(b, a.AsSlice()...)
	}
	for _, t := range targets {
		a := t.Address.Unmap().As16()
		b = append(b, a[:]...)
		b = binary.BigEndian.AppendUint16(b, t.Port)
		b = binary.BigEndian.AppendUint64(b, uint64(t.Weight))
		if t.Host == node {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	}
	bc.scratch = b
	sum := sha256.Sum256(b)
	return balancerInput(sum[:16])
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

// start sizes the backing array for nb balancers, when all of them are to
// be rendered; otherwise it grows with the few that are.
func (bc *balancerCache) start(nb int) {
	bc.outSlab = make([]balancerOut, 0, nb)
}

// add returns a new balancerOut rendered from in.
func (bc *balancerCache) add(in balancerInput) *balancerOut {
	if len(bc.outSlab) == cap(bc.outSlab) {
		bc.outSlab = make([]balancerOut, 0, max(64, cap(bc.outSlab)))
	}
	bc.outSlab = append(bc.outSlab, balancerOut{in: in})
	return &bc.outSlab[len(bc.outSlab)-1]
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
