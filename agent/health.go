package agent

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Health is the agent's own judgement of its loop, as GET /healthz answers
// it and /status repeats it (docs/api.md).
type Health struct {
	OK bool
	// Reason says why the agent is unhealthy; empty when OK.
	Reason string
}

// Health judges the loop now: unhealthy when it is not running, when a pass
// or a fetch has overrun its deadline, when no pass finished for longer than
// the loop ever waits, or when the last pass failed to fetch or to apply. A
// rejected revision is not a failure of the loop: the last good one stays
// applied, and /status reports the rejection.
func (a *Agent) Health() Health {
	now := a.clock.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if reason := a.unhealthyLocked(now); reason != "" {
		return Health{Reason: reason}
	}
	return Health{OK: true}
}

// Live judges only whether the loop makes progress: it is running, and no
// pass overran its deadline or is overdue. Unlike Health it ignores a
// source that fails or hangs and an apply that failed (the loop retries
// them), so a supervisor restarting on it (the systemd watchdog) restarts
// a stuck agent, never one that waits for Git.
func (a *Agent) Live() Health {
	now := a.clock.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if reason := a.stuckLocked(now, false); reason != "" {
		return Health{Reason: reason}
	}
	return Health{OK: true}
}

// Ready is closed once the agent is worth being called started: its first
// pass ended (applied, or found nothing valid to apply), or the cluster
// settled, whichever comes first.
func (a *Agent) Ready() <-chan struct{} { return a.ready }

func (a *Agent) markReady() { a.readyOnce.Do(func() { close(a.ready) }) }

// unhealthyLocked is Health's reason, "" when healthy.
func (a *Agent) unhealthyLocked(now time.Time) string {
	if reason := a.stuckLocked(now, true); reason != "" {
		return reason
	}
	if err := a.failingLocked(); err != nil {
		return "the last pass failed: " + err.Error()
	}
	return ""
}

// stuckLocked is Live's reason, "" while the loop makes progress; with
// fetch, a fetch that overran its deadline counts too (Health's reason).
func (a *Agent) stuckLocked(now time.Time, fetch bool) string {
	round := func(d time.Duration) time.Duration { return d.Round(100 * time.Millisecond) }
	switch {
	case !a.running.Load():
		return "the reconcile loop is not running"
	case !a.passStarted.IsZero() && now.Sub(a.passStarted) > a.cfg.PassTimeout:
		return fmt.Sprintf("a reconcile pass has run for %s, over its %s deadline", round(now.Sub(a.passStarted)), a.cfg.PassTimeout)
	case fetch && !a.fetchStarted.IsZero() && now.Sub(a.fetchStarted) > a.cfg.FetchTimeout:
		return fmt.Sprintf("a fetch from the spec source has run for %s, over its %s deadline", round(now.Sub(a.fetchStarted)), a.cfg.FetchTimeout)
	case a.passStarted.IsZero() && now.Sub(a.lastPassEnd) > a.passGap():
		return fmt.Sprintf("no reconcile pass has finished for %s (one is due every %s)", round(now.Sub(a.lastPassEnd)), a.resyncIntervalLocked())
	}
	return ""
}

// passGap is the longest a healthy loop goes without finishing a pass: the
// resync timer starts one at least every Resync, and it may take up to its
// deadline and wait MinInterval behind the previous one.
func (a *Agent) passGap() time.Duration {
	return a.resyncIntervalLocked() + a.cfg.PassTimeout + a.cfg.MinInterval
}

// failingLocked joins what made the last pass fail: a failed fetch, apply or
// drift repair, and an overrun deadline.
func (a *Agent) failingLocked() error {
	var applyAttempt error
	if errors.Is(a.attemptErr, errApply) {
		applyAttempt = a.attemptErr
	}
	return errors.Join(a.fetchErr, applyAttempt, a.applyErr, a.passErr)
}

// markLoopStart counts the time before the first pass as time without one.
func (a *Agent) markLoopStart(now time.Time) {
	a.mu.Lock()
	a.lastPassEnd = now
	a.mu.Unlock()
}

// passBegins records that a pass runs from start.
func (a *Agent) passBegins(start time.Time) {
	a.mu.Lock()
	a.passStarted = start
	a.mu.Unlock()
}

// passEnds records the end of the pass that began at start; overran is set
// when it hit its deadline.
func (a *Agent) passEnds(start time.Time, overran error) {
	now := a.clock.Now()
	a.metrics.duration.Observe(now.Sub(start).Seconds())
	if overran != nil {
		a.metrics.passOverruns.Inc()
		a.log.Error("reconcile pass overran its deadline", "deadline", a.cfg.PassTimeout, "took", now.Sub(start))
	}
	a.mu.Lock()
	a.passStarted = time.Time{}
	a.lastPassEnd = now
	a.passErr = overran
	a.mu.Unlock()
	a.markReady()
}

// handleHealthz answers 200 "ok" or 503 with the reason.
func (a *Agent) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	h := a.Health()
	if !h.OK {
		http.Error(w, h.Reason, http.StatusServiceUnavailable)
		return
	}
	io.WriteString(w, "ok\n")
}
