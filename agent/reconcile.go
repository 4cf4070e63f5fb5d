package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"weir/cluster"
	"weir/reconcile/netfilter"
	"weir/reconcile/plan"
	"weir/reconcile/render"
	"weir/spec"
)

// reconcilePlanner is the Planner over weir/reconcile: the pure assignment,
// its digest (gossiped to prove agreement) and this host's rendering in
// each address family. It keeps a render.Renderer per family, so a pass in
// which few balancers changed renders only those (and hands the Syncers
// the unchanged chains' very strings, which they compare by identity).
type reconcilePlanner struct {
	mu        sync.Mutex
	renderers [2]*render.Renderer // by spec.Family
	node      string
}

// Plan implements Planner.
func (rp *reconcilePlanner) Plan(s *spec.Spec, alive []string, health plan.Health, node string) Desired {
	p := plan.Assign(s, alive, health)
	// The digest and the rendering only read p: on a host with a spare core
	// the digest (a hash of the whole plan) costs a change no time.
	digest := make(chan string, 1)
	go func() { digest <- p.Digest() }()
	rp.mu.Lock()
	if rp.renderers[spec.IPv4] == nil || rp.node != node {
		for _, f := range spec.Families() {
			rp.renderers[f] = render.NewRenderer(node, render.RenderOptions{Family: f})
		}
		rp.node = node
	}
	var rs render.Rulesets
	for _, f := range spec.Families() {
		rs[f] = rp.renderers[f].Render(p)
	}
	rp.mu.Unlock()
	summary, failOpen := healthOf(p)
	return Desired{Digest: <-digest, Rulesets: rs, Balancers: rs.Balancers(), Rules: rs.Rules(), Health: summary, FailOpen: failOpen}
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
// render.Renderer per address family.
func ReconcilePlanner() Planner { return &reconcilePlanner{} }

// syncers adapts one *netfilter.Syncer per address family to Syncer. A host
// whose kernel or packages lack ip6tables has no IPv6 Syncer; it fails only
// when it has IPv6 balancers to set, with the reason its IPv6 Syncer could
// not be made.
type syncers struct {
	by     [2]*netfilter.Syncer // by spec.Family; nil when unavailable
	errors [2]error             // why by[f] is nil
}

// NewSyncers adapts the Syncers of the IPv4 and IPv6 families for the agent.
// A nil one is unavailable for the reason in its error (err4, err6).
func NewSyncers(v4, v6 *netfilter.Syncer, err4, err6 error) Syncer {
	return &syncers{by: [2]*netfilter.Syncer{v4, v6}, errors: [2]error{err4, err6}}
}

// NewSyncer adapts the IPv4 netfilter.Syncer alone for the agent: a host
// with it sets no IPv6 balancer.
func NewSyncer(s *netfilter.Syncer) Syncer {
	return NewSyncers(s, nil, nil, errors.New("no IPv6 syncer configured"))
}

// Apply implements Syncer: each family in turn, IPv4 first. A family's
// failure does not stop the other from being applied; both errors are
// returned.
func (s *syncers) Apply(ctx context.Context, rs render.Rulesets) error {
	var errs []error
	for _, f := range spec.Families() {
		sy := s.by[f]
		switch {
		case sy != nil:
			if _, err := sy.Apply(ctx, rs[f]); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", netfilter.Command(f), err))
			}
		case rs[f].Balancers() > 0:
			errs = append(errs, fmt.Errorf("%s balancers to set (%d), but %s is unavailable: %w", f, rs[f].Balancers(), netfilter.Command(f), s.errors[f]))
		}
	}
	return errors.Join(errs...)
}

// Reconcile implements Syncer: it checks (and repairs) every family that
// has a Syncer.
func (s *syncers) Reconcile(ctx context.Context) (bool, error) {
	repaired := false
	var errs []error
	for _, f := range spec.Families() {
		if s.by[f] == nil {
			continue
		}
		r, err := s.by[f].Reconcile(ctx)
		repaired = repaired || r
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", netfilter.Command(f), err))
		}
	}
	return repaired, errors.Join(errs...)
}

var (
	_ Cluster = (*cluster.Cluster)(nil)
	_ Planner = (*reconcilePlanner)(nil)
	_ Syncer  = (*syncers)(nil)
)
