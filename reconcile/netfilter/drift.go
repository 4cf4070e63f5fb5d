package netfilter

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"weir/reconcile/render"
)

// DriftCheckBudget is the share of one core expensive drift checks may take
// on average (DriftCheckGap).
const DriftCheckBudget = 0.005

// DriftCheckFree is how long drift checks may take on average without being
// spaced out, whatever the resync interval.
const DriftCheckFree = 100 * time.Millisecond

// DriftCheckGap is the distance between drift checks that cost cost on
// average: resync, or cost/DriftCheckBudget when they take at least
// DriftCheckFree and that is longer. Reading a table of 60,000 rules takes
// seconds of CPU (iptables-save on nft), which every resync would cost more
// than the check is worth; the checks of smaller tables take milliseconds
// and keep the resync interval, however short.
func DriftCheckGap(resync, cost time.Duration) time.Duration {
	if cost < DriftCheckFree {
		return resync
	}
	return max(resync, time.Duration(float64(cost)/DriftCheckBudget))
}

// Reconcile checks that the kernel still holds the last applied Ruleset and
// re-applies it in full when it does not (or when the last apply failed). It
// reports whether it repaired anything.
//
// Reading a large table is not free (iptables-save of 70,000 rules costs about
// 1.4 s of CPU on nft), so most calls run a canary check, as kube-proxy's
// canary chains do: the jump rules, the top of the dispatch tree and a few
// rotating chains, each read with `iptables -S CHAIN`. Every FullCheckEvery-th
// call compares every owned chain and jump with iptables-save output. Live
// rules are compared after normalizing both sides (see normalizeRule), and once
// equal the kernel's own text of a chain is remembered by hash, so later
// checks of an unchanged chain only hash.
func (s *Syncer) Reconcile(ctx context.Context) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.desired == nil {
		return false, nil
	}
	if s.dirty {
		s.log.Info("re-applying after a failed apply")
		if _, err := s.converge(ctx, true); err != nil {
			return false, fmt.Errorf("repairing netfilter: %w", err)
		}
		s.repairs++
		return true, nil
	}
	s.checks++
	full := (s.checks-1)%s.fullEvery == 0
	var drift []drifted
	var err error
	if full {
		drift, err = s.fullCheck(ctx)
	} else {
		drift = s.canaryCheck(ctx)
	}
	if err != nil {
		return false, fmt.Errorf("checking netfilter for drift: %w", err)
	}
	if len(drift) == 0 {
		return false, nil
	}
	shown := make([]string, 0, 5)
	for i := 0; i < len(drift) && i < cap(shown); i++ {
		shown = append(shown, drift[i].String())
	}
	s.log.Warn("netfilter drifted from the applied ruleset; re-applying", "full_check", full,
		"drifted", len(drift), "first", shown)
	if _, err := s.converge(ctx, true); err != nil {
		return false, fmt.Errorf("repairing netfilter: %w", err)
	}
	s.repairs++
	s.adoptAfterRepair(ctx, drift)
	return true, nil
}

// drifted is one difference between the kernel and the applied state.
type drifted struct {
	table, chain string
	why          string
}

// String renders the difference for logs, e.g. "nat/WEIR-SERVICES: rules differ".
func (d drifted) String() string { return d.table + "/" + d.chain + ": " + d.why }

// matches reports whether live, the kernel's rules of the chain, are the
// applied ones, and remembers the kernel's form when they are.
func (c *chainState) matches(live []string) bool {
	return c.matchesHashed(hashRules(live), live)
}

// matchesHashed is matches with the hash of live (hashRules) known. The
// rules Render writes come back from the kernel in their saved form
// (render.SaveForm), so that is compared first, rule by rule and without
// allocating; normalizing both sides is the fallback for rules written in
// another form.
func (c *chainState) matchesHashed(h [32]byte, live []string) bool {
	if c.liveOK && h == c.live {
		return true
	}
	if !savedForms(c.rules, live) {
		if !c.normOK {
			c.norm, c.normOK = hashNormalized(c.rules), true
		}
		if hashNormalized(live) != c.norm {
			return false
		}
	}
	c.live, c.liveOK = h, true
	return true
}

// savedForms reports whether live is rules in the form iptables-save prints.
func savedForms(rules, live []string) bool {
	if len(rules) != len(live) {
		return false
	}
	for i, r := range rules {
		if !render.SavedAs(r, live[i]) {
			return false
		}
	}
	return true
}

func hashNormalized(rules []string) [32]byte {
	n := make([]string, len(rules))
	for i, r := range rules {
		n[i] = normalizeRule(r)
	}
	return hashRules(n)
}

// compareJumps reports the built-in chains whose owned jumps (rules whose
// target starts with OwnedPrefix) are not exactly the applied ones.
func compareJumps(table string, want []render.Jump, live map[string][]string) []drifted {
	wantBy := map[string]map[string]int{}
	for _, j := range want {
		if wantBy[j.Chain] == nil {
			wantBy[j.Chain] = map[string]int{}
		}
		wantBy[j.Chain][jumpKey(j.Chain, j.Rule)]++
	}
	chains := make([]string, 0, len(live))
	for c := range live {
		if isBuiltin(table, c) {
			chains = append(chains, c)
		}
	}
	sort.Strings(chains)
	var out []drifted
	for _, c := range chains {
		got := map[string]int{}
		for _, r := range live[c] {
			args := SplitRule(r)
			if strings.HasPrefix(RuleTarget(args), OwnedPrefix) {
				got[jumpKey(c, args)]++
			}
		}
		w := wantBy[c]
		same := len(got) == len(w)
		for k, n := range w {
			if got[k] != n {
				same = false
			}
		}
		if !same {
			out = append(out, drifted{table, c, "jumps into owned chains differ"})
		}
	}
	return out
}

