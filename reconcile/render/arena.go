package render

import (
	"crypto/sha256"
	"encoding/base32"
	"net/netip"
	"slices"
	"strconv"
	"unsafe"

	"weir/spec"
)

// arena is where chains are written. Rendering 10,000 balancers makes about
// 100,000 rules, so every chain name goes into one byte arena and every rule
// into another, and each arena turns into a single string at the end: the
// chain names and rules of the Ruleset are substrings of those two strings,
// which keeps allocations (and GC work) independent of the number of rules.
// Chains are declared by id; rules are written through a ruleWriter.
type arena struct {
	names  []byte     // chain names, back to back
	text   []byte     // rule texts, back to back
	start  int        // offset in text of the rule being written
	chains []chainRec // by chain id
	rules  []ruleRec  // in the order they were added
	key    []byte     // scratch for hash keys
	match  []byte     // scratch for a rule's arguments, see ruleWriter.cut
}

type span struct{ lo, hi int }

type chainRec struct {
	table int
	name  span // in arena.names
}

type ruleRec struct {
	chain int
	text  span // in arena.text
}

// outChain is one chain of the Ruleset being assembled.
type outChain struct {
	table int
	name  string
	rules []string
}

// presize gives the arena about the capacity nb balancers with nt targets
// need: growing a slice of many megabytes by appending copies it several
// times over.
func (a *arena) presize(nb, nt int) {
	// Measured on random plans: about 330 bytes of rules per balancer (source
	// match and dispatch tree) and 190 per target (choice and DNAT); at most
	// 3 chains per balancer (the WEIR-SEP chains are few and grow the
	// slices when there are any).
	chains := 4 + 3*nb
	a.text = make([]byte, 0, 256+340*nb+200*nt)
	a.names = make([]byte, 0, 25*chains)
	a.chains = make([]chainRec, 0, chains)
	a.rules = make([]ruleRec, 0, 2+4*nb+nt)
	if a.key == nil {
		a.key = make([]byte, 0, 128)
	}
}

// reset leaves the arena's memory to the strings made from it; the next
// chains need a presize.
func (a *arena) reset() {
	a.names, a.text, a.chains, a.rules = nil, nil, nil, nil
}

// namedChain declares a chain with a fixed name and returns its id.
func (a *arena) namedChain(table int, name string) int {
	lo := len(a.names)
	a.names = append(a.names, name...)
	a.chains = append(a.chains, chainRec{table: table, name: span{lo, len(a.names)}})
	return len(a.chains) - 1
}

// hashedChain declares the chain WEIR-<kind>-<16 base32 characters of
// sha256(key)> and returns its id: 25 characters, under iptables' limit of
// 28, with 80 bits of hash so that names do not collide in practice
// (kube-proxy's KUBE-SVC-… scheme). Declaring a chain never touches the
// rule being written.
func (a *arena) hashedChain(table int, kind string, key []byte) int {
	sum := sha256.Sum256(key)
	lo := len(a.names)
	a.names = append(a.names, "WEIR-"...)
	a.names = append(a.names, kind...)
	a.names = append(a.names, '-')
	a.names = slices.Grow(a.names, 16)
	n := len(a.names)
	a.names = a.names[:n+16]
	base32.StdEncoding.Encode(a.names[n:], sum[:10])
	a.chains = append(a.chains, chainRec{table: table, name: span{lo, len(a.names)}})
	return len(a.chains) - 1
}

// chainName is the name hashedChain gives; for tests and tools.
func chainName(kind, key string) string {
	var a arena
	return string(a.nameOf(a.hashedChain(0, kind, []byte(key))))
}

func (a *arena) nameOf(id int) []byte {
	c := a.chains[id]
	return a.names[c.name.lo:c.name.hi]
}

