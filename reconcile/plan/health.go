package plan

import (
	"fmt"
	"strconv"

	"weir/spec"
)

// TargetState says whether a target takes part in its balancer and, when it
// does not, why. It is a byte, so a Target is no larger for it; it reads as
// its name in JSON.
type TargetState uint8

// Target states, as `weir plan -o json` and the agent's API show them.
const (
	// Healthy: the target takes part (host alive, weight > 0, and its
	// check passing or not reported yet).
	Healthy TargetState = iota
	// Unhealthy: the agent on the target's host reports its check failing.
	// It takes no part, unless the balancer fails open.
	Unhealthy
	// Drained: weight 0; it takes no part.
	Drained
	// Down: its host is not alive; it takes no part.
	Down
)

var stateNames = [...]string{Healthy: "healthy", Unhealthy: "unhealthy", Drained: "drained", Down: "down"}

// String returns the state's name: healthy, unhealthy, drained or down.
func (s TargetState) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "TargetState(" + strconv.Itoa(int(s)) + ")"
}

// MarshalText implements encoding.TextMarshaler.
func (s TargetState) MarshalText() ([]byte, error) {
	if int(s) >= len(stateNames) {
		return nil, fmt.Errorf("marshaling %v: unknown target state", s)
	}
	return []byte(s.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *TargetState) UnmarshalText(text []byte) error {
	for i, name := range stateNames {
		if string(text) == name {
			*s = TargetState(i)
			return nil
		}
	}
	return fmt.Errorf("unknown target state %q", text)
}

// Health is the health view Assign reads: which endpoint checks each host
// has reported failing. A check a host has not reported (yet) is healthy, so
// an agent that restarts, or a view that is not complete yet, shifts no
// traffic. Only a target's own host is asked about it: a host's reports
// count for its own guests only.
//
// Implementations must answer the same for the same arguments throughout one
// Assign call.
type Health interface {
	// Failing reports whether host has reported any endpoint check
	// failing. Assign asks Unhealthy only about the targets of such hosts,
	// so that while everything is healthy it computes no CheckID.
	Failing(host string) bool
	// Unhealthy reports whether host has reported the endpoint check id
	// failing.
	Unhealthy(host string, id spec.CheckID) bool
}

// UnhealthySet is a Health that lists the failing reports by host; what it
// does not list is healthy. The nil set is every check healthy.
type UnhealthySet map[string]map[spec.CheckID]bool

// Failing implements Health.
func (u UnhealthySet) Failing(host string) bool { return len(u[host]) > 0 }

// Unhealthy implements Health.
func (u UnhealthySet) Unhealthy(host string, id spec.CheckID) bool { return u[host][id] }

// Add records that host reports the check id failing.
func (u UnhealthySet) Add(host string, id spec.CheckID) {
	if u[host] == nil {
		u[host] = map[spec.CheckID]bool{}
	}
	u[host][id] = true
}

var _ Health = UnhealthySet(nil)

// GuestPort names a target guest and, optionally, the port its health
// check probes (0: any port).
type GuestPort struct {
	Guest string
	Port  uint16
}

// UnhealthyGuests returns the health view in which every check that a
// balancer of s runs against one of guests fails, as reported by the guest's
// own host (only checks of that port, where a GuestPort names one). It is
// for what-if planning (`weir plan --unhealthy`) and tests. unmatched lists
// the entries of guests that name no checked target of s.
func UnhealthyGuests(s *spec.Spec, guests []GuestPort) (set UnhealthySet, unmatched []GuestPort) {
	set = UnhealthySet{}
	for _, gp := range guests {
		g := s.Guest(gp.Guest)
		found := false
		for i := range s.Balancers {
			hc := s.Balancers[i].HealthCheck
			if g == nil || hc == nil || !g.Runs(s.Balancers[i].Target) || (gp.Port != 0 && hc.Port != gp.Port) {
				continue
			}
			set.Add(g.Host, spec.EndpointCheck{Address: g.Addr(s.Balancers[i].Family()), HealthCheck: *hc}.ID())
			found = true
		}
		if !found {
			unmatched = append(unmatched, gp)
		}
	}
	return set, unmatched
}
