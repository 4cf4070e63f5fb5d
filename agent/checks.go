package agent

import (
	"context"
	"errors"
	"slices"
	"sync"

	"weir/agent/health"
	"weir/cluster"
	"weir/reconcile/plan"
	"weir/spec"
)

// The agent's part in health checking: it probes the checks of its own
// guests, tells the cluster which of them fail, and plans with what every
// host reports (README.md, "Health checks").

// newProber returns the prober of this host's checks: over the network
// unless probe is set. Each transition is logged once, by the prober.
func (a *Agent) newProber(probe health.ProbeFunc) *health.Prober {
	return health.New(health.Config{
		Probe:        probe,
		OnTransition: a.onTransition,
		Logger:       a.log.With("component", "health"),
		Now:          a.clock.Now,
	})
}

// onTransition is the prober's OnTransition: it counts the transition and
// wakes the publisher. It never blocks the prober.
func (a *Agent) onTransition(t health.Transition) {
	a.hm.transition(t)
	notify(a.healthWake)
}

// runHealth starts the prober and the publisher of its results; both end
// with ctx, and wg waits for them.
func (a *Agent) runHealth(ctx context.Context, wg *sync.WaitGroup) {
	wg.Go(func() { _ = a.prober.Run(ctx) })
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-a.healthWake:
				a.publishHealth()
			}
		}
	})
}

// publishHealth tells the cluster which checks of this host fail, then asks
// the loop for a replan: plans read the cluster's view, in which this
// host's report is its own entry. A burst of transitions is published once.
func (a *Agent) publishHealth() {
	var failing []spec.CheckID
	for _, st := range a.prober.Snapshot() {
		if st.State == health.Unhealthy {
			failing = append(failing, st.ID)
		}
	}
	if err := a.deps.Cluster.SetHealth(failing); err != nil && !errors.Is(err, cluster.ErrClosed) {
		a.log.Error("reporting failing health checks over gossip failed", "failing", len(failing), "err", err)
	}
	notify(a.healthReplan)
}

// healthView is the health view of the next plan: the checks every host
// that counts reports failing. plan.Assign asks a host only about its own
// guests, so a report never affects another host's targets.
func (a *Agent) healthView() plan.UnhealthySet {
	view := plan.UnhealthySet{}
	for host, ids := range a.deps.Cluster.UnhealthyChecks() {
		for _, id := range ids {
			view.Add(host, id)
		}
	}
	return view
}

// updateChecks makes the prober run the checks of target's guests on this
// host, once per revision applied: checks that stay keep their state.
func (a *Agent) updateChecks(target *revisionSpec) {
	if target.revision == a.checksRev {
		return
	}
	a.checksRev = target.revision
	checks := health.ChecksFor(target.spec, a.cfg.Node)
	a.prober.Update(checks)
	a.log.Info("health checks of this host's guests", "revision", target.revision, "checks", len(checks))
}

// logFailOpen logs the balancers that began or stopped failing open
// between two applied plans (both lists sorted).
func (a *Agent) logFailOpen(before, after []string) {
	for _, name := range after {
		if _, found := slices.BinarySearch(before, name); !found {
			a.log.Warn("balancer fails open: no target with weight above 0 passes its health check, so all of them get connections", "balancer", name)
		}
	}
	for _, name := range before {
		if _, found := slices.BinarySearch(after, name); !found {
			a.log.Info("balancer no longer fails open", "balancer", name)
		}
	}
}

// notify does a non-blocking send on a coalescing channel.
func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
