package health

import (
	"fmt"
	"strconv"
	"time"
)

// State is what the probes of one endpoint check say about it so far.
type State uint8

// States of an endpoint check. A check starts Unknown, and only a run of
// results as long as its threshold moves it: one failure in a healthy run,
// or one pass in a failing one, changes nothing.
const (
	// Unknown: not yet threshold results in a row either way. Planning
	// treats it as healthy, so a restarting agent shifts no traffic.
	Unknown State = iota
	// Healthy: HealthyThreshold passes in a row.
	Healthy
	// Unhealthy: UnhealthyThreshold failures in a row.
	Unhealthy
)

var stateNames = [...]string{Unknown: "unknown", Healthy: "healthy", Unhealthy: "unhealthy"}

// String returns the state's name: unknown, healthy or unhealthy.
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// MarshalText implements encoding.TextMarshaler.
func (s State) MarshalText() ([]byte, error) {
	if int(s) >= len(stateNames) {
		return nil, fmt.Errorf("marshaling %v: unknown health state", s)
	}
	return []byte(s.String()), nil
}

// machine damps the results of one endpoint check into its State: it moves
// to Healthy after healthy passes in a row and to Unhealthy after unhealthy
// failures in a row, from any other state. It reads no clock: each result
// comes with its time, so tests drive it with a fake one.
type machine struct {
	healthy, unhealthy int // thresholds, at least 1

	state   State
	since   time.Time // when state was entered (zero while Unknown)
	passes  int       // consecutive passes, at most healthy
	fails   int       // consecutive failures, at most unhealthy
	lastErr string    // the last failure's message
}

// newMachine returns a machine in state Unknown with the given thresholds
// (values below 1 count as 1).
func newMachine(healthy, unhealthy int) *machine {
	return &machine{healthy: max(1, healthy), unhealthy: max(1, unhealthy)}
}

// observe records the result of one probe that ended at now (err nil: it
// passed) and returns the state before it and whether the state changed.
func (m *machine) observe(err error, now time.Time) (from State, changed bool) {
	from = m.state
	if err == nil {
		m.passes, m.fails = min(m.passes+1, m.healthy), 0
		if m.state != Healthy && m.passes >= m.healthy {
			m.state, m.since = Healthy, now
			return from, true
		}
		return from, false
	}
	m.fails, m.passes = min(m.fails+1, m.unhealthy), 0
	m.lastErr = err.Error()
	if m.state != Unhealthy && m.fails >= m.unhealthy {
		m.state, m.since = Unhealthy, now
		return from, true
	}
	return from, false
}
