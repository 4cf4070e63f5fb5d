package agent

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"weir/reconcile/netfilter"
	"weir/reconcile/plan"
	"weir/reconcile/render"
	"weir/spec"
)

// maxCounterReads bounds the iptables processes GET /balancers/NAME runs
// at once, beside the API's own limit on requests.
const maxCounterReads = 2

// BalancerStatus is one balancer as the local agent sees it: what GET
// /balancers/NAME serves and `weir status --balancer NAME -o json` prints
// (docs/api.md).
type BalancerStatus struct {
	Name         string         `json:"name"`
	Revision     string         `json:"revision"`
	Frontend     string         `json:"frontend"` // "198.20.0.10:80/tcp"
	Strategy     string         `json:"strategy"`
	FailOpen     bool           `json:"failOpen"`
	SettingHosts []string       `json:"settingHosts"`
	Targets      []TargetStatus `json:"targets"` // sorted by host, guest
}

// TargetStatus is one target of a BalancerStatus.
type TargetStatus struct {
	Guest   string `json:"guest"`
	Host    string `json:"host"`
	Address string `json:"address"` // "198.19.2.2:8080"
	Weight  int    `json:"weight"`
	// State is healthy, unhealthy, drained (weight 0) or down (host not alive).
	State plan.TargetState `json:"state"`
	// Share is the fraction of new connections it receives now.
	Share float64 `json:"share"`
	// Connections is how many new connections this host's rules sent it
	// since they were last written; nil where this host does not set the
	// balancer (or its counters could not be read).
	Connections *uint64 `json:"connections"`
}

// Errors of Balancer.
var (
	ErrNoBalancer  = errors.New("no balancer of that name in the applied revision")
	ErrNotApplied  = errors.New("no revision applied yet")
	errRulesDiffer = errors.New("the balancer's rules are not the applied plan's")
)

// Balancer returns balancer name as the applied plan has it: the plan of
// that balancer alone, computed from the same revision, alive hosts and
// health view (Assign is pure and per balancer, so it is the applied one),
// with the new connections this host's rules sent each target.
func (a *Agent) Balancer(ctx context.Context, name string) (BalancerStatus, error) {
	a.mu.Lock()
	good, applied := a.good, a.applied
	a.mu.Unlock()
	if applied.revision == "" || good == nil || good.revision != applied.revision {
		return BalancerStatus{}, ErrNotApplied
	}
	i := slices.IndexFunc(good.spec.Balancers, func(b spec.Balancer) bool { return b.Name == name })
	if i < 0 {
		return BalancerStatus{}, ErrNoBalancer
	}
	one := &spec.Spec{Hosts: good.spec.Hosts, Balancers: good.spec.Balancers[i : i+1]}
	bp := &plan.Assign(one, applied.alive, applied.view).Balancers[0]
	st := balancerStatus(applied.revision, bp)
	if bp.SetBy(a.cfg.Node) {
		a.countConnections(ctx, bp, st.Targets)
	}
	return st, nil
}

// balancerStatus lays out bp for the API, without connection counts.
func balancerStatus(revision string, bp *plan.BalancerPlan) BalancerStatus {
	fe := bp.Frontend
	st := BalancerStatus{
		Name:         bp.Name,
		Revision:     revision,
		Frontend:     netip.AddrPortFrom(fe.Address, fe.Port).String() + "/" + string(fe.Protocol),
		Strategy:     string(bp.Strategy),
		FailOpen:     bp.FailOpen,
		SettingHosts: bp.SettingHosts,
		Targets:      make([]TargetStatus, 0, len(bp.Targets)+len(bp.Excluded)),
	}
	for _, ts := range [][]plan.Target{bp.Targets, bp.Excluded} {
		for _, t := range ts {
			st.Targets = append(st.Targets, TargetStatus{Guest: t.Guest, Host: t.Host,
				Address: netip.AddrPortFrom(t.Address, t.Port).String(), Weight: t.Weight, State: t.State, Share: t.Share})
		}
	}
	slices.SortFunc(st.Targets, func(a, b TargetStatus) int {
		return cmp.Or(cmp.Compare(a.Host, b.Host), cmp.Compare(a.Guest, b.Guest))
	})
	return st
}

// countConnections fills in the connections of targets (bp's, sorted by
// host and guest) from the counters of bp's WEIR-SVC chain: rule i sends
// to bp.Targets[i]; a target that takes no part got none. When the
// counters cannot be read, or the chain is not the plan's (an apply in
// between, or drift not yet repaired), the counts stay nil.
func (a *Agent) countConnections(ctx context.Context, bp *plan.BalancerPlan, targets []TargetStatus) {
	counts, err := a.serviceCounters(ctx, bp)
	if err != nil {
		a.log.Warn("reading a balancer's connection counters failed", "balancer", bp.Name, "err", err)
		return
	}
	for i := range targets {
		n := counts[targets[i].Host+"/"+targets[i].Guest]
		targets[i].Connections = &n
	}
}

// serviceCounters returns the new connections bp's rules sent each target
// taking part, by "host/guest".
func (a *Agent) serviceCounters(ctx context.Context, bp *plan.BalancerPlan) (map[string]uint64, error) {
	out := make(map[string]uint64, len(bp.Targets))
	if len(bp.Targets) == 0 {
		return out, nil // no rule sends anywhere: new connections are rejected
	}
	counters := a.deps.Live[spec.FamilyOf(bp.Frontend.Address)]
	if counters == nil {
		return nil, errors.New("no counter reader configured")
	}
	select {
	case a.counterSlots <- struct{}{}:
		defer func() { <-a.counterSlots }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	rules, err := counters.ChainCounters(ctx, "nat", render.ServiceChain(bp.Name))
	if err != nil {
		return nil, err
	}
	if len(rules) != len(bp.Targets) {
		return nil, errRulesDiffer
	}
	for i, t := range bp.Targets {
		if !rulePointsAt(rules[i].Rule, netip.AddrPortFrom(t.Address.Unmap(), t.Port)) {
			return nil, errRulesDiffer
		}
		out[t.Host+"/"+t.Guest] = rules[i].Packets
	}
	return out, nil
}

// rulePointsAt reports whether a WEIR-SVC rule can be the one for a target
// at to: a DNAT to it, or a jump to an owned chain (the WEIR-SEP chain of a
// target on this host).
func rulePointsAt(rule string, to netip.AddrPort) bool {
	if dest, ok := cutField(rule, "--to-destination"); ok {
		return dest == to.String()
	}
	jump, ok := cutField(rule, "-j")
	return ok && strings.HasPrefix(jump, netfilter.OwnedPrefix)
}

// cutField returns the field after flag in a space-separated rule.
func cutField(rule, flag string) (string, bool) {
	var prev string
	for f := range strings.FieldsSeq(rule) {
		if prev == flag {
			return f, true
		}
		prev = f
	}
	return "", false
}

// handleBalancer serves GET /balancers/{name}: 404 for a balancer the
// applied revision does not have, 503 before any revision is applied.
func (a *Agent) handleBalancer(w http.ResponseWriter, r *http.Request) {
	st, err := a.Balancer(r.Context(), r.PathValue("name"))
	switch {
	case errors.Is(err, ErrNoBalancer):
		http.Error(w, "balancer "+r.PathValue("name")+": "+err.Error(), http.StatusNotFound)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(st)
}
