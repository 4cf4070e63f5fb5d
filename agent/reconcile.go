package agent

import (
	"cmp"
	"context"
	"slices"
	"sync"

	"weir/cluster"
	"weir/reconcile/netfilter"
	"weir/reconcile/plan"
	"weir/reconcile/render"
	"weir/spec"
)

// reconcilePlanner is the Planner over weir/reconcile: the pure assignment,
// its digest (gossiped to prove agreement) and this host's rendering. It
// keeps a render.Renderer, so a pass in which few balancers changed
// renders only those (and hands the Syncer the unchanged chains' very
// strings, which it compares by identity).
type reconcilePlanner struct {
	mu       sync.Mutex
	renderer *render.Renderer
	node     string
}

// Plan implements Planner.
func (rp *reconcilePlanner) Plan(s *spec.Spec, alive []string, health plan.Health, node string) Desired {
	p := plan.Assign(s, alive, health)
	// The digest and the rendering only read p: on a host with a spare core
	// the digest (a hash of the whole plan) costs a change no time.
	digest := make(chan string, 1)
	go func() { digest <- p.Digest() }()
	rp.mu.Lock()
	if rp.renderer == nil || rp.node != node {
		rp.renderer, rp.node = render.NewRenderer(node, render.RenderOptions{}), node
	}
	rs := rp.renderer.Render(p)
	rp.mu.Unlock()
	summary, failOpen := healthOf(p)
	return Desired{Digest: <-digest, Ruleset: rs, Balancers: rs.Balancers(), Rules: rs.Rules(), Health: summary, FailOpen: failOpen}
}

// healthOf summarizes the unhealthy targets and failing-open balancers of
// p, and names every balancer failing open; nil and nil when there are none.
func healthOf(p *plan.Plan) (*cluster.HealthSummary, []string) {
	var sum cluster.HealthSummary
	var failOpen []string
	for i := range p.Balancers {
		bp := &p.Balancers[i]
		if bp.FailOpen {
			failOpen = append(failOpen, bp.Name)
		}
		var refs []cluster.TargetRef
		for _, ts := range [][]plan.Target{bp.Targets, bp.Excluded} {
			for _, t := range ts {
				if t.State == plan.Unhealthy {
					refs = append(refs, cluster.TargetRef{Balancer: bp.Name, Guest: t.Guest, Host: t.Host})
				}
			}
		}
		// Targets and Excluded are each in (host, guest) order; so is their union.
		slices.SortFunc(refs, func(a, b cluster.TargetRef) int {
			return cmp.Or(cmp.Compare(a.Host, b.Host), cmp.Compare(a.Guest, b.Guest))
		})
		sum.UnhealthyTotal += len(refs)
		sum.Unhealthy = append(sum.Unhealthy, refs[:min(len(refs), cluster.MaxListed-len(sum.Unhealthy))]...)
	}
	if sum.UnhealthyTotal == 0 && len(failOpen) == 0 {
		return nil, nil
	}
	sum.FailOpen, sum.FailOpenTotal = slices.Clone(failOpen[:min(len(failOpen), cluster.MaxListed)]), len(failOpen)
	if sum.FailOpen == nil {
		sum.FailOpen = []string{}
	}
	if sum.Unhealthy == nil {
		sum.Unhealthy = []cluster.TargetRef{}
	}
	return &sum, failOpen
}

// ReconcilePlanner returns the Planner that uses plan.Assign and a
// render.Renderer.
func ReconcilePlanner() Planner { return &reconcilePlanner{} }

// syncer adapts *netfilter.Syncer to Syncer, keeping only the error of Apply.
type syncer struct{ s *netfilter.Syncer }

// NewSyncer adapts a netfilter.Syncer for the agent.
func NewSyncer(s *netfilter.Syncer) Syncer { return syncer{s} }

// Apply implements Syncer.
func (s syncer) Apply(ctx context.Context, rs *render.Ruleset) error {
	_, err := s.s.Apply(ctx, rs)
	return err
}

// Reconcile implements Syncer.
func (s syncer) Reconcile(ctx context.Context) (bool, error) { return s.s.Reconcile(ctx) }

var (
	_ Cluster = (*cluster.Cluster)(nil)
	_ Planner = (*reconcilePlanner)(nil)
	_ Syncer  = syncer{}
)
