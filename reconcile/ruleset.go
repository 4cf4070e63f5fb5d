package reconcile

import (
	"bytes"
	"net/netip"

	"weir/spec"
)

// Ruleset is the desired owned netfilter state of one host: per table, the
// WEIR- chains with their rules, and the jump rules into them from built-in
// chains. Render builds it; a Syncer applies it. Everything in it is sorted, so
// rendering twice gives the same bytes.
type Ruleset struct {
	Tables []Table // sorted by name ("filter" before "nat")
	// Flows lists, per balancer this host sets, the frontend and its current
	// targets; the Syncer uses it to delete conntrack entries of UDP targets
	// that left a balancer.
	Flows []Flow
}

// Table is the owned part of one iptables table.
type Table struct {
	Name   string  // "nat" or "filter"
	Chains []Chain // every owned chain of the table, sorted by name
	Jumps  []Jump  // jumps from built-in chains into owned chains
}

// Chain is one owned chain and its rules in order.
type Chain struct {
	Name string // starts with "WEIR-", at most 28 characters
	// Rules are the rule specifications as iptables-restore takes them after
	// "-A <Name> ", e.g. `-p tcp -m comment --comment frontend-orders -j WEIR-SVC-...`.
	Rules []string
}

// Jump is a rule in a built-in chain that enters an owned chain.
type Jump struct {
	Chain string   // built-in chain, e.g. "PREROUTING"
	Rule  []string // rule arguments, e.g. {"-m", "comment", "--comment", "weir", "-j", "WEIR-SERVICES"}
}

// Flow is one balancer's frontend and targets as applied on this host.
type Flow struct {
	Balancer string
	Frontend spec.Frontend
	Targets  []netip.AddrPort
}

// Bytes renders the whole ruleset as iptables-restore --noflush input: each
// table declares its owned chains (which flushes them) and appends their rules,
// so the owned chains of a table are replaced in one transaction. Jumps are not
// part of the text; they are ensured separately.
func (r *Ruleset) Bytes() []byte {
	var b bytes.Buffer
	for _, t := range r.Tables {
		b.WriteString("*" + t.Name + "\n")
		for _, c := range t.Chains {
			b.WriteString(":" + c.Name + " - [0:0]\n")
		}
		for _, c := range t.Chains {
			for _, rule := range c.Rules {
				b.WriteString("-A " + c.Name + " " + rule + "\n")
			}
		}
		b.WriteString("COMMIT\n")
	}
	return b.Bytes()
}