// outChains turns the arena's chain and rule records into chains whose names
// and rules are substrings of the arena, indexed like a.chains. The arena is
// never written again, so the strings may share its memory (as
// strings.Builder does) instead of copying it; all rules sit in one slice.
func (a *arena) outChains() []outChain {
	a.names, a.text = fit(a.names), fit(a.text)
	names, text := arenaString(a.names), arenaString(a.text)
	count := make([]int, len(a.chains))
	for _, rr := range a.rules {
		count[rr.chain]++
	}
	rules := make([]string, len(a.rules))
	out := make([]outChain, len(a.chains))
	next := 0
	for id, c := range a.chains {
		out[id] = outChain{table: c.table, name: names[c.name.lo:c.name.hi], rules: rules[next : next : next+count[id]]}
		next += count[id]
	}
	for _, rr := range a.rules {
		oc := &out[rr.chain]
		oc.rules = append(oc.rules, text[rr.text.lo:rr.text.hi])
	}
	return out
}

// fit returns b, or a copy of it without the spare capacity when that is
// more than an eighth of it: presize guesses for every layout, and the
// strings keep the whole array alive for as long as any rule is in use.
func fit(b []byte) []byte {
	if cap(b)-len(b) <= cap(b)/8 {
		return b
	}
	return append(make([]byte, 0, len(b)), b...)
}

// arenaString returns b as a string without copying; b must never be
// modified afterwards.
func arenaString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// ruleWriter writes one rule at the end of the arena's text, in the form
// iptables-save prints it. Each method appends one match or target, separated
// from what comes before by a blank, and returns the writer, so rule code
// reads like the rule it writes:
//
//	a.rule(svc).proto(p).comment(name).dnat(to)
//
// writes `-p tcp -m comment --comment NAME -j DNAT --to-destination TO` into
// chain svc. The methods that write the target (jump, jumpTo, dnat, to) add
// the rule to its chain.
type ruleWriter struct {
	a     *arena
	chain int
}

// rule starts a rule of chain c.
func (a *arena) rule(c int) ruleWriter {
	a.start = len(a.text)
	return ruleWriter{a, c}
}

// sep separates the next argument from the rule written so far.
func (w ruleWriter) sep() {
	if len(w.a.text) > w.a.start {
		w.a.text = append(w.a.text, ' ')
	}
}

// end adds the rule written to its chain.
func (w ruleWriter) end() {
	w.a.rules = append(w.a.rules, ruleRec{chain: w.chain, text: span{w.a.start, len(w.a.text)}})
}

// src appends `-s A/32` (IPv4) or `-s A/128` (IPv6).
func (w ruleWriter) src(a netip.Addr) ruleWriter {
	w.sep()
	w.a.text = append(w.a.text, "-s "...)
	w.a.text = appendPrefix(w.a.text, a, a.BitLen())
	return w
}

// dst appends `-d P/bits` for the first bits bits of the address a.
func (w ruleWriter) dst(a netip.Addr, bits int) ruleWriter {
	w.sep()
	w.a.text = append(w.a.text, "-d "...)
	w.a.text = appendPrefix(w.a.text, a, bits)
	return w
}

// proto appends `-p P`.
func (w ruleWriter) proto(p spec.Protocol) ruleWriter {
	w.sep()
	w.a.text = append(w.a.text, "-p "...)
	w.a.text = append(w.a.text, p...)
	return w
}

// dport appends `-p P -m P --dport lo[:hi]` for the ports whose first bits
// bits are those of prefix.
func (w ruleWriter) dport(p spec.Protocol, prefix uint32, bits int) ruleWriter {
	lo, hi := portRange(uint64(prefix), bits)
	w.proto(p)
	w.a.text = append(w.a.text, " -m "...)
	w.a.text = append(w.a.text, p...)
	w.a.text = append(w.a.text, " --dport "...)
	w.a.text = strconv.AppendUint(w.a.text, lo, 10)
	if hi != lo {
		w.a.text = append(w.a.text, ':')
		w.a.text = strconv.AppendUint(w.a.text, hi, 10)
	}
	return w
}

// match appends `-m m`, m being the module and its arguments.
func (w ruleWriter) match(m string) ruleWriter {
	w.sep()
	w.a.text = append(w.a.text, "-m "...)
	w.a.text = append(w.a.text, m...)
	return w
}

