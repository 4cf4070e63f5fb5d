package netfilter

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"weir/reconcile/render"
)

// ownedTable is the owned part of one table in saved form: what `weir
// diff` compares and the agent's GET /rules serves.
type ownedTable struct {
	chains map[string][]string // owned chain → its rules, normalized
	jumps  map[string][]string // built-in chain → its rules into owned chains, normalized
}

func newOwnedTable() *ownedTable {
	return &ownedTable{chains: map[string][]string{}, jumps: map[string][]string{}}
}

// DesiredText renders the owned netfilter state rs describes in the form
// LiveText reads it back from the kernel: per table, the owned chains, the
// jumps into them from the built-in chains (as -A lines) and the owned
// chains' rules, every rule normalized as the drift check compares them.
// When the kernel holds rs, DesiredText(rs) equals LiveText.
func DesiredText(rs *render.Ruleset) []byte {
	tables := map[string]*ownedTable{}
	for _, t := range rs.Tables {
		ot := newOwnedTable()
		for _, c := range t.Chains {
			ot.chains[c.Name] = normalizeAll(c.Rules)
		}
		for _, j := range t.Jumps {
			ot.jumps[j.Chain] = append(ot.jumps[j.Chain], normalizeRule(JoinRule(j.Rule)))
		}
		tables[t.Name] = ot
	}
	return formatOwned(tables)
}

// LiveText reads the owned part of nf's tables (every table Cleanup
// searches) in the form DesiredText writes: the chains whose name starts
// with OwnedPrefix, and the rules of built-in chains that jump or go to one.
func LiveText(ctx context.Context, nf Netfilter) ([]byte, error) {
	tables := map[string]*ownedTable{}
	for _, table := range cleanupTables {
		ot, err := readOwned(ctx, nf, table)
		if err != nil {
			return nil, fmt.Errorf("reading table %s: %w", table, err)
		}
		if len(ot.chains)+len(ot.jumps) > 0 {
			tables[table] = ot
		}
	}
	return formatOwned(tables), nil
}

// readOwned reads one table's owned chains and the rules of its built-in
// chains that jump or go to one, chain by chain as iptables-save prints
// them, so that only the owned part is held.
func readOwned(ctx context.Context, nf Netfilter, table string) (*ownedTable, error) {
	ot := newOwnedTable()
	st := &savedTable{Rules: map[string][]string{}}
	err := scanSave(ctx, nf, table, func(c string) { st.Chains = append(st.Chains, c) },
		func(c string, r *savedRules) error {
			switch {
			case strings.HasPrefix(c, OwnedPrefix):
				ot.chains[c] = normalizeAll(r.copies())
			case isBuiltin(table, c):
				st.Rules[c] = r.copies()
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	for chain, rule := range st.ownedJumps(table) {
		ot.jumps[chain] = append(ot.jumps[chain], normalizeRule(rule))
	}
	return ot, nil
}

func normalizeAll(rules []string) []string {
	out := make([]string, len(rules))
	for i, r := range rules {
		out[i] = normalizeRule(r)
	}
	return out
}

// formatOwned writes tables in iptables-save syntax, in an order that does
// not depend on the order the kernel keeps them in: tables and owned chains
// by name, built-in chains in iptables-save's order with their jumps sorted
// (weir inserts each jump on its own, so their order carries no meaning),
// and each owned chain's rules in order.
func formatOwned(tables map[string]*ownedTable) []byte {
	var b bytes.Buffer
	for _, name := range slices.Sorted(maps.Keys(tables)) {
		t := tables[name]
		b.WriteString("*" + name + "\n")
		chains := slices.Sorted(maps.Keys(t.chains))
		for _, c := range chains {
			b.WriteString(":" + c + " - [0:0]\n")
		}
		for _, bc := range builtinChains[name] {
			for _, r := range slices.Sorted(slices.Values(t.jumps[bc])) {
				b.WriteString("-A " + bc + " " + r + "\n")
			}
		}
		for _, c := range chains {
			for _, r := range t.chains[c] {
				b.WriteString("-A " + c + " " + r + "\n")
			}
		}
		b.WriteString("COMMIT\n")
	}
	return b.Bytes()
}
