package agent

import (
	"context"
	"sync"

	"weir/cluster"
	"weir/reconcile"
	"weir/spec"
)

// reconcilePlanner is the Planner over weir/reconcile: the pure assignment,
// its digest (gossiped to prove agreement) and this host's rendering. It
// keeps a reconcile.Renderer, so a pass in which few balancers changed
// renders only those (and hands the Syncer the unchanged chains' very
// strings, which it compares by identity).
type reconcilePlanner struct {
	mu       sync.Mutex
	renderer *reconcile.Renderer
	node     string
}

// Plan implements Planner.
func (rp *reconcilePlanner) Plan(s *spec.Spec, alive []string, node string) Desired {
	p := reconcile.Assign(s, alive)
	digest := p.Digest()
	rp.mu.Lock()
	if rp.renderer == nil || rp.node != node {
		rp.renderer, rp.node = reconcile.NewRenderer(node, reconcile.RenderOptions{}), node
	}
	rs := rp.renderer.Render(p)
	rp.mu.Unlock()
	return Desired{Digest: digest, Ruleset: rs, Balancers: rs.Balancers(), Rules: rs.Rules()}
}

// ReconcilePlanner returns the Planner that uses reconcile.Assign and a
// reconcile.Renderer.
func ReconcilePlanner() Planner { return &reconcilePlanner{} }

// syncer adapts *reconcile.Syncer to Syncer, keeping only the error of Apply.
type syncer struct{ s *reconcile.Syncer }

// NewSyncer adapts a reconcile.Syncer for the agent.
func NewSyncer(s *reconcile.Syncer) Syncer { return syncer{s} }

// Apply implements Syncer.
func (s syncer) Apply(ctx context.Context, rs *reconcile.Ruleset) error {
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
