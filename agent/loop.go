package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// pending is the work the next pass does.
type pending struct {
	result *fetched // a fetch's answer to act on
	replan bool     // membership may have changed: recompute and apply if different
	resync bool     // check the live rules for drift
	retry  bool     // an earlier pass failed: re-apply what failed
}

func (p pending) any() bool { return p.result != nil || p.replan || p.resync || p.retry }

// schedule is the loop's bookkeeping: the work pending, when the last pass
// ran and when each timer is due (a zero retryAt: no retry scheduled).
type schedule struct {
	pending
	lastPass, retryAt      time.Time
	nextResync, nextSettle time.Time
	fetches                fetchState
}

// fetchState is the loop's view of the fetch worker: at most one fetch runs
// at a time, beside the loop, so that a source that hangs never delays a
// drift repair or a membership change.
type fetchState struct {
	want      bool      // a fetch was asked for and has not started yet
	inFlight  bool      // a fetch runs now
	started   time.Time // when the running (or last) fetch started
	overdue   bool      // the running fetch passed its deadline without an answer
	answered  bool      // some fetch has answered since Run started
	lastStart time.Time // fetches are spaced by MinInterval, as passes are
}

// triggers are the cluster's channels that wake the loop; one that closes is
// set to nil and never read again.
type triggers struct {
	changes <-chan struct{}
	hints   <-chan string
}

// Run runs the loop until ctx ends, then leaves the gossip cluster and returns.
// The rules stay in the kernel: only `weir cleanup` removes them.
func (a *Agent) Run(ctx context.Context) error {
	if !a.running.CompareAndSwap(false, true) {
		return errors.New("agent: already running")
	}
	defer a.running.Store(false)

	a.restore()

	watchCtx, stopWatch := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { a.deps.Source.Watch(watchCtx, a.Refresh) })
	a.runHealth(watchCtx, &wg)
	defer func() {
		stopWatch()
		wg.Wait()
	}()
	return a.loop(ctx)
}

// loop is Run's worker: it starts a fetch whenever one is wanted and none
// runs, does one pass whenever work is pending and MinInterval has passed
// since the last, and otherwise waits for a trigger, a fetch's answer or a
// timer.
func (a *Agent) loop(ctx context.Context) error {
	t := triggers{changes: a.deps.Cluster.Changes(), hints: a.deps.Cluster.Hints()}
	now := a.clock.Now()
	a.markLoopStart(now)
	s := schedule{
		fetches:    fetchState{want: true},
		nextResync: now.Add(a.cfg.Resync),
		nextSettle: now, // check at once
	}
	for {
		now = a.clock.Now()
		a.fireTimers(&s, now)
		a.startFetch(ctx, &s, now)
		if s.any() && (s.lastPass.IsZero() || now.Sub(s.lastPass) >= a.cfg.MinInterval) {
			a.runPass(ctx, &s)
			if ctx.Err() != nil {
				return a.leave()
			}
			continue
		}
		if !a.wait(ctx, &s, &t, now) {
			return a.leave()
		}
	}
}

// fireTimers marks the work whose timer is due at now, notes a fetch that
// overran its deadline, and checks whether the cluster has settled.
func (a *Agent) fireTimers(s *schedule, now time.Time) {
	if !now.Before(s.nextResync) {
		s.resync = true
		s.nextResync = now.Add(a.cfg.Resync)
		a.retryFailedApply(s)
	}
	if !s.retryAt.IsZero() && !now.Before(s.retryAt) {
		s.retry = true
		s.fetches.want = true
		s.retryAt = time.Time{}
		a.retryFailedApply(s)
	}
	if f := &s.fetches; f.inFlight && !f.overdue && !now.Before(f.started.Add(a.cfg.FetchTimeout)) {
		f.overdue = true
		s.replan = true // a restored last good revision no longer waits for it
		a.fetchOverdue()
	}
	if !a.isSettled() && !now.Before(s.nextSettle) {
		if a.deps.Cluster.Settled() {
			a.setSettled()
			s.replan = true
			a.log.Info("cluster settled; hosts never seen now count as not alive")
		} else {
			s.nextSettle = now.Add(a.cfg.SettleCheck)
		}
	}
}

