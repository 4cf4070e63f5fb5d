package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"time"

	"weir/cluster"
	"weir/reconcile/netfilter"
	"weir/reconcile/plan"
	"weir/spec"
)

// pass does one round of pending work under the pass deadline and reports
// whether it failed to fetch or to apply, so that the loop schedules a retry
// with backoff. With hold, a restored last good revision that nothing has
// applied yet waits for the first fetch's answer (see restore).
func (a *Agent) pass(parent context.Context, p pending, hold bool) (failed bool) {
	start := a.clock.Now()
	a.passBegins(start)
	ctx, cancel := context.WithTimeout(parent, a.cfg.PassTimeout)
	defer cancel()

	var cand *revisionSpec
	fetchFailed := false
	if p.result != nil {
		cand, fetchFailed = a.takeFetch(ctx, p.result)
	}
	if parent.Err() != nil {
		a.passEnds(start, nil)
		return false
	}
	a.apply(ctx, cand, p.resync, false, hold)
	a.saveLastGood()
	var overran error
	if ctx.Err() != nil && parent.Err() == nil {
		overran = fmt.Errorf("the reconcile pass overran its %s deadline", a.cfg.PassTimeout)
	}
	a.passEnds(start, overran)
	a.announce()
	a.memory.afterPass(a.clock.Now())

	a.mu.Lock()
	defer a.mu.Unlock()
	// Judged on the state, not on this pass alone: a pass that only re-planned
	// must not cancel the retry of an earlier failed fetch.
	failed = fetchFailed || a.failingLocked() != nil
	if failed {
		a.failures++
	} else {
		a.failures = 0
	}
	return failed
}

// errApply marks attempt errors that came from applying, not validating.
var errApply = errors.New("apply failed")

// apply plans and applies cand (a newly validated revision) or, without one,
// re-plans the last good revision for the current membership. With resync it
// also checks the live rules for drift. Unless force is set, a re-plan that
// gives the plan already applied changes nothing. With hold, a last good
// revision that was restored but never applied is left alone.
func (a *Agent) apply(ctx context.Context, cand *revisionSpec, resync, force, hold bool) {
	a.mu.Lock()
	good, applied, applyErr := a.good, a.applied, a.applyErr
	a.mu.Unlock()

	target := cand
	if target == nil {
		target = good
	}
	if target == nil || (cand == nil && hold && applied.revision == "") {
		// Nothing valid yet, or only a restored revision while the source
		// may still answer with a newer one: adopt whatever is in the kernel
		// and wait.
		return
	}
	a.expect(target)
	alive := a.alive(target.spec)
	view := a.healthView()
	d := a.deps.Planner.Plan(target.spec, alive, view, a.cfg.Node)
	if cand == nil && !force && applyErr == nil && applied.revision == target.revision && applied.digest == d.Digest {
		if resync {
			a.checkDrift(ctx)
		}
		return
	}

	a.want(target.revision, d)
	if err := a.deps.Syncer.Apply(ctx, d.Rulesets); err != nil {
		a.applyFailed(ctx, cand, good, target, d, err)
		return
	}
	a.recordApplied(cand, good, target, planInputs{alive, view}, d)
	a.updateChecks(target)
}

// planInputs are the membership and health view a plan was made with.
type planInputs struct {
	alive []string
	view  plan.UnhealthySet
}

// applyFailed records a failed apply of target. A failed candidate becomes
// the attempted revision and the last good one is put back; a failed re-plan
// of the good revision is kept as applyErr.
func (a *Agent) applyFailed(ctx context.Context, cand, good, target *revisionSpec, d Desired, err error) {
	a.metrics.applied(false)
	a.log.Error("applying rules failed", "revision", target.revision, "digest", d.Digest, "err", err)
	if cand != nil {
		a.mu.Lock()
		a.attempted, a.attemptErr = cand.revision, fmt.Errorf("applying revision %s: %w: %w", cand.revision, errApply, err)
		a.mu.Unlock()
		if good != nil {
			// The owned chains of one table may have changed before another
			// failed; put the last good revision back.
			a.apply(ctx, nil, false, true, false)
		}
		return
	}
	a.mu.Lock()
	a.applyErr = fmt.Errorf("applying revision %s: %w", target.revision, err)
	a.mu.Unlock()
}

