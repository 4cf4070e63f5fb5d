package netfilter

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strings"

	goipt "github.com/coreos/go-iptables/iptables"

	"weir/reconcile/render"
)

// Internals the external tests (package netfilter_test) use.

// NormalizeRule is normalizeRule.
var NormalizeRule = normalizeRule

// ParseCounters is parseCounters.
var ParseCounters = parseCounters

// SavedTable parses iptables-save text and returns the chains of table in
// the order printed and their rules.
func SavedTable(text []byte, table string) ([]string, map[string][]string, error) {
	saved, err := parseSave(text)
	if err != nil || saved[table] == nil {
		return nil, nil, err
	}
	return saved[table].Chains, saved[table].Rules, nil
}

// JumpDrift is compareJumps, as strings.
func JumpDrift(table string, want []render.Jump, live map[string][]string) []string {
	var out []string
	for _, d := range compareJumps(table, want, live) {
		out = append(out, d.String())
	}
	return out
}

// RestoreWritten runs one restore of the chains of rs named in written
// ("table/chain"), declaring and filling them as a partial apply does, and
// returns the number of rules written.
func RestoreWritten(ctx context.Context, nf Netfilter, rs *render.Ruleset, written []string) (int, error) {
	var txns []*txn
	for _, t := range rs.Tables {
		x := &txn{table: t.Name}
		for j := range t.Chains {
			c := &t.Chains[j]
			for _, w := range written {
				if w == t.Name+"/"+c.Name {
					x.declare = append(x.declare, c.Name)
					x.fill = append(x.fill, c)
				}
			}
		}
		txns = append(txns, x)
	}
	return restore(ctx, nf, txns)
}

// FullText is the restore text of a full apply of rs to empty tables: every
// chain declared and filled, and the jumps from the built-in chains.
func FullText(rs *render.Ruleset) []byte {
	var b bytes.Buffer
	for _, t := range rs.Tables {
		x := &txn{table: t.Name}
		for i := range t.Chains {
			x.declare = append(x.declare, t.Chains[i].Name)
			x.fill = append(x.fill, &t.Chains[i])
		}
		for _, j := range t.Jumps {
			x.jump = append(x.jump, j.Chain+" "+JoinRule(j.Rule))
		}
		x.write(&b)
	}
	return b.Bytes()
}

// AppendEach creates chain in table and appends each rule to it with one
// iptables process per rule, through go-iptables' Append: the per-rule
// library the benchmark compares with (weir itself no longer links it).
func AppendEach(t *IPTables, table, chain string, rules [][]string) error {
	return t.do(func() error {
		ipt, err := goipt.New(goipt.Path(t.iptables))
		if err != nil {
			return err
		}
		if err := ipt.NewChain(table, chain); err != nil {
			return err
		}
		for _, r := range rules {
			if err := ipt.Append(table, chain, r...); err != nil {
				return err
			}
		}
		return nil
	})
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
