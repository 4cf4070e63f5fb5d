package testsupport

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"

	"weir/reconcile/netfilter"
	"weir/spec"
)

// Fake is a stateful in-memory Netfilter for tests: tables of chains of rules,
// changed by iptables-restore text with the real tool's rules. A chain
// declaration (":NAME - [0:0]") creates or flushes a user chain, "-A" appends,
// "-X" deletes; a jump to a chain that does not exist, deleting a chain that is
// not empty or still referenced, or any malformed line rejects the whole
// "*table … COMMIT" block, leaving the table as it was. Like nf_tables
// (Debian's default backend) it also rejects a transaction after which a
// built-in chain reaches more than maxNestedChains nested chains ("Too many
// links"), or chains jump in a loop ("Too many levels of symbolic links"), so
// unit tests catch rulesets the kernel would refuse. (The legacy backend
// allows deeper nesting; the Fake is deliberately as strict as the stricter
// one.) Like the kernel it
// stores addresses with their prefix length ("/32") and statistic
// probabilities in their 11-decimal printed form, so callers comparing with
// what they wrote meet the same differences as on a real host.
type Fake struct {
	// RestoreHook, when set, sees every Restore text first; an error it returns
	// fails the Restore without changing anything. Set it before use.
	RestoreHook func(text []byte) error

	mu        sync.Mutex
	tables    map[string]*fakeTable
	conntrack []netfilter.ConntrackFlow
	calls     FakeCalls
}

// FakeCalls counts the calls a Fake served, by method.
type FakeCalls struct {
	Restore, Save, ListRules, EnsureJump, DeleteJump, DeleteConntrack int
}

var _ netfilter.Netfilter = (*Fake)(nil)

// NewFake returns an IPv4 (iptables) Fake holding the empty filter, nat,
// mangle and raw tables.
func NewFake() *Fake { return NewFakeFamily(spec.IPv4) }

// NewFakeFamily returns a Fake of the given family: an IPv6 Fake stands
// for ip6tables, and like it rejects rules with IPv4 addresses (and an
// IPv4 one rules with IPv6 addresses), so tests catch a ruleset handed to
// the wrong family.
func NewFakeFamily(family spec.Family) *Fake {
	f := &Fake{tables: map[string]*fakeTable{}}
	for name, chains := range netfilter.BuiltinChains() {
		t := &fakeTable{family: family, builtin: chains, chains: map[string]*fakeChain{}}
		for _, c := range chains {
			t.chains[c] = &fakeChain{policy: "ACCEPT"}
		}
		f.tables[name] = t
	}
	return f
}

// Calls returns how many calls of each method the Fake served.
func (f *Fake) Calls() FakeCalls {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// AddConntrack records a conntrack entry that DeleteConntrack may delete.
func (f *Fake) AddConntrack(c netfilter.ConntrackFlow) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.conntrack = append(f.conntrack, c)
}

// Conntrack returns the conntrack entries left.
func (f *Fake) Conntrack() []netfilter.ConntrackFlow {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]netfilter.ConntrackFlow(nil), f.conntrack...)
}

// Run executes one iptables command on table, e.g. Run("nat", "-F", "WEIR-X"),
// with the semantics of the same line in a restore transaction. Tests use it to
// play the admin who edits rules by hand.
func (f *Fake) Run(table string, args ...string) error {
	text := "*" + table + "\n" + netfilter.JoinRule(args) + "\nCOMMIT\n"
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.restoreLocked([]byte(text))
}

// Restore implements Netfilter.
func (f *Fake) Restore(ctx context.Context, text []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls.Restore++
	if f.RestoreHook != nil {
		if err := f.RestoreHook(text); err != nil {
			return fmt.Errorf("fake restore: %w", err)
		}
	}
	return f.restoreLocked(text)
}

