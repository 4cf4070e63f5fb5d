package agent

import (
	"slices"
	"time"

	"weir/cluster"
)

// State is the agent's own view of itself, for Status and tests.
type State struct {
	Node            string    `json:"node"`
	Revision        string    `json:"revision"` // applied (last good) revision
	Digest          string    `json:"digest"`
	Latest          string    `json:"latest"` // newest revision fetched (attempted)
	Balancers       int       `json:"balancers"`
	Rules           int       `json:"rules"`
	Alive           []string  `json:"alive"` // alive set of the applied plan
	Settled         bool      `json:"settled"`
	Error           string    `json:"error"`
	LastAppliedTime time.Time `json:"lastApplied"`
}

// State returns the agent's current state.
func (a *Agent) State() State {
	a.mu.Lock()
	defer a.mu.Unlock()
	return State{
		Node:            a.cfg.Node,
		Revision:        a.applied.revision,
		Digest:          a.applied.digest,
		Latest:          a.attempted,
		Balancers:       a.applied.balancers,
		Rules:           a.applied.rules,
		Alive:           slices.Clone(a.applied.alive),
		Settled:         a.settled,
		Error:           a.errorTextLocked(),
		LastAppliedTime: a.applied.at,
	}
}

// Status is what GET /status serves (README.md): the cluster status about
// this agent's applied revision, plus the agent's own fields.
type Status struct {
	cluster.Status
	Node string `json:"node"`
	// Latest is the newest revision fetched, valid or not. It equals the
	// embedded Status.Latest and hides it in JSON, where it is always
	// present, even when no revision has been fetched yet.
	Latest  string `json:"latest"`
	Settled bool   `json:"settled"` // the member view can be trusted (cluster.Cluster.Settled)
	Error   string `json:"error"`   // the agent's current errors, one per line; empty when none
	// Healthy is what GET /healthz says (200: true, 503: false), and
	// HealthReason why it says 503; empty when healthy.
	Healthy      bool   `json:"healthy"`
	HealthReason string `json:"healthReason"`
}

// Status returns what GET /status serves.
func (a *Agent) Status() Status {
	st := a.State()
	h := a.Health()
	s := Status{
		Status:       a.deps.Status(st.Revision, a.deps.Cluster.Members()),
		Node:         st.Node,
		Latest:       st.Latest,
		Settled:      st.Settled,
		Error:        st.Error,
		Healthy:      h.OK,
		HealthReason: h.Reason,
	}
	s.Status.Latest = st.Latest
	s.Status.GossipEncrypted = a.cfg.GossipEncrypted
	a.mu.Lock()
	s.Status.Health = a.applied.health
	a.mu.Unlock()
	return s
}
