package render

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"weir/spec"
)

// dispatchEntry is one frontend the dispatch tree leads to.
type dispatchEntry struct {
	addr    key // the frontend address, of the tree's width
	proto   spec.Protocol
	port    uint16
	leaf    string       // chain to jump to
	srcs    []netip.Addr // sources the leaf rule matches, one rule each; nil: none
	out     *balancerOut // whose leaf it is, until the leaf is known
	comment string       // balancer name
}

// maxChainDepth is how deep a chain may be below a built-in chain. nf_tables
// (Debian's default iptables backend) refuses, with EMLINK "Too many links",
// any ruleset in which a base chain reaches more than 15 nested chains
// (NFT_JUMP_STACK_SIZE is 16, base chain included); the kernel checks it only
// when the jump from the built-in chain is added or the graph below it grows.
const maxChainDepth = 15

// treeDepth bounds the dispatch chains (WEIR-DST/PRO/PRT) on any path, so
// that WEIR-SERVICES, the tree, and a balancer's SRC → SVC → SEP stay
// within maxChainDepth with two levels to spare.
const treeDepth = maxChainDepth - 1 - 3 - 2

// dispatch fills root with the dispatch tree (or list) leading to entries.
//
// The tree is a path-compressed trie: first over the 32 (IPv4) or 128
// (IPv6) bits of the distinct frontend addresses, then, at an address with several frontends, over
// protocols, then over the 16 bits of their ports. A trie node is a chain
// whose rules each match one child's whole prefix (`-d p/len`, or `--dport
// lo:hi` for an aligned port range) and jump to it, so a packet evaluates a
// few rules per level and leaves the tree at the first level where it matches
// no frontend.
//
// Each node splits on the next s bits after its common prefix (at most 2^s
// rules). A binary trie (s = 1) would be the fewest rules per packet, but it
// is about log2(n) chains deep, and nf_tables allows only maxChainDepth; so s
// is the smallest stride whose trie fits in treeDepth levels: 1 for small
// sets, 2 or 3 for 10,000 random frontends (about 1.2–1.5·log2(n) rules per
// packet). If no stride fits, the last level lists its keys flat, so the
// depth bound always holds. Node chains are named after their prefix, so
// adding or removing a frontend changes only the chains on its path.
func (r *renderer) dispatch(table, root int, entries []dispatchEntry) {
	width := r.width()
	sortEntries(entries)
	// Two balancers on one address:port:protocol is a validation error; if
	// one slips through, the first by name wins in both dispatch modes.
	entries = slices.CompactFunc(entries, func(a, b dispatchEntry) bool {
		return a.addr == b.addr && a.proto == b.proto && a.port == b.port
	})
	if r.opts.Dispatch == LinearDispatch {
		for i := range entries {
			e := &entries[i]
			leafRules(r.a.rule(root).dst(keyAddr(e.addr, width), width).dport(e.proto, uint32(e.port), 16), e)
		}
		return
	}
	if len(entries) == 0 {
		return
	}
	keys := make([]key, 0, len(entries))
	starts := make([]int, 0, len(entries)+1)
	for i, e := range entries {
		if i == 0 || e.addr != entries[i-1].addr {
			keys = append(keys, e.addr)
			starts = append(starts, i)
		}
	}
	starts = append(starts, len(entries))
	t := &tree{a: &r.a, table: table, width: width, entries: entries, starts: starts}
	if len(keys) == 1 {
		t.addrLeaf(root, 0, 0)
		return
	}
	_, l := commonPrefix(keys[0], keys[len(keys)-1], width)
	// An address leaf may still need a protocol split and a port node
	// below it: keep two levels for them.
	stride := chooseStride(keys, width, l, treeDepth-2)
	t.addrNode(root, 0, keys, 0, len(keys), l, stride)
}

