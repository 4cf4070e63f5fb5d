package reconcile

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"

	"weir/spec"
)

// OwnedPrefix starts the name of every chain weir owns. weir never flushes,
// reorders or deletes a chain or rule whose name or target lacks it.
const OwnedPrefix = "WEIR-"

// Netfilter is the kernel boundary the Syncer and Cleanup program through. IPTables
// implements it over the iptables binaries and go-iptables; Fake implements it in
// memory for tests. It is deliberately small: whole-table transactions go through
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

// isBuiltin reports whether chain is a built-in chain of table.
func isBuiltin(table, chain string) bool {
	for _, c := range builtinChains[table] {
		if c == chain {
			return true
		}
	}
	return false
}

// savedTable is one table of iptables-save output.
type savedTable struct {
	Chains []string            // every chain in the order printed (built-in first)
	Rules  map[string][]string // chain → rules without "-A CHAIN "
}

// parseSave parses iptables-save text and returns its tables by name.
func parseSave(text []byte) (map[string]*savedTable, error) {
	tables := map[string]*savedTable{}
	var cur *savedTable
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		switch {
		case line == "" || line[0] == '#':
		case line[0] == '*':
			cur = &savedTable{Rules: map[string][]string{}}
			tables[line[1:]] = cur
		case line == "COMMIT":
			cur = nil
		case cur == nil:
			return nil, fmt.Errorf("parsing iptables-save line %d %q: outside a table", n, line)
		case line[0] == ':':
			name, _, _ := strings.Cut(line[1:], " ")
			cur.Chains = append(cur.Chains, name)
			if cur.Rules[name] == nil {
				cur.Rules[name] = []string{}
			}
		case strings.HasPrefix(line, "-A "):
			chain, rule, _ := strings.Cut(line[3:], " ")
			cur.Rules[chain] = append(cur.Rules[chain], rule)
		default:
			return nil, fmt.Errorf("parsing iptables-save line %d %q: unknown line", n, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading iptables-save output: %w", err)
	}
	return tables, nil
}

// splitRule splits a rule into arguments as iptables-restore does: on blanks,
// with double-quoted strings kept whole and unquoted.
func splitRule(rule string) []string {
	var args []string
	var cur strings.Builder
	inQuote, have := false, false
	for i := 0; i < len(rule); i++ {
		c := rule[i]
		switch {
		case c == '\\' && inQuote && i+1 < len(rule) && (rule[i+1] == '"' || rule[i+1] == '\\'):
			i++
			cur.WriteByte(rule[i])
		case c == '"':
			inQuote = !inQuote
			have = true
		case (c == ' ' || c == '\t') && !inQuote:
			if have {
				args = append(args, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteByte(c)
			have = true
		}
	}
	if have {
		args = append(args, cur.String())
	}
	return args
}

// joinRule is the inverse of splitRule: it quotes arguments holding blanks or
// quotes the way iptables-save does.
func joinRule(args []string) string {
	var b strings.Builder
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		if a == "" || strings.ContainsAny(a, " \t\"\\'") {
			b.WriteByte('"')
			b.WriteString(strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(a))
			b.WriteByte('"')
			continue
		}
		b.WriteString(a)
	}
	return b.String()
}

// ruleTarget returns the chain or target a rule jumps or goes to, or "".
func ruleTarget(args []string) string {
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "-j", "--jump", "-g", "--goto":
			return args[i+1]
		}
	}
	return ""
}

// headerOrder is the order in which iptables-save prints the IP header matches,
// before every extension match whatever order they were given in.
var headerOrder = []string{"-s", "-d", "-i", "-o", "-p", "-f"}

var longHeader = map[string]string{
	"--source": "-s", "--src": "-s", "--destination": "-d", "--dst": "-d",
	"--in-interface": "-i", "--out-interface": "-o", "--protocol": "-p",
	"--fragment": "-f", "--jump": "-j", "--goto": "-g", "--match": "-m",
}