// recordApplied records a successful apply of target; a new candidate becomes the
// last good revision and is persisted.
func (a *Agent) recordApplied(cand, good, target *revisionSpec, in planInputs, d Desired) {
	now := a.clock.Now()
	alive := in.alive
	a.mu.Lock()
	before := a.applied.failOpen
	a.applied = appliedState{revision: target.revision, digest: d.Digest, alive: alive, view: in.view,
		health: d.Health, failOpen: d.FailOpen, balancers: d.Balancers, rules: d.Rules, at: now}
	a.applyErr = nil
	if cand != nil {
		a.good = cand
		a.attempted, a.attemptErr = cand.revision, nil
	}
	a.mu.Unlock()
	a.logFailOpen(before, d.FailOpen)
	a.metrics.applied(true)
	a.metrics.setApplied(target.revision, d, now)
	a.log.Info("applied rules", "revision", target.revision, "digest", d.Digest, "alive", alive, "balancers", d.Balancers, "rules", d.Rules,
		"unhealthy_targets", d.Health.Total())

	if cand == nil {
		return
	}
	a.mu.Lock()
	if (good == nil || good.revision != cand.revision) && a.cfg.StateDir != "" {
		a.unsaved = cand
	} else {
		// Nothing to persist: keep the Spec, not a copy of the tree's files.
		cand.fsys = nil
	}
	a.mu.Unlock()
}

// checkDrift compares the live rules with the applied ones and repairs drift.
func (a *Agent) checkDrift(ctx context.Context) {
	start := a.clock.Now()
	repaired, err := a.deps.Syncer.Reconcile(ctx)
	if err != nil {
		a.metrics.driftChecks.WithLabelValues(resultError).Inc()
		a.log.Error("drift check failed", "err", err)
		a.mu.Lock()
		a.applyErr = fmt.Errorf("repairing drift: %w", err)
		a.mu.Unlock()
		return
	}
	if !repaired {
		a.metrics.driftChecks.WithLabelValues(resultInSync).Inc()
		a.spaceDriftChecks(start, a.clock.Now().Sub(start))
		return
	}
	a.metrics.driftChecks.WithLabelValues(resultRepaired).Inc()
	a.metrics.driftRepairs.Inc()
	a.log.Warn("live rules had drifted from the applied revision; repaired")
}

// spaceDriftChecks records the cost of a drift check that started at start
// and found no drift, and puts the next one netfilter.DriftCheckGap after
// it, by the mean cost of the last driftWindow checks: a cycle of cheap
// canary checks and one full check. A check that repaired drift does not
// count: the next one comes at --resync, to see that the repair held.
func (a *Agent) spaceDriftChecks(start time.Time, cost time.Duration) {
	a.mu.Lock()
	a.driftCosts[a.driftNext%driftWindow] = cost
	a.driftNext++
	var sum time.Duration
	for _, c := range a.driftCosts {
		sum += c
	}
	mean := sum / driftWindow
	gap := netfilter.DriftCheckGap(a.cfg.Resync, mean)
	stretched := gap > a.cfg.Resync && a.driftGap <= a.cfg.Resync
	a.driftGap, a.nextDrift = gap, start.Add(gap)
	a.mu.Unlock()
	a.metrics.driftInterval.Set(gap.Seconds())
	if stretched {
		a.log.Info("drift checks spaced out to keep their CPU within budget", "mean_check", mean.Round(time.Millisecond),
			"interval", gap.Round(time.Second), "resync", a.cfg.Resync, "budget_pct_of_core", 100*netfilter.DriftCheckBudget)
	}
}

// driftWindow is how many drift checks the mean cost is taken over: the
// Syncer's cycle of canary checks and one full check.
const driftWindow = netfilter.DefaultFullCheckEvery

// nextDriftCheck is when spaceDriftChecks allows the next drift check;
// zero before the first.
func (a *Agent) nextDriftCheck() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.nextDrift
}

// resyncIntervalLocked is the distance between drift checks: --resync,
// stretched by spaceDriftChecks.
func (a *Agent) resyncIntervalLocked() time.Duration { return max(a.cfg.Resync, a.driftGap) }

// later returns the later of two times.
func later(t, u time.Time) time.Time {
	if u.After(t) {
		return u
	}
	return t
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
// revision, a failing re-plan, a failing fetch, an overrun pass and a failed
// save of the last good revision, one per line.
func (a *Agent) errorTextLocked() string {
	err := errors.Join(a.attemptErr, a.applyErr, a.fetchErr, a.passErr, a.saveErr)
	if err == nil {
		return ""
	}
	return err.Error()
}

// restore loads the persisted last good revision as the one to fall back on,
// without applying it: a pass applies it only once the first fetch failed,
// offered nothing valid or overran its deadline.
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