// sortEntries sorts entries by address, protocol, port and balancer name.
// Entries are large, so it sorts their packed keys with indexes and then
// permutes the entries once; names only break ties, which a valid spec
// never has.
func sortEntries(entries []dispatchEntry) {
	type sortKey struct {
		addr key
		k    uint64 // protocol rank and port
		i    int
	}
	keys := make([]sortKey, len(entries))
	for i, e := range entries {
		keys[i] = sortKey{e.addr, protoRank(e.proto)<<16 | uint64(e.port), i}
	}
	slices.SortFunc(keys, func(a, b sortKey) int {
		if c := compareKey(a.addr, b.addr); c != 0 {
			return c
		}
		if a.k != b.k {
			return cmp.Compare(a.k, b.k)
		}
		return strings.Compare(entries[a.i].comment, entries[b.i].comment)
	})
	sorted := make([]dispatchEntry, len(entries))
	for j, k := range keys {
		sorted[j] = entries[k.i]
	}
	copy(entries, sorted)
}

// protoRank orders the protocols of dispatch entries (always one of the
// three, see protocol) as their names sort.
func protoRank(p spec.Protocol) uint64 {
	switch p {
	case spec.SCTP:
		return 0
	case spec.TCP:
		return 1
	case spec.UDP:
		return 2
	}
	return 3
}

// tree builds the dispatch chains of one table.
type tree struct {
	a       *arena
	table   int
	width   int             // of the addresses: width4 or width6
	entries []dispatchEntry // sorted by address, protocol, port
	starts  []int           // starts[i]: index in entries of the i-th distinct address
}

// nodeChain declares the dispatch node chain of the given kind for the
// prefix bits of addr (and, for port nodes, the port range of proto).
func (t *tree) nodeChain(kind string, addr key, bits int, proto spec.Protocol, lo, hi uint64) int {
	k := append(t.a.key[:0], tableName(t.table)...)
	k = append(k, ' ')
	k = netip.PrefixFrom(keyAddr(addr, t.width), bits).AppendTo(k)
	if proto != "" {
		k = append(k, ' ')
		k = append(k, proto...)
		k = append(k, ' ')
		k = strconv.AppendUint(k, lo, 10)
		k = append(k, '-')
		k = strconv.AppendUint(k, hi, 10)
	}
	t.a.key = k
	return t.a.hashedChain(t.table, kind, k)
}

// addrNode fills chain c, depth chains below the root, with the rules that
// split the addresses keys[lo:hi], which share their first l bits, on the
// next stride bits.
func (t *tree) addrNode(c, depth int, keys []key, lo, hi, l, stride int) {
	for _, g := range groups(keys, lo, hi, t.width, l, stride) {
		if g.hi-g.lo == 1 {
			t.addrLeaf(c, depth, g.lo)
			continue
		}
		child := t.nodeChain(kindDST, g.prefix, g.bits, "", 0, 0)
		t.a.rule(c).dst(keyAddr(g.prefix, t.width), g.bits).comment(OwnerComment).jump(child)
		t.addrNode(child, depth+1, keys, g.lo, g.hi, g.bits, stride)
	}
}

// addrLeaf adds to chain c, depth chains below the root, the rule for the
// i-th distinct address: straight to the balancer when the address has one
// frontend, else into a protocol or port split.
func (t *tree) addrLeaf(c, depth, i int) {
	es := t.entries[t.starts[i]:t.starts[i+1]]
	addr := es[0].addr
	ip := keyAddr(addr, t.width)
	if es[0].proto == es[len(es)-1].proto {
		t.protoNode(t.a.rule(c).dst(ip, t.width), depth, es)
		return
	}
	split := t.nodeChain(kindPRO, addr, t.width, "", 0, 0)
	t.a.rule(c).dst(ip, t.width).comment(OwnerComment).jump(split)
	for len(es) > 0 {
		n := 1
		for n < len(es) && es[n].proto == es[0].proto {
			n++
		}
		t.protoNode(t.a.rule(split), depth+1, es[:n])
		es = es[n:]
	}
}

// protoNode completes w, a rule of a chain depth chains below the root, for
// the frontends es, which share address and protocol: to the balancer for
// one port, else into the root of their port trie.
func (t *tree) protoNode(w ruleWriter, depth int, es []dispatchEntry) {
	if len(es) == 1 {
		leafRules(w.dport(es[0].proto, uint32(es[0].port), 16), &es[0])
		return
	}
	keys := make([]key, len(es))
	for i, e := range es {
		keys[i] = key{lo: uint64(e.port)}
	}
	prefix, l := commonPrefix(keys[0], keys[len(keys)-1], widthPort)
	lo, hi := portRange(prefix.lo, l)
	child := t.nodeChain(kindPRT, es[0].addr, t.width, es[0].proto, lo, hi)
	w.dport(es[0].proto, uint32(prefix.lo), l).comment(OwnerComment).jump(child)
	stride := chooseStride(keys, widthPort, l, treeDepth-(depth+1))
	t.portNode(child, depth+1, es, keys, 0, len(keys), l, stride)
}

