package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"

	"weir/cluster"
	"weir/spec"
)

// pass does one round of pending work and reports whether it failed to fetch
// or to apply, so that the loop schedules a retry with backoff.
func (a *Agent) pass(ctx context.Context, p pending) (failed bool) {
	start := a.clock.Now()
	defer func() { a.metrics.duration.Observe(a.clock.Now().Sub(start).Seconds()) }()

	if p.retry || p.resync {
		p.fetch = p.fetch || p.retry
		a.mu.Lock()
		if errors.Is(a.attemptErr, errApply) {
			// A revision that failed to apply (not to validate) is tried again,
			// as Flux retries a failed reconciliation.
			a.attempted = ""
			p.fetch = true
		}
		a.mu.Unlock()
	}

	var cand *revisionSpec
	fetchFailed := false
	if p.fetch {
		cand, fetchFailed = a.fetch(ctx)
	}
	if ctx.Err() != nil {
		return false
	}
	a.apply(ctx, cand, p.resync, false)
	a.announce()

	a.mu.Lock()
	defer a.mu.Unlock()
	// Judged on the state, not on this pass alone: a pass that only re-planned
	// must not cancel the retry of an earlier failed fetch.
	failed = fetchFailed || a.fetchErr != nil || errors.Is(a.attemptErr, errApply) || a.applyErr != nil
	if failed {
		a.failures++
	} else {
		a.failures = 0
	}
	return failed
}

// errApply marks attempt errors that came from applying, not validating.
var errApply = errors.New("apply failed")

// fetch asks the source for its latest revision and validates it when it is
// new. It returns the validated candidate, or nil when there is nothing new
// to apply. A rejected revision becomes the attempted one at once; a valid
// one when apply has tried it, so that readers never see a new attempted
// revision with the previous one's outcome.
func (a *Agent) fetch(ctx context.Context) (cand *revisionSpec, failed bool) {
	snap, err := a.deps.Source.Latest(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, false
		}
		a.metrics.fetchErrors.Inc()
		a.mu.Lock()
		a.fetchErr = fmt.Errorf("fetching specs: %w", err)
		a.mu.Unlock()
		a.log.Error("fetching specs failed; keeping the applied revision", "err", err)
		return nil, true
	}
	a.mu.Lock()
	a.fetchErr = nil
	known := snap.Revision == a.attempted
	goodRev := ""
	if a.good != nil {
		goodRev = a.good.revision
	}
	hinted := snap.Revision == a.lastHint
	a.mu.Unlock()
	if known {
		return nil, false
	}
	if snap.Revision != goodRev && !hinted {
		// New to this agent and nobody told us: tell the others, so one fetch
		// anywhere makes every agent fetch at once.
		a.deps.Cluster.Hint(snap.Revision)
	}
	s, err := a.deps.Load(snap.FS)
	if err != nil {
		a.metrics.specErrors.Inc()
		a.mu.Lock()
		a.attempted, a.attemptErr = snap.Revision, fmt.Errorf("rejected revision %s: %w", snap.Revision, err)
		a.mu.Unlock()
		a.log.Error("rejected revision; keeping the last good one", "revision", snap.Revision, "last_good", goodRev, "err", err)
		return nil, false
	}
	a.log.Info("fetched revision", "revision", snap.Revision, "hosts", len(s.Hosts), "balancers", len(s.Balancers))
	return &revisionSpec{revision: snap.Revision, spec: s, fsys: snap.FS}, false
}

// apply plans and applies cand (a newly validated revision) or, without one,
// re-plans the last good revision for the current membership. With resync it
// also checks the live rules for drift. Unless force is set, a re-plan that
// gives the plan already applied changes nothing.
func (a *Agent) apply(ctx context.Context, cand *revisionSpec, resync, force bool) {
	a.mu.Lock()
	good, applied, applyErr := a.good, a.applied, a.applyErr
	a.mu.Unlock()

	target := cand
	if target == nil {
		target = good
	}
	if target == nil {
		// Nothing valid yet: adopt whatever is in the kernel and wait.
		return
	}
	a.expect(target)
	alive := a.alive(target.spec)
	d := a.deps.Planner.Plan(target.spec, alive, a.cfg.Node)
	if cand == nil && !force && applyErr == nil && applied.revision == target.revision && applied.digest == d.Digest {
		if resync {
			a.checkDrift(ctx)
		}
		return
	}

	if err := a.deps.Syncer.Apply(ctx, d.Ruleset); err != nil {
		a.applyFailed(ctx, cand, good, target, d, err)
		return
	}
	a.recordApplied(cand, good, target, alive, d)
}

