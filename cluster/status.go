package cluster

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode/utf8"
)

// Status is the cluster as one node's gossip tells it: the object `weir
// status -o json` prints and the agent serves on GET /status. The first three
// fields are DESIGN.md's contract; the others are additions.
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
}

// alive reports whether a member counts as alive (suspect does).
func (m MemberStatus) alive() bool {
	return m.State == string(StateAlive) || m.State == string(StateSuspect)
}

// BuildStatus summarizes members for display. revision is the local agent's
// applied revision; empty (an observer has none) means the revision most alive
// members report. Converged means: at least one alive member, and every alive
// (or suspect) non-observer member reports that revision, one common digest,
// and no error. Dead and left members are listed but do not count.
func BuildStatus(revision string, members []Member) Status {
	s := Status{Revision: revision, Members: []MemberStatus{}}
	for _, m := range members {
		if m.Observer {
			continue
		}
		s.Members = append(s.Members, MemberStatus{
			Name: m.Name, Address: m.Address, State: string(m.State),
			Revision: m.Revision, Digest: m.Digest,
			Balancers: m.Balancers, Rules: m.Rules, Error: m.Error,
		})
	}
	sort.Slice(s.Members, func(i, j int) bool { return s.Members[i].Name < s.Members[j].Name })

	var alive []MemberStatus
	for _, m := range s.Members {
		if m.alive() {
			alive = append(alive, m)
		}
	}
	if s.Revision == "" {
		s.Revision = mostCommon(alive, func(m MemberStatus) string { return m.Revision })
	}
	var onRev []MemberStatus
	for _, m := range alive {
		if m.Revision == s.Revision {
			onRev = append(onRev, m)
		}
	}
	digest := mostCommon(onRev, func(m MemberStatus) string { return m.Digest })

	var reasons []string
	switch {
	case len(alive) == 0:
		reasons = append(reasons, "no alive member")
	case s.Revision == "":
		reasons = append(reasons, "no revision applied yet")
	}
	for _, m := range alive {
		switch {
		case m.Error != "":
			reasons = append(reasons, fmt.Sprintf("%s: %s", m.Name, firstLine(m.Error, 80)))
		case m.Revision == "":
			reasons = append(reasons, m.Name+" has applied no revision")
		case m.Revision != s.Revision:
			reasons = append(reasons, fmt.Sprintf("%s on %s, not %s", m.Name, ShortRevision(m.Revision), ShortRevision(s.Revision)))
		case m.Digest != digest:
			reasons = append(reasons, fmt.Sprintf("%s digest %s differs from %s", m.Name, ShortDigest(m.Digest), ShortDigest(digest)))
		}
	}
	if len(reasons) > 4 {
		reasons = append(reasons[:4], fmt.Sprintf("and %d more", len(reasons)-4))
	}
	s.Reason = strings.Join(reasons, "; ")
	s.Converged = s.Reason == ""
	return s
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

// firstLine returns the first line of s, cut to at most n runes with "…".
func firstLine(s string, n int) string {
	s, _, _ = strings.Cut(s, "\n")
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// WriteTable prints s like `consul members`: one row per member, then a
// summary line such as
//
//	converged: 3/3 alive on 1a2b3c4, digest 9f8e7d6c…
func WriteTable(w io.Writer, s Status) error {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tADDRESS\tSTATE\tREVISION\tDIGEST\tBALANCERS\tRULES\tERROR")
	for _, m := range s.Members {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			m.Name, orDash(m.Address), m.State, ShortRevision(m.Revision), ShortDigest(m.Digest),
			strconv.Itoa(m.Balancers), strconv.Itoa(m.Rules), firstLine(m.Error, 60))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("rendering status table: %w", err)
	}
	var out bytes.Buffer
	for _, line := range strings.SplitAfter(buf.String(), "\n") {
		body, nl := strings.CutSuffix(line, "\n")
		out.WriteString(strings.TrimRight(body, " "))
		if nl {
			out.WriteByte('\n')
		}
	}
	out.WriteString(Summary(s))
	out.WriteByte('\n')
	_, err := w.Write(out.Bytes())
	if err != nil {
		return fmt.Errorf("writing status table: %w", err)
	}
	return nil
}

// Summary is the one-line verdict under the status table.
func Summary(s Status) string {
	alive := 0
	for _, m := range s.Members {
		if m.alive() {
			alive++
		}
	}
	counts := fmt.Sprintf("%d/%d alive", alive, len(s.Members))
	var line string
	if s.Converged {
		digest := ""
		for _, m := range s.Members {
			if m.alive() {
				digest = m.Digest
				break
			}
		}
		short := ShortDigest(digest)
		if len(digest) > len(short) {
			short += "…"
		}
		line = fmt.Sprintf("converged: %s on %s, digest %s", counts, ShortRevision(s.Revision), short)
	} else {
		line = fmt.Sprintf("not converged: %s; %s", counts, s.Reason)
	}
	if s.Latest != "" && s.Latest != s.Revision {
		line += fmt.Sprintf(" (newest fetched %s not applied)", ShortRevision(s.Latest))
	}
	return line
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
