package netfilter

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"iter"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"unsafe"
)

// savedTable is one table of iptables-save output.
type savedTable struct {
	Chains []string            // every chain in the order printed (built-in first)
	Rules  map[string][]string // chain → rules without "-A CHAIN "
}

// ownedJumps yields each rule of a built-in chain of the table that jumps or
// goes to an owned chain, with its chain, in the order printed.
func (st *savedTable) ownedJumps(table string) iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		for _, c := range st.Chains {
			if !isBuiltin(table, c) {
				continue
			}
			for _, r := range st.Rules[c] {
				if strings.HasPrefix(RuleTarget(SplitRule(r)), OwnedPrefix) && !yield(c, r) {
					return
				}
			}
		}
	}
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

// readTable reads one table through nf.Save; a table the kernel does not
// have reads as empty.
func readTable(ctx context.Context, nf Netfilter, table string) (*savedTable, error) {
	text, err := nf.Save(ctx, table)
	if err != nil {
		return nil, err
	}
	saved, err := parseSave(text)
	if err != nil {
		return nil, err
	}
	if live := saved[table]; live != nil {
		return live, nil
	}
	return &savedTable{Rules: map[string][]string{}}, nil
}

// SplitRule splits a rule into arguments as iptables-restore does: on blanks,
// with double-quoted strings kept whole and unquoted.
func SplitRule(rule string) []string {
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

// JoinRule is the inverse of SplitRule: it quotes arguments holding blanks or
// quotes the way iptables-save does.
func JoinRule(args []string) string {
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

// RuleTarget returns the chain or target a rule (as SplitRule returns its
// arguments) jumps or goes to, or "".
func RuleTarget(args []string) string {
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
	args := SplitRule(rule)
	// Made here so that it need not escape: drift checks normalize every
	// rule of a chain.
	header := map[string][]string{}
	rest := splitHeader(args, header)
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
	return JoinRule(out)
}

// splitHeader adds to header the IP header matches of a rule's arguments,
// by short option with their (normalized) values and a leading "!" when
// negated, and returns the other arguments, normalized too.
func splitHeader(args []string, header map[string][]string) []string {
	rest := make([]string, 0, len(args))
	proto := ""
	for i := 0; i < len(args); i++ {
		a, neg := headerOption(args, &i)
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
					v = NormalizePrefix(v)
				case "-p":
					v = strings.ToLower(v)
					proto = v
				}
				val = append(val, v)
			}
			header[a] = val
			continue
		}
		var skip int
		rest, skip = appendMatch(rest, a, args, i, proto)
		i += skip
	}
	return rest
}

// headerOption returns args[*i] with a long option spelled short and, when
// it is "!" before a header option, that option and true, moving *i past the
// "!".
func headerOption(args []string, i *int) (string, bool) {
	a := args[*i]
	if l, ok := longHeader[a]; ok {
		a = l
	}
	if a == "!" && *i+1 < len(args) {
		next := args[*i+1]
		if l, ok := longHeader[next]; ok {
			next = l
		}
		if isHeaderOpt(next) {
			*i++
			return next, true
		}
	}
	return a, false
}

// appendMatch appends to rest the normalized form of a, the non-header
// argument args[i] with a long option spelled short, and returns how many
// of the arguments after it that consumed. It drops the implicit "-m tcp"
// (udp, sctp) of the rule's protocol and a port match over the full range,
// and quantizes a statistic probability.
func appendMatch(rest []string, a string, args []string, i int, proto string) ([]string, int) {
	if i+1 >= len(args) {
		return append(rest, a), 0
	}
	switch next := args[i+1]; a {
	case "-m":
		if proto != "" && strings.EqualFold(next, proto) {
			return rest, 1
		}
	case "--dport", "--sport", "--destination-port", "--source-port":
		// The full range matches every port; the kernel stores it as
		// no port match and iptables-save prints nothing.
		if next == "0:65535" || next == ":" {
			return rest, 1
		}
	case "--probability":
		return append(rest, a, NormalizeProbability(next)), 1
	}
	return append(rest, a), 0
}

func isHeaderOpt(a string) bool {
	for _, h := range headerOrder {
		if a == h {
			return true
		}
	}
	return false
}

// NormalizePrefix turns "198.19.1.2" into "198.19.1.2/32" and masks prefixes,
// as the kernel stores an address and a mask and iptables-save prints them.
// Anything else is returned as it is.
func NormalizePrefix(v string) string {
	if p, err := netip.ParsePrefix(v); err == nil {
		return p.Masked().String()
	}
	if a, err := netip.ParseAddr(v); err == nil {
		return netip.PrefixFrom(a, a.BitLen()).String()
	}
	return v
}

// NormalizeProbability quantizes a statistic probability as libxt_statistic
// does (lround(p·2³¹)) and prints it as iptables-save does (%.11f of the
// stored value). Anything but a number is returned as it is.
func NormalizeProbability(v string) string {
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
	text   string   // the output, never written again: rules are substrings of it
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
	ix := &savedIndex{text: bytesString(text), index: map[string]*savedChain{}}
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
	for l := range strings.SplitSeq(ix.text[c.start:c.end], "\n") {
		if r, ok := strings.CutPrefix(l, prefix); ok {
			out = append(out, r)
		}
	}
	return out, true
}

// bytesString returns b as a string without copying; b must never be
// modified afterwards, as the output of a command that has ended is not.
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