// normalizeRule rewrites a rule into the form iptables-save prints it in, so
// that rendered rules and live rules compare equal when the kernel holds what
// was rendered. It covers the differences weir's rules meet: addresses gain
// "/32", the IP header matches move first in a fixed order, the implicit
// "-m tcp" (udp, sctp) of a port match is dropped on both sides, as is a
// port match over the full range 0:65535, and a
// statistic probability is quantized to the kernel's 31-bit fixed point and
// printed with 11 decimals. It is not a general iptables parser; where it
// falls short the Syncer adopts the kernel's form after one re-apply.
func normalizeRule(rule string) string {
	args := splitRule(rule)
	header := map[string][]string{}
	rest := make([]string, 0, len(args))
	proto := ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		if l, ok := longHeader[a]; ok {
			a = l
		}
		neg := false
		if a == "!" && i+1 < len(args) {
			next := args[i+1]
			if l, ok := longHeader[next]; ok {
				next = l
			}
			if isHeaderOpt(next) {
				neg = true
				i++
				a = next
			}
		}
		if isHeaderOpt(a) {
			var val []string
			if neg {
				val = append(val, "!")
			}
			if a != "-f" && i+1 < len(args) {
				i++
				v := args[i]
				switch a {
				case "-s", "-d":
					v = normalizePrefix(v)
				case "-p":
					v = strings.ToLower(v)
					proto = v
				}
				val = append(val, v)
			}
			header[a] = val
			continue
		}
		switch a {
		case "-m":
			if i+1 < len(args) && proto != "" && strings.EqualFold(args[i+1], proto) {
				i++
				continue
			}
		case "--dport", "--sport", "--destination-port", "--source-port":
			// The full range matches every port; the kernel stores it as
			// no port match and iptables-save prints nothing.
			if i+1 < len(args) && (args[i+1] == "0:65535" || args[i+1] == ":") {
				i++
				continue
			}
		case "--probability":
			if i+1 < len(args) {
				rest = append(rest, a, normalizeProbability(args[i+1]))
				i++
				continue
			}
		}
		rest = append(rest, a)
	}
	out := make([]string, 0, len(args))
	for _, h := range headerOrder {
		if v, ok := header[h]; ok {
			if len(v) > 0 && v[0] == "!" {
				out = append(out, "!", h)
				out = append(out, v[1:]...)
			} else {
				out = append(out, h)
				out = append(out, v...)
			}
		}
	}
	out = append(out, rest...)
	return joinRule(out)
}

func isHeaderOpt(a string) bool {
	for _, h := range headerOrder {
		if a == h {
			return true
		}
	}
	return false
}

// normalizePrefix turns "198.19.1.2" into "198.19.1.2/32" and masks prefixes,
// as the kernel stores an address and a mask.
func normalizePrefix(v string) string {
	if p, err := netip.ParsePrefix(v); err == nil {
		return p.Masked().String()
	}
	if a, err := netip.ParseAddr(v); err == nil {
		return netip.PrefixFrom(a, a.BitLen()).String()
	}
	return v
}

// normalizeProbability quantizes p as libxt_statistic does (lround(p·2³¹)) and
// prints it as iptables-save does (%.11f of the stored value).
func normalizeProbability(v string) string {
	p, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return v
	}
	q := math.Round(p * 0x80000000)
	return strconv.FormatFloat(q/0x80000000, 'f', 11, 64)
}

// savedIndex indexes one table of iptables-save output without copying its
// rules: for each chain, the hash of its rule text (as hashRules computes it)
// and where its rule lines are. A drift check of a large table hashes every
// chain but only needs the rules of chains whose hash it does not recognize.
type savedIndex struct {
	text   []byte
	chains []string // in the order printed
	index  map[string]*savedChain
}

type savedChain struct {
	hash       [32]byte
	start, end int // byte range of the chain's "-A" lines in text
}

// indexSave indexes the first table of text. It fails if a chain's rules are
// not contiguous, which iptables-save never prints.
func indexSave(text []byte, scratch *[]byte) (*savedIndex, error) {
	ix := &savedIndex{text: text, index: map[string]*savedChain{}}
	var cur *savedChain
	var curName string
	buf := (*scratch)[:0]
	finish := func() {
		if cur != nil {
			cur.hash = sha256.Sum256(buf)
			buf = buf[:0]
			cur = nil
		}
	}
	for off := 0; off < len(text); {
		end := bytes.IndexByte(text[off:], '\n')
		if end < 0 {
			end = len(text)
		} else {
			end += off
		}
		line := text[off:end]
		switch {
		case len(line) == 0 || line[0] == '#' || line[0] == '*':
		case line[0] == ':':
			name, _, _ := bytes.Cut(line[1:], []byte(" "))
			n := string(name)
			ix.chains = append(ix.chains, n)
			if ix.index[n] == nil {
				ix.index[n] = &savedChain{hash: sha256.Sum256(nil), start: off, end: off}
			}
		case bytes.HasPrefix(line, []byte("-A ")):
			name, rule, _ := bytes.Cut(line[3:], []byte(" "))
			if cur == nil || string(name) != curName {
				finish()
				c := ix.index[string(name)]
				if c == nil || c.end != c.start {
					return nil, fmt.Errorf("indexing iptables-save output: rules of chain %s not contiguous", name)
				}
				cur, curName = c, string(name)
				cur.start = off
			}
			buf = append(append(buf, rule...), '\n')
			cur.end = end
		case bytes.Equal(line, []byte("COMMIT")):
			finish()
			*scratch = buf
			return ix, nil
		}
		off = end + 1
	}
	finish()
	*scratch = buf
	return ix, nil
}

// rules returns the rules of chain without the "-A CHAIN " prefix, and
// whether the chain exists.
func (ix *savedIndex) rules(chain string) ([]string, bool) {
	c, ok := ix.index[chain]
	if !ok {
		return nil, false
	}
	out := []string{}
	prefix := "-A " + chain + " "
	for _, l := range strings.Split(string(ix.text[c.start:c.end]), "\n") {
		if r, ok := strings.CutPrefix(l, prefix); ok {
			out = append(out, r)
		}
	}
	return out, true
}