// portNode fills chain c (depth chains below the root) with the rules that
// split the ports keys[lo:hi] of the frontends es (one address and
// protocol), which share their first l bits, on the next stride bits.
func (t *tree) portNode(c, depth int, es []dispatchEntry, keys []key, lo, hi, l, stride int) {
	for _, g := range groups(keys, lo, hi, widthPort, l, stride) {
		w := t.a.rule(c)
		if g.hi-g.lo == 1 {
			e := es[g.lo]
			leafRules(w.dport(e.proto, uint32(e.port), 16), &e)
			continue
		}
		plo, phi := portRange(g.prefix.lo, g.bits)
		child := t.nodeChain(kindPRT, es[0].addr, t.width, es[0].proto, plo, phi)
		w.dport(es[0].proto, uint32(g.prefix.lo), g.bits).comment(OwnerComment).jump(child)
		t.portNode(child, depth+1, es, keys, g.lo, g.hi, g.bits, stride)
	}
}

// leafRules completes w, the dispatch leaf rule of entry e: one jump to
// e.leaf, or, when the leaf rule matches the sources itself, one such rule
// per source guest with `-s G/32` in front of the match written so far
// (iptables-save prints -s first).
func leafRules(w ruleWriter, e *dispatchEntry) {
	if len(e.srcs) == 0 {
		w.comment(e.comment).jumpTo(e.leaf)
		return
	}
	match := w.cut()
	for _, a := range e.srcs {
		w.a.rule(w.chain).src(a).saved(match).comment(e.comment).jumpTo(e.leaf)
	}
}

// trieGroup is one child of a trie node: keys[lo:hi], which share their first
// bits bits, equal to those of prefix.
type trieGroup struct {
	lo, hi int
	prefix key
	bits   int
}

// groups splits the sorted, distinct keys[lo:hi] (width bits wide, sharing
// their first l bits) by their next stride bits. Each group carries its own
// longest common prefix (path compression).
func groups(keys []key, lo, hi, width, l, stride int) []trieGroup {
	shift := max(width-l-stride, 0)
	out := make([]trieGroup, 0, min(hi-lo, 1<<min(stride, 8)))
	for i := lo; i < hi; {
		j := i + 1
		for j < hi && keys[j].shr(shift) == keys[i].shr(shift) {
			j++
		}
		p, b := commonPrefix(keys[i], keys[j-1], width)
		out = append(out, trieGroup{lo: i, hi: j, prefix: p, bits: b})
		i = j
	}
	return out
}

// chooseStride returns the smallest stride whose trie over keys (sorted,
// distinct, at least two, sharing their first l bits) needs at most budget
// chains below the node that holds them. The stride that splits the rest of
// the bits at once needs none, so there always is one.
func chooseStride(keys []key, width, l, budget int) int {
	for s := 1; s < width-l; s++ {
		if extraDepth(keys, 0, len(keys), width, l, s, budget) <= budget {
			return s
		}
	}
	return width - l
}

// extraDepth is the number of chains below a node over keys[lo:hi] with the
// given stride, or more than budget once it is known to exceed it.
func extraDepth(keys []key, lo, hi, width, l, stride, budget int) int {
	if budget < 0 {
		return 1
	}
	d := 0
	shift := max(width-l-stride, 0)
	for i := lo; i < hi; {
		j := i + 1
		for j < hi && keys[j].shr(shift) == keys[i].shr(shift) {
			j++
		}
		if j-i > 1 {
			_, b := commonPrefix(keys[i], keys[j-1], width)
			if e := 1 + extraDepth(keys, i, j, width, b, stride, budget-1); e > d {
				d = e
				if d > budget {
					return d
				}
			}
		}
		i = j
	}
	return d
}

// portRange is the port range of a prefix of a 16-bit port.
func portRange(prefix uint64, bits int) (lo, hi uint64) {
	return prefix, prefix | (uint64(1)<<(16-bits) - 1)
}
