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
	fetch  bool // ask the source for its latest revision
	replan bool // membership may have changed: recompute and apply if different
	resync bool // check the live rules for drift
	retry  bool // an earlier pass failed: fetch and apply again
}

func (p pending) any() bool { return p.fetch || p.replan || p.resync || p.retry }

// schedule is the loop's bookkeeping: the work pending, when the last pass
// ran and when each timer is due (a zero retryAt: no retry scheduled).
type schedule struct {
	pending
	lastPass, retryAt      time.Time
	nextResync, nextSettle time.Time
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
	defer func() {
		stopWatch()
		wg.Wait()
	}()
	return a.loop(ctx)
}

// loop is Run's worker: one pass whenever work is pending and MinInterval has
// passed since the last, otherwise a wait for a trigger or a timer.
func (a *Agent) loop(ctx context.Context) error {
	t := triggers{changes: a.deps.Cluster.Changes(), hints: a.deps.Cluster.Hints()}
	now := a.clock.Now()
	s := schedule{
		pending:    pending{fetch: true},
		nextResync: now.Add(a.cfg.Resync),
		nextSettle: now, // check at once
	}
	for {
		now = a.clock.Now()
		a.fireTimers(&s, now)
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

// fireTimers marks the work whose timer is due at now, and checks whether
// the cluster has settled.
func (a *Agent) fireTimers(s *schedule, now time.Time) {
	if !now.Before(s.nextResync) {
		s.resync = true
		s.nextResync = now.Add(a.cfg.Resync)
	}
	if !s.retryAt.IsZero() && !now.Before(s.retryAt) {
		s.retry = true
		s.retryAt = time.Time{}
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

// runPass does the pending work and schedules a retry with backoff when the
// pass failed.
func (a *Agent) runPass(ctx context.Context, s *schedule) {
	if a.pass(ctx, s.pending) {
		s.retryAt = a.clock.Now().Add(a.retryBackoff())
	} else {
		s.retryAt = time.Time{}
	}
	s.pending = pending{}
	s.lastPass = a.clock.Now()
}

// wait blocks until a trigger arrives or the next timer is due, and marks the
// work a trigger asks for. It reports false when ctx ends.
func (a *Agent) wait(ctx context.Context, s *schedule, t *triggers, now time.Time) bool {
	select {
	case <-ctx.Done():
		return false
	case <-a.refresh:
		s.fetch = true
	case rev, ok := <-t.hints:
		if !ok {
			t.hints = nil
			return true
		}
		if a.noteHint(rev) {
			s.fetch = true
		}
	case _, ok := <-t.changes:
		if !ok {
			t.changes = nil
			return true
		}
		s.replan = true
	case <-a.clock.After(a.deadline(s).Sub(now)):
	}
	return true
}

// deadline is when the loop must wake without a trigger: the next resync,
// retry or settle check, or the end of MinInterval when work is pending.
func (a *Agent) deadline(s *schedule) time.Time {
	deadline := s.nextResync
	if !s.retryAt.IsZero() && s.retryAt.Before(deadline) {
		deadline = s.retryAt
	}
	if !a.isSettled() && s.nextSettle.Before(deadline) {
		deadline = s.nextSettle
	}
	if s.any() {
		if due := s.lastPass.Add(a.cfg.MinInterval); due.Before(deadline) {
			deadline = due
		}
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
}

// noteHint records a hinted revision and reports whether it is worth a fetch:
// a hint for a revision this agent already attempted is ignored.
func (a *Agent) noteHint(rev string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lastHint = rev
	return rev != a.attempted && (a.good == nil || rev != a.good.revision)
}
