package agent

import (
	"context"
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
func (rp *reconcilePlanner) Plan(s *spec.Spec, alive []string, node string) Desired {
	p := plan.Assign(s, alive, nil)
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
	return Desired{Digest: <-digest, Ruleset: rs, Balancers: rs.Balancers(), Rules: rs.Rules()}
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
