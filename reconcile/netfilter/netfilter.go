// Package netfilter is weir's adapter to the kernel's packet filter: a small
// Netfilter interface over the iptables binaries (IPTables), the parsing and
// normalising of iptables-save output, the Syncer that applies a rendered
// Ruleset atomically and repairs drift, conntrack clean-up for UDP targets
// that left, and Cleanup, which removes everything weir owns. It never
// touches a chain or rule whose name or target lacks OwnedPrefix.
package netfilter

import (
	"context"
	"net/netip"
	"slices"

	"weir/spec"
)

// OwnedPrefix starts the name of every chain weir owns. weir never flushes,
// reorders or deletes a chain or rule whose name or target lacks it.
const OwnedPrefix = "WEIR-"

// Netfilter is the kernel boundary the Syncer and Cleanup program through. IPTables
// implements it over the iptables binaries and go-iptables; a stateful fake in
// weir's test-support package implements it in memory for tests. It is deliberately small: whole-table transactions go through
// Restore, reads through Save and ListRules, and only the few jump rules in
// built-in chains are edited one by one.
type Netfilter interface {
	// Restore applies iptables-restore text with --noflush: each *table … COMMIT
	// block is one atomic transaction, and nothing it does not name is touched.
	Restore(ctx context.Context, text []byte) error
	// Save returns the iptables-save text of one table.
	Save(ctx context.Context, table string) ([]byte, error)
	// ListRules returns, for each named chain of table, its rules as iptables -S
	// prints them without the "-A CHAIN " prefix, in order. It fails when a chain
	// does not exist. Implementations pick the cheapest way to read several
	// chains (one `iptables -S CHAIN` each on nft, one save on legacy, where any
	// read copies the whole table out of the kernel).
	ListRules(ctx context.Context, table string, chains []string) (map[string][]string, error)
	// EnsureJump inserts rule at the top of the built-in chain unless an equal
	// rule exists, and reports whether it inserted.
	EnsureJump(ctx context.Context, table, chain string, rule []string) (bool, error)
	// DeleteJump deletes rule from chain; a missing rule is not an error.
	DeleteJump(ctx context.Context, table, chain string, rule []string) error
	// DeleteConntrack deletes the conntrack entries of the given flows and
	// returns how many it deleted.
	DeleteConntrack(ctx context.Context, flows []ConntrackFlow) (uint, error)
}

// ConntrackFlow names conntrack entries to delete: connections whose original
// destination is Frontend and whose reply comes from Target, i.e. connections to
// a frontend that were DNATed to a target that left the balancer.
type ConntrackFlow struct {
	Protocol spec.Protocol
	Frontend netip.AddrPort
	Target   netip.AddrPort
}

// String renders the flow for logs, e.g. "udp 198.20.0.10:53->198.19.2.2:53".
func (f ConntrackFlow) String() string {
	return string(f.Protocol) + " " + f.Frontend.String() + "->" + f.Target.String()
}

// builtinChains lists the built-in chains of the tables weir may touch, in the
// order iptables-save prints them.
var builtinChains = map[string][]string{
	"filter": {"INPUT", "FORWARD", "OUTPUT"},
	"nat":    {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"},
	"mangle": {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"},
	"raw":    {"PREROUTING", "OUTPUT"},
}

// BuiltinChains returns, for each table weir may touch, its built-in chains
// in the order iptables-save prints them. The result is the caller's to
// modify.
func BuiltinChains() map[string][]string {
	out := make(map[string][]string, len(builtinChains))
	for t, chains := range builtinChains {
		out[t] = slices.Clone(chains)
	}
	return out
}

// isBuiltin reports whether chain is a built-in chain of table.
func isBuiltin(table, chain string) bool {
	return slices.Contains(builtinChains[table], chain)
}
