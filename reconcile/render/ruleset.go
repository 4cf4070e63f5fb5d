package render

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"weir/spec"
)

// Ruleset is the desired owned netfilter state of one host in one address
// family: per table, the
// WEIR- chains with their rules, and the jump rules into them from built-in
// chains. Render builds it; a Syncer applies it. Everything in it is sorted, so
// rendering twice gives the same bytes.
type Ruleset struct {
	// Family is the address family of every rule: iptables (IPv4) or
	// ip6tables (IPv6) restores it.
	Family spec.Family
	Tables []Table // sorted by name ("filter" before "nat")
	// Flows lists, per balancer this host sets, the frontend and its current
	// targets; the Syncer uses it to delete conntrack entries of UDP targets
	// that left a balancer.
	Flows []Flow
}

// Rulesets is one host's owned netfilter state in each address family,
// indexed by spec.Family: rs[spec.IPv4] for iptables, rs[spec.IPv6] for
// ip6tables. RenderAll builds it.
type Rulesets [2]*Ruleset

// Balancers returns the number of balancers the host sets, in both families.
func (rs Rulesets) Balancers() int { return rs[spec.IPv4].Balancers() + rs[spec.IPv6].Balancers() }

// Rules returns the number of rules in the owned chains of both families.
func (rs Rulesets) Rules() int { return rs[spec.IPv4].Rules() + rs[spec.IPv6].Rules() }

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

// Balancers returns the number of balancers the ruleset sets on its host;
// 0 for a nil Ruleset.
func (r *Ruleset) Balancers() int {
	if r == nil {
		return 0
	}
	return len(r.Flows)
}

// Rules returns the number of rules in the ruleset's owned chains (the jumps
// from built-in chains are not counted).
func (r *Ruleset) Rules() int {
	if r == nil {
		return 0
	}
	n := 0
	for _, t := range r.Tables {
		for _, c := range t.Chains {
			n += len(c.Rules)
		}
	}
	return n
}

// SaveForm returns rule as iptables-save prints it back once applied. Render
// writes every rule in saved form except random-mode probabilities: the
// kernel keeps them as round(p·2^31) and iptables-save prints that value with
// 11 decimals, so 0.3333333333 comes back as 0.33333333349. Compare live
// rules with SaveForm of the desired ones.
func SaveForm(rule string) string {
	const flag = "--probability "
	i := strings.Index(rule, flag)
	if i < 0 {
		return rule
	}
	start := i + len(flag)
	end := start + strings.IndexByte(rule[start:]+" ", ' ')
	p, err := strconv.ParseFloat(rule[start:end], 64)
	if err != nil {
		return rule
	}
	q := math.Round(p*0x80000000) / 0x80000000
	return rule[:start] + strconv.FormatFloat(q, 'f', 11, 64) + rule[end:]
}

// SavedAs reports whether saved is rule as iptables-save prints it back:
// SaveForm(rule) == saved, without building SaveForm's string.
func SavedAs(rule, saved string) bool {
	const flag = "--probability "
	i := strings.Index(rule, flag)
	if i < 0 {
		return rule == saved
	}
	start := i + len(flag)
	end := start + strings.IndexByte(rule[start:]+" ", ' ')
	if len(saved) < start || saved[:start] != rule[:start] {
		return false
	}
	send := start + strings.IndexByte(saved[start:]+" ", ' ')
	if saved[send:] != rule[end:] {
		return false
	}
	p, err := strconv.ParseFloat(rule[start:end], 64)
	if err != nil {
		return rule == saved
	}
	q := math.Round(p*0x80000000) / 0x80000000
	var buf [32]byte
	return string(strconv.AppendFloat(buf[:0], q, 'f', 11, 64)) == saved[start:send]
}

// assemble turns the arena and the balancers' chains into the Ruleset's
// chains, sorted by name.
func (r *renderer) assemble(rs *Ruleset) {
	own := r.a.outChains()
	// Comparing 100,000 chain names as strings is slow. Every name starts
	// with "WEIR-" and is ASCII (top bit clear), so the table in the top bit
	// and the next 16 bytes packed big-endian into two words order the
	// chains as (table, name) do; the rare names equal in those bytes fall
	// back to comparing the rest.
	type sortKey struct {
		hi, lo uint64
		c      *outChain
	}
	n := len(own)
	for _, o := range r.bal.outs {
		n += len(o.chains)
	}
	keys := make([]sortKey, 0, n)
	add := func(c *outChain) {
		var buf [16]byte
		copy(buf[:], c.name[len("WEIR-"):])
		keys = append(keys, sortKey{
			hi: uint64(c.table)<<63 | binary.BigEndian.Uint64(buf[:8]),
			lo: binary.BigEndian.Uint64(buf[8:]),
			c:  c,
		})
	}
	for i := range own {
		add(&own[i])
	}
	for _, o := range r.bal.outs {
		for i := range o.chains {
			add(&o.chains[i])
		}
	}
	slices.SortFunc(keys, func(a, b sortKey) int {
		if a.hi != b.hi {
			return cmp.Compare(a.hi, b.hi)
		}
		if a.lo != b.lo {
			return cmp.Compare(a.lo, b.lo)
		}
		return strings.Compare(a.c.name, b.c.name)
	})
	perTable := [2][]Chain{make([]Chain, 0, 1), make([]Chain, 0, len(keys))}
	for _, k := range keys {
		c := k.c
		perTable[c.table] = append(perTable[c.table], Chain{Name: c.name, Rules: c.rules[:len(c.rules):len(c.rules)]})
	}
	rs.Tables[0].Chains, rs.Tables[1].Chains = perTable[tableFilter], perTable[tableNat]
}
