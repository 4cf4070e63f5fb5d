package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"weir/agent"
	"weir/cluster"
	"weir/internal/testsupport"
)

// Status is an agent's status: the object GET /status serves and `weir
// status -o json` prints (docs/api.md). Read through the CLI, the agent's
// own fields (node, settled, error) are empty.
type Status struct {
	agent.Status
}

// Member returns the member called name, if listed.
func (s Status) Member(name string) (cluster.MemberStatus, bool) {
	for _, m := range s.Members {
		if m.Name == name {
			return m, true
		}
	}
	return cluster.MemberStatus{}, false
}

// AliveNames returns the sorted names of the members in state alive that
// count as hosts (a suspect member and strangers are left out).
func (s Status) AliveNames() []string {
	var names []string
	for _, m := range s.Members {
		if m.State == string(cluster.StateAlive) && m.Stranger == "" {
			names = append(names, m.Name)
		}
	}
	sort.Strings(names)
	return names
}

// Brief is a one-line summary of a status for test messages.
func (s Status) Brief() string {
	var b strings.Builder
	fmt.Fprintf(&b, "revision=%.12s converged=%v", s.Revision, s.Converged)
	for _, m := range s.Members {
		fmt.Fprintf(&b, " [%s %s rev=%.12s digest=%.8s rules=%d", m.Name, m.State, m.Revision, m.Digest, m.Rules)
		if m.Stranger != "" {
			fmt.Fprintf(&b, " stranger=%q", m.Stranger)
		}
		if m.Error != "" {
			fmt.Fprintf(&b, " error=%q", m.Error)
		}
		b.WriteString("]")
	}
	return b.String()
}

// Status asks the agent on host h for the cluster status: GET /status with
// StatusFromAPI, else `weir status -o json`.
func (w *Weir) Status(ctx context.Context, h *Host) (Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second) // an agent that hangs must not hang the poll
	defer cancel()
	if !w.StatusFromAPI {
		// `weir status` exits 1 when not converged and still prints the object.
		out, _, err := w.Run(ctx, h, "status", "--api", APIAddr, "-o", "json")
		return parseStatus(h, []byte(out), err)
	}
	code, body, err := w.API(ctx, h, http.MethodGet, "/status")
	if err == nil && code != http.StatusOK {
		return Status{}, fmt.Errorf("GET /status on %s: %d %s", h.Name, code, body)
	}
	return parseStatus(h, body, err)
}

// parseStatus reads the status object out, which counts even when the
// command that printed it failed (err); without one it returns err.
func parseStatus(h *Host, out []byte, err error) (Status, error) {
	var st Status
	if len(out) == 0 {
		return st, err
	}
	if jerr := json.Unmarshal(out, &st); jerr != nil {
		return st, fmt.Errorf("parsing status of %s: %w: %q", h.Name, jerr, out)
	}
	return st, nil
}

// ConvergedOn checks, from every host in hosts, that the cluster is converged
// on revision (any revision when empty) with exactly the members alive; it
// returns the status seen from the first host.
func (w *Weir) ConvergedOn(ctx context.Context, hosts []*Host, revision string, alive []string) (Status, error) {
	var first Status
	for i, h := range hosts {
		if err := w.CheckRunning(h); err != nil {
			return first, err
		}
		st, err := w.Status(ctx, h)
		if err != nil {
			return st, err
		}
		if i == 0 {
			first = st
		}
		if err := convergedFrom(h, st, revision, alive); err != nil {
			return first, err
		}
	}
	return first, nil
}

// convergedFrom checks the status st that host h reported.
func convergedFrom(h *Host, st Status, revision string, alive []string) error {
	if got, want := strings.Join(st.AliveNames(), ","), strings.Join(alive, ","); got != want {
		return fmt.Errorf("%s sees alive [%s]; want [%s]", h.Name, got, want)
	}
	if !st.Converged {
		return fmt.Errorf("%s: not converged: %s", h.Name, st.Brief())
	}
	for _, m := range st.Members {
		if m.State == string(cluster.StateAlive) && revision != "" && m.Revision != revision {
			return fmt.Errorf("%s sees %s on revision %.12s; want %.12s", h.Name, m.Name, m.Revision, revision)
		}
	}
	return nil
}

// WaitConverged polls ConvergedOn until it holds and returns how long it took.
func (w *Weir) WaitConverged(ctx context.Context, timeout time.Duration, hosts []*Host, revision string, alive []string) (time.Duration, error) {
	start := time.Now()
	err := testsupport.Eventually(ctx, timeout, 100*time.Millisecond, func() error {
		_, err := w.ConvergedOn(ctx, hosts, revision, alive)
		return err
	})
	return time.Since(start), err
}
