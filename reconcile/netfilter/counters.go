package netfilter

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// RuleCount is one rule of a chain with its packet counter.
type RuleCount struct {
	Rule    string // as `iptables -S` prints it, without "-A CHAIN " and the counters
	Packets uint64
}

// ChainCounters returns the rules of one owned chain of table, in order,
// with their packet counters, through `iptables -v -S CHAIN`: a read of that
// chain alone (on legacy the kernel still copies the table out, as for any
// read), never a save of the whole table. In the nat table a rule sees only
// the first packet of each connection, so its counter is the connections it
// took since the chain was last written.
func (t *IPTables) ChainCounters(ctx context.Context, table, chain string) ([]RuleCount, error) {
	if !strings.HasPrefix(chain, OwnedPrefix) {
		return nil, fmt.Errorf("reading counters of %s/%s: not an owned chain", table, chain)
	}
	text, err := t.iptablesCmd(ctx, table, "-v", "-S", chain)
	if err != nil {
		return nil, fmt.Errorf("reading counters of %s/%s: %w", table, chain, err)
	}
	return parseCounters(string(text), chain)
}

// parseCounters reads the "-A CHAIN … -c PACKETS BYTES …" lines of
// `iptables -v -S CHAIN`, in order.
func parseCounters(text, chain string) ([]RuleCount, error) {
	prefix := "-A " + chain + " "
	out := []RuleCount{}
	for line := range strings.Lines(text) {
		rule, ok := strings.CutPrefix(strings.TrimRight(line, "\n"), prefix)
		if !ok {
			continue
		}
		f := strings.Fields(rule)
		i := countersAt(f)
		if i < 0 {
			return nil, fmt.Errorf("rule %q of %s has no counters", rule, chain)
		}
		packets, _ := strconv.ParseUint(f[i+1], 10, 64)
		out = append(out, RuleCount{Rule: strings.Join(append(f[:i:i], f[i+3:]...), " "), Packets: packets})
	}
	return out, nil
}

// countersAt returns the index of the last "-c PACKETS BYTES" in f, or -1.
// Comments weir writes are balancer names, which hold no spaces, so a "-c"
// field is always the option.
func countersAt(f []string) int {
	for i := len(f) - 3; i >= 0; i-- {
		if f[i] != "-c" {
			continue
		}
		if _, err := strconv.ParseUint(f[i+1], 10, 64); err != nil {
			continue
		}
		if _, err := strconv.ParseUint(f[i+2], 10, 64); err == nil {
			return i
		}
	}
	return -1
}
