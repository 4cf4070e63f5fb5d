package cluster

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"
)

// Status is the cluster as one node's gossip tells it: the object `weir
// status -o json` prints and the core of what the agent serves on GET
// /status, as README.md describes them.
type Status struct {
	// Revision is the revision the view is about: the local agent's applied
	// revision, or (for an observer) the one most alive members report.
	Revision string `json:"revision"`
	// Converged is true when every alive member reports Revision with the
	// same digest and no error.
	Converged bool           `json:"converged"`
	Members   []MemberStatus `json:"members"`
	// Latest is the newest revision the local agent fetched, valid or not;
	// the agent sets it. `weir status --wait` waits until it is Revision.
	Latest string `json:"latest,omitempty"`
	// Reason says why the cluster has not converged; empty when it has.
	Reason string `json:"reason,omitempty"`
	// GossipEncrypted says whether the node's gossip is encrypted (false
	// only with --insecure-gossip); the agent or observer sets it.
	GossipEncrypted bool `json:"gossipEncrypted"`
	// Health lists the targets the local agent's applied plan keeps out
	// for failing their health checks, and the balancers that fail open;
	// the agent sets it, and only when there are any.
	Health *HealthSummary `json:"health,omitempty"`
}

// MaxListed bounds the targets and balancers a HealthSummary lists; the
// totals count them all.
const MaxListed = 20

// HealthSummary is what a plan says about target health, for `weir status`.
type HealthSummary struct {
	// Unhealthy are the first MaxListed targets failing their check,
	// sorted by balancer, host and guest; UnhealthyTotal counts them all.
	Unhealthy      []TargetRef `json:"unhealthy"`
	UnhealthyTotal int         `json:"unhealthyTotal"`
	// FailOpen are the first MaxListed balancers (sorted) that send to all
	// their targets because none passes its check; FailOpenTotal counts
	// them all.
	FailOpen      []string `json:"failOpen"`
	FailOpenTotal int      `json:"failOpenTotal"`
}

// TargetRef names one target of a balancer.
type TargetRef struct {
	Balancer string `json:"balancer"`
	Guest    string `json:"guest"`
	Host     string `json:"host"`
}

// MemberStatus is one member in a Status. Observers are not listed: they are
// workstations looking at the cluster, not part of it.
type MemberStatus struct {
	Name      string `json:"name"`
	Address   string `json:"address"`
	State     string `json:"state"`
	Revision  string `json:"revision"`
	Digest    string `json:"digest"`
	Balancers int    `json:"balancers"`
	Rules     int    `json:"rules"`
	Error     string `json:"error"`
	// Stranger says why the member does not count as a host; it never
	// counts for convergence or plans (README.md).
	Stranger string `json:"stranger,omitempty"`
	// UnhealthyChecks is how many endpoint checks of its own guests the
	// member reports failing.
	UnhealthyChecks int `json:"unhealthyChecks"`
}

// Alive reports whether a member is alive (suspect is).
func (m MemberStatus) Alive() bool {
	return m.State == string(StateAlive) || m.State == string(StateSuspect)
}

// Counts reports whether a member counts as an alive host: alive and not a
// stranger.
func (m MemberStatus) Counts() bool { return m.Alive() && m.Stranger == "" }