// applyFailed records a failed apply of target. A failed candidate becomes
// the attempted revision and the last good one is put back; a failed re-plan
// of the good revision is kept as applyErr.
func (a *Agent) applyFailed(ctx context.Context, cand, good, target *revisionSpec, d Desired, err error) {
	a.metrics.applyErrors.Inc()
	a.log.Error("applying rules failed", "revision", target.revision, "digest", d.Digest, "err", err)
	if cand != nil {
		a.mu.Lock()
		a.attempted, a.attemptErr = cand.revision, fmt.Errorf("applying revision %s: %w: %w", cand.revision, errApply, err)
		a.mu.Unlock()
		if good != nil {
			// The owned chains of one table may have changed before another
			// failed; put the last good revision back.
			a.apply(ctx, nil, false, true)
		}
		return
	}
	a.mu.Lock()
	a.applyErr = fmt.Errorf("applying revision %s: %w", target.revision, err)
	a.mu.Unlock()
}

// recordApplied records a successful apply of target; a new candidate becomes the
// last good revision and is persisted.
func (a *Agent) recordApplied(cand, good, target *revisionSpec, alive []string, d Desired) {
	now := a.clock.Now()
	a.mu.Lock()
	a.applied = appliedState{revision: target.revision, digest: d.Digest, alive: alive, balancers: d.Balancers, rules: d.Rules, at: now}
	a.applyErr = nil
	if cand != nil {
		a.good = cand
		a.attempted, a.attemptErr = cand.revision, nil
	}
	a.mu.Unlock()
	a.metrics.setApplied(target.revision, d, now)
	a.log.Info("applied rules", "revision", target.revision, "digest", d.Digest, "alive", alive, "balancers", d.Balancers, "rules", d.Rules)

	if cand != nil && (good == nil || good.revision != cand.revision) && a.cfg.StateDir != "" {
		if err := saveLastGood(a.cfg.StateDir, cand.revision, cand.fsys); err != nil {
			a.log.Error("persisting the last good revision failed", "revision", cand.revision, "err", err)
		}
	}
}

// checkDrift compares the live rules with the applied ones and repairs drift.
func (a *Agent) checkDrift(ctx context.Context) {
	repaired, err := a.deps.Syncer.Reconcile(ctx)
	if err != nil {
		a.metrics.applyErrors.Inc()
		a.log.Error("drift check failed", "err", err)
		a.mu.Lock()
		a.applyErr = fmt.Errorf("repairing drift: %w", err)
		a.mu.Unlock()
		return
	}
	if repaired {
		a.metrics.driftRepairs.Inc()
		a.log.Warn("live rules had drifted from the applied revision; repaired")
	}
}

// alive is the alive set given to the planner. Before the cluster has settled,
// a host that has not been seen yet may simply not have been reached, so every
// host of the spec counts as alive: a freshly started agent never removes a
// healthy target. After that, hosts never seen count as not alive. The local
// node is alive by definition.
func (a *Agent) alive(s *spec.Spec) []string {
	set := map[string]bool{a.cfg.Node: true}
	for _, h := range a.deps.Cluster.AliveHosts() {
		set[h] = true
	}
	if !a.isSettled() {
		for _, h := range s.Hosts {
			set[h.Name] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// announce publishes this node's state over gossip when it changed.
func (a *Agent) announce() {
	a.mu.Lock()
	ns := cluster.NodeState{
		Revision:  a.applied.revision,
		Digest:    a.applied.digest,
		Balancers: a.applied.balancers,
		Rules:     a.applied.rules,
		Error:     a.errorTextLocked(),
	}
	same := a.announced != nil && *a.announced == ns
	if !same {
		a.announced = &ns
	}
	a.mu.Unlock()
	if same {
		return
	}
	if err := a.deps.Cluster.SetLocal(ns); err != nil {
		a.log.Error("announcing node state over gossip failed", "err", err)
	}
}

// errorTextLocked is the node's current error: a rejected or unappliable
// revision, a failing re-plan, and a failing fetch, one per line.
func (a *Agent) errorTextLocked() string {
	err := errors.Join(a.attemptErr, a.applyErr, a.fetchErr)
	if err == nil {
		return ""
	}
	return err.Error()
}

// restore loads the persisted last good revision as the one to fall back on,
// without applying it: the first pass applies it only if the source fails or
// offers nothing valid.
func (a *Agent) restore() {
	if a.cfg.StateDir == "" {
		return
	}
	rev, fsys, err := loadLastGood(a.cfg.StateDir)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		a.log.Warn("reading the persisted last good revision failed", "err", err)
		return
	}
	s, err := a.deps.Load(fsys)
	if err != nil {
		a.log.Warn("the persisted last good revision no longer validates; ignoring it", "revision", rev, "err", err)
		return
	}
	a.mu.Lock()
	a.good = &revisionSpec{revision: rev, spec: s, fsys: fsys}
	a.mu.Unlock()
	a.expect(a.good)
	a.log.Info("restored the last good revision from the state directory", "revision", rev)
}
