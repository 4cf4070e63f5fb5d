package agent

import (
	"fmt"
	"net/http"

	"weir/reconcile/netfilter"
	"weir/reconcile/render"
	"weir/spec"
)

// wantedRules is the ruleset the agent last handed to the Syncer, with
// the revision and plan digest it came from: what the agent wants in the
// kernel, applied or not.
type wantedRules struct {
	revision, digest string
	rulesets         render.Rulesets // nil ones before the first plan
}

// want records d, planned from revision, as what the agent wants applied.
// The Syncer keeps the same Ruleset and nobody modifies it afterwards, so
// readers may render it without copying.
func (a *Agent) want(revision string, d Desired) {
	a.mu.Lock()
	a.wanted = wantedRules{revision: revision, digest: d.Digest, rulesets: d.Rulesets}
	a.mu.Unlock()
}

// familyOf returns the family a GET /rules?family=NAME asks for: "ipv4"
// (iptables, the default) or "ipv6" (ip6tables).
func familyOf(name string) (spec.Family, bool) {
	for _, f := range spec.Families() {
		if name == f.Name() {
			return f, true
		}
	}
	return 0, false
}

// handleRules answers GET /rules[?family=ipv4|ipv6]: the owned rules of one
// family the agent
// wants in the kernel, in the saved form `weir diff` compares with the
// live rules (netfilter.DesiredText), with the revision and digest in the
// Weir-Revision and Weir-Digest headers, and the family's netfilter
// backend in Weir-Backend. 503 before the first plan.
func (a *Agent) handleRules(w http.ResponseWriter, r *http.Request) {
	family := r.URL.Query().Get("family")
	if family == "" {
		family = "ipv4"
	}
	a.mu.Lock()
	wr := a.wanted
	a.mu.Unlock()
	f, ok := familyOf(family)
	if !ok {
		http.Error(w, fmt.Sprintf("unknown family %q (want ipv4 or ipv6)", family), http.StatusBadRequest)
		return
	}
	rs := wr.rulesets[f]
	if rs == nil {
		http.Error(w, "no ruleset planned yet: the agent has no valid revision", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Weir-Revision", wr.revision)
	w.Header().Set("Weir-Digest", wr.digest)
	if live := a.deps.Live[f]; live != nil {
		// weir diff reads the live rules through the same backend.
		w.Header().Set("Weir-Backend", live.Backend())
	}
	w.Write(netfilter.DesiredText(rs))
}