// comment appends `-m comment --comment c`.
func (w ruleWriter) comment(c string) ruleWriter {
	w.sep()
	w.a.text = append(w.a.text, "-m comment --comment "...)
	w.a.text = appendCommentArg(w.a.text, c)
	return w
}

// nth appends the statistic match that takes one packet in every.
func (w ruleWriter) nth(every int) ruleWriter {
	w.sep()
	w.a.text = append(w.a.text, "-m statistic --mode nth --every "...)
	w.a.text = strconv.AppendInt(w.a.text, int64(every), 10)
	w.a.text = append(w.a.text, " --packet 0"...)
	return w
}

// random appends the statistic match that takes a packet with probability
// p. Ten decimals put the rounding error (5e-11) below the kernel's own
// 31-bit fixed-point step (4.7e-10).
func (w ruleWriter) random(p float64) ruleWriter {
	w.sep()
	w.a.text = append(w.a.text, "-m statistic --mode random --probability "...)
	w.a.text = strconv.AppendFloat(w.a.text, p, 'f', 10, 64)
	return w
}

// saved appends arguments cut from an earlier rule.
func (w ruleWriter) saved(args []byte) ruleWriter {
	if len(args) > 0 {
		w.sep()
		w.a.text = append(w.a.text, args...)
	}
	return w
}

// cut removes the rule written so far and returns its arguments, for saved.
// The arena's text may move while rules are appended, so they are copied
// into scratch that stays valid until the next cut.
func (w ruleWriter) cut() []byte {
	w.a.match = append(w.a.match[:0], w.a.text[w.a.start:]...)
	w.a.text = w.a.text[:w.a.start]
	return w.a.match
}

// jump ends the rule with a jump to chain target.
func (w ruleWriter) jump(target int) {
	w.sep()
	w.a.text = append(w.a.text, "-j "...)
	w.a.text = append(w.a.text, w.a.nameOf(target)...)
	w.end()
}

// jumpTo ends the rule with a jump to the chain named target.
func (w ruleWriter) jumpTo(target string) {
	w.to(target)
}

// dnat ends the rule with DNAT to.
func (w ruleWriter) dnat(to netip.AddrPort) {
	w.sep()
	w.a.text = append(w.a.text, "-j DNAT --to-destination "...)
	w.a.text = to.AppendTo(w.a.text)
	w.end()
}

// to ends the rule with `-j target`, target being a target extension with
// its arguments.
func (w ruleWriter) to(target string) {
	w.sep()
	w.a.text = append(w.a.text, "-j "...)
	w.a.text = append(w.a.text, target...)
	w.end()
}

// appendPrefix appends the masked prefix a/bits as iptables-save (or
// ip6tables-save, which prints IPv6 addresses as inet_ntop does and Go
// too: RFC 5952's shortest form) prints it.
func appendPrefix(b []byte, a netip.Addr, bits int) []byte {
	if a.Is4() {
		return appendAddrBits(b, addrBits(a), bits)
	}
	p, _ := a.Prefix(bits)
	return p.AppendTo(b)
}

// appendAddrBits appends the masked IPv4 prefix a/bits.
func appendAddrBits(b []byte, a uint32, bits int) []byte {
	a &= uint32(prefixMask(bits, width4).lo)
	b = strconv.AppendUint(b, uint64(a>>24), 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, uint64(a>>16&0xff), 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, uint64(a>>8&0xff), 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, uint64(a&0xff), 10)
	b = append(b, '/')
	return strconv.AppendInt(b, int64(bits), 10)
}

// appendCommentArg appends a comment argument, quoted the way iptables-save
// quotes it when it holds anything but plain characters. Balancer names are
// DNS labels, so in practice it is never quoted.
func appendCommentArg(b []byte, c string) []byte {
	plain := c != ""
	for i := 0; i < len(c) && plain; i++ {
		switch c[i] {
		case ' ', '\t', '"', '\'', '\\':
			plain = false
		}
	}
	if plain {
		return append(b, c...)
	}
	b = append(b, '"')
	for i := 0; i < len(c); i++ {
		if c[i] == '"' || c[i] == '\\' {
			b = append(b, '\\')
		}
		b = append(b, c[i])
	}
	return append(b, '"')
}