// retryFailedApply makes the next fetch hand over again a revision that
// failed to apply (not to validate), as Flux retries a failed
// reconciliation.
func (a *Agent) retryFailedApply(s *schedule) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if errors.Is(a.attemptErr, errApply) {
		a.attempted = ""
		s.fetches.want = true
	}
}

// runPass does the pending work under the pass deadline and schedules a
// retry with backoff when the pass failed.
func (a *Agent) runPass(ctx context.Context, s *schedule) {
	hold := !s.fetches.answered && !s.fetches.overdue
	if hold && s.result == nil && a.State().Revision == "" {
		// Before the first fetch answers there is nothing to plan: a pass
		// now would only delay the one that applies its answer.
		s.pending = pending{}
		return
	}
	if a.pass(ctx, s.pending, hold) {
		s.retryAt = a.clock.Now().Add(a.retryBackoff())
	} else {
		s.retryAt = time.Time{}
	}
	s.pending = pending{}
	s.lastPass = a.clock.Now()
}

// wait blocks until a trigger arrives, a fetch answers or the next timer is
// due, and marks the work it asks for. It reports false when ctx ends.
func (a *Agent) wait(ctx context.Context, s *schedule, t *triggers, now time.Time) bool {
	select {
	case <-ctx.Done():
		return false
	case <-a.refresh:
		s.fetches.want = true
	case f := <-a.fetchDone:
		a.fetchAnswered(s, f)
	case rev, ok := <-t.hints:
		if !ok {
			t.hints = nil
			return true
		}
		if a.noteHint(rev) {
			s.fetches.want = true
		}
	case _, ok := <-t.changes:
		if !ok {
			t.changes = nil
			return true
		}
		s.replan = true
	case <-a.healthReplan:
		s.replan = true
	case <-a.clock.After(a.deadline(s).Sub(now)):
	}
	return true
}

// deadline is when the loop must wake without a trigger: the next resync,
// retry or settle check, the deadline of the running fetch, or the end of
// MinInterval when work (a pass or a fetch) is pending.
func (a *Agent) deadline(s *schedule) time.Time {
	deadline := s.nextResync
	earlier := func(t time.Time) {
		if !t.IsZero() && t.Before(deadline) {
			deadline = t
		}
	}
	earlier(s.retryAt)
	if !a.isSettled() {
		earlier(s.nextSettle)
	}
	if f := s.fetches; f.inFlight && !f.overdue {
		earlier(f.started.Add(a.cfg.FetchTimeout))
	}
	if s.any() {
		earlier(s.lastPass.Add(a.cfg.MinInterval))
	}
	if f := s.fetches; f.want && !f.inFlight {
		earlier(f.lastStart.Add(a.cfg.MinInterval))
	}
	return deadline
}

// leave departs the gossip cluster, leaving the rules in place.
func (a *Agent) leave() error {
	a.log.Info("shutting down: leaving the gossip cluster; rules stay in place")
	if err := a.deps.Cluster.Leave(a.cfg.LeaveTimeout); err != nil {
		return fmt.Errorf("leaving the gossip cluster: %w", err)
	}
	return nil
}

// retryBackoff is the wait before retrying after consecutive failed passes:
// 1s, 2s, 4s … capped at the resync interval.
func (a *Agent) retryBackoff() time.Duration {
	a.mu.Lock()
	n := a.failures
	a.mu.Unlock()
	d := time.Second << min(max(n-1, 0), 10)
	return min(d, a.cfg.Resync)
}

func (a *Agent) isSettled() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.settled
}

func (a *Agent) setSettled() {
	a.mu.Lock()
	a.settled = true
	a.mu.Unlock()
	a.markReady()
}

// noteHint records a hinted revision and reports whether it is worth a fetch:
// a hint for a revision this agent already attempted is ignored.
func (a *Agent) noteHint(rev string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lastHint = rev
	return rev != a.attempted && (a.good == nil || rev != a.good.revision)
}