// canaryChains returns the chains the canary reads this time: the top of the
// dispatch tree and the next window of the others.
func (s *Syncer) canaryChains(ts *tableState) []string {
	if ts.canary == nil {
		seen := map[string]bool{}
		var queue []string
		for _, j := range ts.jumps {
			if t := RuleTarget(j.Rule); ts.get(t) != nil && !seen[t] {
				seen[t] = true
				queue = append(queue, t)
			}
		}
		canary := []string{}
		for len(queue) > 0 && len(canary) < s.canaryTop {
			c := queue[0]
			queue = queue[1:]
			canary = append(canary, c)
			for _, r := range ts.get(c).rules {
				if t := RuleTarget(SplitRule(r)); ts.get(t) != nil && !seen[t] {
					seen[t] = true
					queue = append(queue, t)
				}
			}
		}
		inCanary := make(map[string]bool, len(canary))
		for _, c := range canary {
			inCanary[c] = true
		}
		rest := make([]string, 0, len(ts.names))
		for _, c := range ts.names {
			if !inCanary[c] {
				rest = append(rest, c)
			}
		}
		ts.canary, ts.rest = canary, rest
	}
	out := append([]string(nil), ts.canary...)
	n := min(s.canarySample, len(ts.rest))
	for i := 0; i < n; i++ {
		out = append(out, ts.rest[(ts.offset+i)%len(ts.rest)])
	}
	if len(ts.rest) > 0 {
		ts.offset = (ts.offset + n) % len(ts.rest)
	}
	return out
}

// canaryCheck reads the jumps' built-in chains and the canary chains of each
// table. A chain that cannot be read (deleted by hand) counts as drift.
func (s *Syncer) canaryCheck(ctx context.Context) []drifted {
	var out []drifted
	for _, name := range slices.Sorted(maps.Keys(s.state)) {
		ts := s.state[name]
		var list []string
		for _, j := range ts.jumps {
			if !slices.Contains(list, j.Chain) {
				list = append(list, j.Chain)
			}
		}
		nb := len(list)
		list = append(list, s.canaryChains(ts)...)
		if len(list) == 0 {
			continue
		}
		live, err := s.nf.ListRules(ctx, name, list)
		if err != nil {
			out = append(out, drifted{name, "*", err.Error()})
			continue
		}
		out = append(out, compareJumps(name, ts.jumps, live)...)
		for _, c := range list[nb:] {
			if !ts.get(c).matches(live[c]) {
				out = append(out, drifted{name, c, "rules differ"})
			}
		}
	}
	return out
}

// fullCheck compares every owned chain and jump of every table with
// iptables-save output, chain by chain as it is read.
func (s *Syncer) fullCheck(ctx context.Context) ([]drifted, error) {
	var out []drifted
	for _, name := range slices.Sorted(maps.Keys(s.state)) {
		ts := s.state[name]
		builtin := map[string][]string{}
		seen := make(map[string]bool, len(ts.names))
		err := scanSave(ctx, s.nf, name, func(string) {}, func(c string, r *savedRules) error {
			cs := ts.get(c)
			switch {
			case isBuiltin(name, c):
				builtin[c] = r.copies()
			case cs != nil:
				seen[c] = true
				if !cs.matchesHashed(r.hash(), r.strings()) {
					out = append(out, drifted{name, c, "rules differ"})
				}
			case strings.HasPrefix(c, OwnedPrefix):
				out = append(out, drifted{name, c, "stale owned chain"})
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		out = append(out, compareJumps(name, ts.jumps, builtin)...)
		for _, c := range ts.names {
			if !seen[c] {
				out = append(out, drifted{name, c, "missing"})
			}
		}
	}
	return out, nil
}

// adoptAfterRepair reads the chains that differed once more right after the
// re-apply. If one still differs, the kernel prints what weir wrote in a form
// normalizeRule does not know; its text is then taken as the applied form, so
// the Syncer does not re-apply on every resync.
func (s *Syncer) adoptAfterRepair(ctx context.Context, drift []drifted) {
	byTable := map[string][]string{}
	for _, d := range drift {
		if ts := s.state[d.table]; ts != nil && ts.get(d.chain) != nil {
			byTable[d.table] = append(byTable[d.table], d.chain)
		}
	}
	for table, chains := range byTable {
		if len(chains) > 64 {
			continue // a flushed table, not a normalization gap
		}
		live, err := s.nf.ListRules(ctx, table, chains)
		if err != nil {
			continue
		}
		for _, c := range chains {
			cs := s.state[table].get(c)
			if !cs.matches(live[c]) {
				s.log.Warn("kernel prints an owned chain differently from what was applied; adopting its form",
					"table", table, "chain", c)
				cs.live, cs.liveOK = hashRules(live[c]), true
			}
		}
	}
}
