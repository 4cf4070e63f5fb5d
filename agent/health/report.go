package health

import (
	"context"
	"log/slog"

	"weir/spec"
)

// apply makes checks the scheduled set: kept checks go on as they were,
// new ones start Unknown with their first probe jittered over an interval,
// and dropped ones leave Snapshot (with a Removed transition when their
// state was known).
func (p *Prober) apply(checks []Check) {
	now := p.cfg.Now()
	if p.s.base.IsZero() {
		p.s.base = now
	}
	t := now.Sub(p.s.base)
	next := make(map[spec.CheckID]*entry, len(checks))
	var added []*entry
	for _, c := range checks {
		if _, dup := next[c.ID]; dup {
			continue
		}
		if c.Interval <= 0 || c.Timeout <= 0 {
			p.cfg.Logger.Error("health check ignored: interval and timeout must be positive", "check", c.String(), "id", c.ID.String())
			continue
		}
		e := p.s.entries[c.ID]
		if e == nil {
			e = &entry{Check: c, m: newMachine(c.HealthyThreshold, c.UnhealthyThreshold),
				due: t + p.cfg.Jitter(c.Interval), window: min(maxBatchWindow, c.Interval/8)}
			added = append(added, e)
		}
		next[c.ID] = e
	}
	dropped := p.s.replace(next)
	p.mu.Lock()
	for _, e := range added {
		p.status[e.ID] = Status{Check: e.Check}
	}
	for _, e := range dropped {
		delete(p.status, e.ID)
	}
	p.mu.Unlock()
	for _, e := range dropped {
		if e.m.state != Unknown {
			p.emit(Transition{Check: e.Check, From: e.m.state, To: Unknown, At: now, Removed: true})
		}
	}
}

// record feeds a probe's result to its check's state machine, and reports
// the transition it causes, if any.
func (p *Prober) record(r result) {
	if !p.s.done(r.e) {
		return
	}
	e := r.e
	from, changed := e.m.observe(r.err, r.at)
	if !changed {
		return
	}
	st := Status{Check: e.Check, State: e.m.state, Since: e.m.since}
	if st.State == Unhealthy {
		st.Err = e.m.lastErr
	}
	p.mu.Lock()
	p.status[e.ID] = st
	p.mu.Unlock()
	p.emit(Transition{Check: e.Check, From: from, To: st.State, At: r.at, Err: st.Err})
}

// emit logs a transition and hands it to OnTransition.
func (p *Prober) emit(t Transition) {
	args := []any{"check", t.String(), "id", t.ID.String(), "from", t.From.String(), "to", t.To.String()}
	if t.Err != "" {
		args = append(args, "error", t.Err)
	}
	if t.Removed {
		args = append(args, "removed", true)
	}
	level := slog.LevelInfo
	if t.To == Unhealthy {
		level = slog.LevelWarn
	}
	p.cfg.Logger.Log(context.Background(), level, "health check state changed", args...)
	if p.cfg.OnTransition != nil {
		p.cfg.OnTransition(t)
	}
}
