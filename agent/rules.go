package agent

import (
	"fmt"
	"net/http"

	"weir/reconcile/netfilter"
	"weir/reconcile/render"
)

// wantedRules is the ruleset the agent last handed to the Syncer, with
// the revision and plan digest it came from: what the agent wants in the
// kernel, applied or not.
type wantedRules struct {
	revision, digest string
	ruleset          *render.Ruleset
}

// want records d, planned from revision, as what the agent wants applied.
// The Syncer keeps the same Ruleset and nobody modifies it afterwards, so
// readers may render it without copying.
func (a *Agent) want(revision string, d Desired) {
	a.mu.Lock()
	a.wanted = wantedRules{revision: revision, digest: d.Digest, ruleset: d.Ruleset}
	a.mu.Unlock()
}

// familyRuleset returns the part of rs one address family's command
// programs: "ipv4" is everything Render writes today (iptables).
func familyRuleset(rs *render.Ruleset, family string) (*render.Ruleset, bool) {
	if family == "ipv4" {
		return rs, true
	}
	return nil, false
}

// handleRules answers GET /rules[?family=ipv4]: the owned rules the agent
// wants in the kernel, in the saved form `weir diff` compares with the
// live rules (netfilter.DesiredText), with the revision and digest in the
// Weir-Revision and Weir-Digest headers. 503 before the first plan.
func (a *Agent) handleRules(w http.ResponseWriter, r *http.Request) {
	family := r.URL.Query().Get("family")
	if family == "" {
		family = "ipv4"
	}
	a.mu.Lock()
	wr := a.wanted
	a.mu.Unlock()
	if wr.ruleset == nil {
		http.Error(w, "no ruleset planned yet: the agent has no valid revision", http.StatusServiceUnavailable)
		return
	}
	rs, ok := familyRuleset(wr.ruleset, family)
	if !ok {
		http.Error(w, fmt.Sprintf("unknown family %q (want ipv4)", family), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Weir-Revision", wr.revision)
	w.Header().Set("Weir-Digest", wr.digest)
	w.Write(netfilter.DesiredText(rs))
}