// ErrorLine returns the first line of the member's error, cut to at most n
// runes with "…".
func (m MemberStatus) ErrorLine(n int) string {
	s, _, _ := strings.Cut(m.Error, "\n")
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// BuildStatus summarizes members for display. revision is the local agent's
// applied revision; empty (an observer has none) means the revision most alive
// members report. Converged means: at least one alive member, and every alive
// (or suspect) member that counts reports that revision, one common digest,
// and no error. Dead and left members and strangers are listed but do not
// count.
func BuildStatus(revision string, members []Member) Status {
	s := Status{Revision: revision, Members: memberStatuses(members)}
	var alive []MemberStatus
	for _, m := range s.Members {
		if m.Counts() {
			alive = append(alive, m)
		}
	}
	if s.Revision == "" {
		s.Revision = mostCommon(alive, func(m MemberStatus) string { return m.Revision })
	}
	s.Reason = strings.Join(reasons(alive, s.Revision), "; ")
	s.Converged = s.Reason == ""
	return s
}

// memberStatuses lists the members that are not observers, sorted by name.
func memberStatuses(members []Member) []MemberStatus {
	out := []MemberStatus{}
	for _, m := range members {
		if m.Observer {
			continue
		}
		out = append(out, MemberStatus{
			Name: m.Name, Address: m.Address, State: string(m.State),
			Revision: m.Revision, Digest: m.Digest,
			Balancers: m.Balancers, Rules: m.Rules, Error: m.Error, Stranger: m.Stranger,
			UnhealthyChecks: m.Unhealthy,
		})
	}
	slices.SortFunc(out, func(a, b MemberStatus) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// reasons says why the alive members have not converged on revision: at
// most four reasons, then how many more there are. None means converged.
func reasons(alive []MemberStatus, revision string) []string {
	var onRev []MemberStatus
	for _, m := range alive {
		if m.Revision == revision {
			onRev = append(onRev, m)
		}
	}
	digest := mostCommon(onRev, func(m MemberStatus) string { return m.Digest })

	var out []string
	switch {
	case len(alive) == 0:
		out = append(out, "no alive member")
	case revision == "":
		out = append(out, "no revision applied yet")
	}
	for _, m := range alive {
		switch {
		case m.Error != "":
			out = append(out, fmt.Sprintf("%s: %s", m.Name, m.ErrorLine(80)))
		case m.Revision == "":
			out = append(out, m.Name+" has applied no revision")
		case m.Revision != revision:
			out = append(out, fmt.Sprintf("%s on %s, not %s", m.Name, ShortRevision(m.Revision), ShortRevision(revision)))
		case m.Digest != digest:
			out = append(out, fmt.Sprintf("%s digest %s differs from %s", m.Name, ShortDigest(m.Digest), ShortDigest(digest)))
		}
	}
	if len(out) > 4 {
		out = append(out[:4], fmt.Sprintf("and %d more", len(out)-4))
	}
	return out
}

// Current reports whether the cluster has converged on the newest revision
// the agent fetched (when Latest is known), and if not, why: what
// `weir status --wait` waits for.
func (s Status) Current() (bool, string) {
	if !s.Converged {
		return false, s.Reason
	}
	if s.Latest != "" && s.Latest != s.Revision {
		return false, fmt.Sprintf("newest fetched revision %s is not applied (still on %s)", ShortRevision(s.Latest), ShortRevision(s.Revision))
	}
	return true, ""
}

// OnRevision reports whether the cluster has converged on rev, a full or
// abbreviated revision (MatchRevision), and if not, why: what `weir status
// --wait --revision` waits for. A newer fetched revision does not matter.
func (s Status) OnRevision(rev string) (bool, string) {
	if !s.Converged {
		return false, s.Reason
	}
	if !MatchRevision(s.Revision, rev) {
		return false, fmt.Sprintf("converged on %s, not %s", ShortRevision(s.Revision), rev)
	}
	return true, ""
}

// MatchRevision reports whether revision is want or starts with it: want
// may be a commit id or "dir:" and a tree hash, in full or abbreviated to
// at least 4 hex digits, in either case.
func MatchRevision(revision, want string) bool {
	want = strings.ToLower(want)
	if revision == want {
		return revision != ""
	}
	return ValidRevisionPrefix(want) && strings.HasPrefix(revision, want)
}

// ValidRevisionPrefix reports whether want can name a revision: a commit id
// or "dir:" and a tree hash, at least 4 hex digits.
func ValidRevisionPrefix(want string) bool {
	want = strings.TrimPrefix(strings.ToLower(want), "dir:")
	if len(want) < 4 || len(want) > maxMetaString {
		return false
	}
	for _, c := range want {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// mostCommon returns the most frequent non-empty key, the smallest on a tie,
// so the choice is the same on every node.
func mostCommon(ms []MemberStatus, key func(MemberStatus) string) string {
	counts := map[string]int{}
	for _, m := range ms {
		if k := key(m); k != "" {
			counts[k]++
		}
	}
	best, n := "", 0
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		if counts[k] > n {
			best, n = k, counts[k]
		}
	}
	return best
}

// ShortRevision abbreviates a revision for display: 7 characters of a commit
// id, or "dir:" and 7 characters of a directory hash; "-" when empty.
func ShortRevision(r string) string {
	if r == "" {
		return "-"
	}
	if rest, ok := strings.CutPrefix(r, "dir:"); ok {
		return "dir:" + cut(rest, 7)
	}
	return cut(r, 7)
}

// ShortDigest abbreviates a plan digest to 8 characters; "-" when empty.
func ShortDigest(d string) string {
	if d == "" {
		return "-"
	}
	return cut(d, 8)
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// Total is how many unhealthy targets the summary counts; 0 for nil.
func (h *HealthSummary) Total() int {
	if h == nil {
		return 0
	}
	return h.UnhealthyTotal
}
