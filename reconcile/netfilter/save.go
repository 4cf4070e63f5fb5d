package netfilter

import (
	"context"
	"iter"
	"math"
	"net/netip"
	"strconv"
	"strings"
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

// readTable reads the chains of one table through nf, with the rules of
// its built-in chains only (the owned chains' rules are not needed to
// replace them, and not holding them keeps a re-apply of a large table
// small); a table the kernel does not have reads as empty.
func readTable(ctx context.Context, nf Netfilter, table string) (*savedTable, error) {
	st := &savedTable{Rules: map[string][]string{}}
	err := scanSave(ctx, nf, table, func(c string) { st.Chains = append(st.Chains, c) },
		func(c string, r *savedRules) error {
			if isBuiltin(table, c) {
				st.Rules[c] = r.copies()
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	return st, nil
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