func (f *Fake) restoreLocked(text []byte) error {
	var name string
	var work *fakeTable
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		fail := func(format string, a ...any) error {
			return fmt.Errorf("fake restore line %d %q: %s", n, line, fmt.Sprintf(format, a...))
		}
		switch {
		case line[0] == '*':
			if work != nil {
				return fail("table %s not committed", name)
			}
			name = line[1:]
			t, ok := f.tables[name]
			if !ok {
				return fail("no table %q", name)
			}
			work = t.clone()
		case work == nil:
			return fail("outside a table")
		case line == "COMMIT":
			if err := work.checkGraph(); err != nil {
				return fail("%v", err)
			}
			f.tables[name] = work
			work = nil
		case line[0] == ':':
			if err := work.declare(line); err != nil {
				return fail("%v", err)
			}
		default:
			if err := work.command(netfilter.SplitRule(line)); err != nil {
				return fail("%v", err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("fake restore: %w", err)
	}
	if work != nil {
		return fmt.Errorf("fake restore: table %s not committed", name)
	}
	return nil
}

// Save implements Netfilter in iptables-save format.
func (f *Fake) Save(ctx context.Context, table string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls.Save++
	t, ok := f.tables[table]
	if !ok {
		return nil, fmt.Errorf("fake save: no table %q", table)
	}
	order := append(append([]string(nil), t.builtin...), t.userChains()...)
	var b bytes.Buffer
	b.WriteString("# Generated by weir's fake netfilter\n*" + table + "\n")
	for _, n := range order {
		fmt.Fprintf(&b, ":%s %s [0:0]\n", n, t.chains[n].policy)
	}
	for _, n := range order {
		for _, r := range t.chains[n].rules {
			b.WriteString("-A " + n + " " + r + "\n")
		}
	}
	b.WriteString("COMMIT\n")
	return b.Bytes(), nil
}

// ListRules implements Netfilter.
func (f *Fake) ListRules(ctx context.Context, table string, chains []string) (map[string][]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls.ListRules++
	t, ok := f.tables[table]
	if !ok {
		return nil, fmt.Errorf("fake list: no table %q", table)
	}
	out := make(map[string][]string, len(chains))
	for _, n := range chains {
		c, ok := t.chains[n]
		if !ok {
			return nil, fmt.Errorf("listing chain %s in table %s: no chain/target/match by that name", n, table)
		}
		out[n] = append([]string{}, c.rules...)
	}
	return out, nil
}

// EnsureJump implements Netfilter.
func (f *Fake) EnsureJump(ctx context.Context, table, chain string, rule []string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls.EnsureJump++
	t, ok := f.tables[table]
	if !ok {
		return false, fmt.Errorf("fake ensure jump: no table %q", table)
	}
	work := t.clone()
	c, ok := work.chains[chain]
	if !ok {
		return false, fmt.Errorf("ensuring jump in %s/%s: no such chain", table, chain)
	}
	want := fakeCanonical(rule)
	for _, r := range c.rules {
		if r == want {
			return false, nil
		}
	}
	if err := work.command(append([]string{"-I", chain, "1"}, rule...)); err != nil {
		return false, fmt.Errorf("ensuring jump %q in %s/%s: %w", want, table, chain, err)
	}
	if err := work.checkGraph(); err != nil {
		return false, fmt.Errorf("ensuring jump %q in %s/%s: %w", want, table, chain, err)
	}
	f.tables[table] = work
	return true, nil
}

// DeleteJump implements Netfilter.
func (f *Fake) DeleteJump(ctx context.Context, table, chain string, rule []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls.DeleteJump++
	t, ok := f.tables[table]
	if !ok {
		return fmt.Errorf("fake delete jump: no table %q", table)
	}
	c, ok := t.chains[chain]
	if !ok {
		return nil
	}
	want := fakeCanonical(rule)
	for i, r := range c.rules {
		if r == want {
			c.rules = append(c.rules[:i], c.rules[i+1:]...)
			return nil
		}
	}
	return nil
}

// DeleteConntrack implements Netfilter over the entries added with AddConntrack.
func (f *Fake) DeleteConntrack(ctx context.Context, flows []netfilter.ConntrackFlow) (uint, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls.DeleteConntrack++
	del := map[netfilter.ConntrackFlow]bool{}
	for _, fl := range flows {
		del[fl] = true
	}
	var n uint
	kept := f.conntrack[:0]
	for _, c := range f.conntrack {
		// Like the netlink filter, the target's port is not compared.
		k := c
		for d := range del {
			if d.Protocol == c.Protocol && d.Frontend == c.Frontend && d.Target.Addr() == c.Target.Addr() {
				k = netfilter.ConntrackFlow{}
				break
			}
		}
		if k == (netfilter.ConntrackFlow{}) {
			n++
			continue
		}
		kept = append(kept, c)
	}
	f.conntrack = kept
	return n, nil
}
