// Package cluster wraps hashicorp/memberlist: joining and rejoining, gossip
// encryption, the compact node meta every agent announces (applied revision,
// plan digest, counts, error flag), error texts, and revision hints.
package cluster

// State is a member's liveness as gossip tells it.
type State string

// Member states, as `weir status` lists them (README.md).
const (
	StateAlive   State = "alive"
	StateSuspect State = "suspect"
	StateDead    State = "dead"
	StateLeft    State = "left"
)

// NodeState is what an agent announces about itself over gossip.
type NodeState struct {
	Revision  string // applied (last good) revision: a commit hash or "dir:<sha256>"
	Digest    string // hex digest of the plan computed for Revision
	Balancers int    // balancers this host sets
	Rules     int    // rules this host has applied
	Error     string // last error (validation, fetch or apply); empty when healthy
}

// Member is one node of the cluster as the local node sees it, including dead
// and departed nodes it has seen.
type Member struct {
	Name     string
	Address  string // "IP:PORT"
	State    State
	Observer bool // a `weir status --join` observer: never a host, never in a plan
	// Stranger says why the member does not count as a host (its meta is
	// not understood, its name is not a Host of the applied revision, or it
	// gossips from another address than that Host's); empty when it counts.
	Stranger string
	// Unhealthy is how many endpoint checks of its own guests the member
	// reports failing (SetHealth); 0 for a member that does not count.
	Unhealthy int
	NodeState
}

// Counts reports whether the member counts as an alive host: alive (or
// suspect), not an observer, not a stranger.
func (m Member) Counts() bool {
	return (m.State == StateAlive || m.State == StateSuspect) && !m.Observer && m.Stranger == ""
}
