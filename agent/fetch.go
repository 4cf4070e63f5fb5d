package agent

import (
	"context"
	"fmt"
	"time"
)

// fetched is one fetch's answer, handed from the fetch worker to the loop.
// The worker only reads the agent's state; the loop records the outcome.
type fetched struct {
	rev       string
	cand      *revisionSpec // a new revision that validated
	rejectErr error         // why rev did not validate
	err       error         // why the source gave no revision
	known     bool          // rev was attempted already: nothing to do
	overdue   bool          // it answered after its deadline, already counted as failed
}

// startFetch starts the fetch worker when a fetch is wanted, none runs and
// MinInterval has passed since the last one started.
func (a *Agent) startFetch(ctx context.Context, s *schedule, now time.Time) {
	f := &s.fetches
	if !f.want || f.inFlight || (!f.lastStart.IsZero() && now.Sub(f.lastStart) < a.cfg.MinInterval) {
		return
	}
	f.want, f.inFlight, f.overdue = false, true, false
	f.started, f.lastStart = now, now
	a.mu.Lock()
	a.fetchStarted = now
	a.mu.Unlock()
	go func() { a.fetchDone <- a.fetchOnce(ctx) }()
}

// fetchOnce asks the source for its latest revision under the fetch
// deadline and validates it when it is new. A source that ignores the
// deadline delays only this goroutine: the loop notices the overrun (see
// fetchOverdue) and starts no other fetch until this one answers.
func (a *Agent) fetchOnce(ctx context.Context) fetched {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.FetchTimeout)
	defer cancel()
	snap, err := a.deps.Source.Latest(ctx)
	if err != nil {
		return fetched{err: err}
	}
	a.mu.Lock()
	known := snap.Revision == a.attempted
	goodRev := ""
	if a.good != nil {
		goodRev = a.good.revision
	}
	hinted := snap.Revision == a.lastHint
	a.mu.Unlock()
	if known {
		return fetched{rev: snap.Revision, known: true}
	}
	if snap.Revision != goodRev && !hinted {
		// New to this agent and nobody told us: tell the others, so one fetch
		// anywhere makes every agent fetch at once.
		a.deps.Cluster.Hint(snap.Revision)
	}
	s, err := a.deps.Load(snap.FS)
	if err != nil {
		return fetched{rev: snap.Revision, rejectErr: err}
	}
	return fetched{rev: snap.Revision, cand: &revisionSpec{revision: snap.Revision, spec: s, fsys: snap.FS}}
}

// fetchAnswered takes the worker's answer into the schedule: the next pass
// acts on it.
func (a *Agent) fetchAnswered(s *schedule, f fetched) {
	f.overdue = s.fetches.overdue
	s.fetches.inFlight, s.fetches.answered = false, true
	s.result = &f
	a.mu.Lock()
	a.fetchStarted = time.Time{}
	a.mu.Unlock()
}

// fetchOverdue records that the running fetch passed its deadline without
// an answer, as a failed fetch: status, health and metrics say so until it
// answers.
func (a *Agent) fetchOverdue() {
	a.metrics.fetched(false)
	err := fmt.Errorf("fetching specs: no answer from the source within %s", a.cfg.FetchTimeout)
	a.mu.Lock()
	a.fetchErr = err
	a.mu.Unlock()
	a.log.Error("fetching specs is overdue; keeping the applied revision", "timeout", a.cfg.FetchTimeout)
}

// takeFetch records a fetch's answer and returns the revision to apply, if
// any. A rejected revision becomes the attempted one at once; a valid one
// when apply has tried it, so that readers never see a new attempted
// revision with the previous one's outcome.
func (a *Agent) takeFetch(ctx context.Context, f *fetched) (cand *revisionSpec, failed bool) {
	if f.err != nil {
		if ctx.Err() != nil {
			return nil, false
		}
		if !f.overdue {
			a.metrics.fetched(false)
		}
		a.mu.Lock()
		a.fetchErr = fmt.Errorf("fetching specs: %w", f.err)
		a.mu.Unlock()
		a.log.Error("fetching specs failed; keeping the applied revision", "err", f.err)
		return nil, true
	}
	if !f.overdue { // an overdue fetch was counted as an error already
		a.metrics.fetched(true)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.fetchErr = nil
	switch {
	case f.known:
		return nil, false
	case f.rejectErr != nil:
		a.metrics.specErrors.Inc()
		a.attempted, a.attemptErr = f.rev, fmt.Errorf("rejected revision %s: %w", f.rev, f.rejectErr)
		a.log.Error("rejected revision; keeping the last good one", "revision", f.rev, "last_good", a.goodRevisionLocked(), "err", f.rejectErr)
		return nil, false
	}
	a.log.Info("fetched revision", "revision", f.rev, "hosts", len(f.cand.spec.Hosts), "balancers", len(f.cand.spec.Balancers))
	return f.cand, false
}

func (a *Agent) goodRevisionLocked() string {
	if a.good == nil {
		return ""
	}
	return a.good.revision
}
