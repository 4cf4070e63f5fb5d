package reconcile

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Fake is a stateful in-memory Netfilter for tests: tables of chains of rules,
// changed by iptables-restore text with the real tool's rules. A chain
// declaration (":NAME - [0:0]") creates or flushes a user chain, "-A" appends,
// "-X" deletes; a jump to a chain that does not exist, deleting a chain that is
// not empty or still referenced, or any malformed line rejects the whole
// "*table … COMMIT" block, leaving the table as it was. Like nf_tables
// (Debian's default backend) it also rejects a transaction after which a
// built-in chain reaches more than maxChainDepth nested chains ("Too many
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
	conntrack []ConntrackFlow
	calls     FakeCalls
}

// FakeCalls counts the calls a Fake served, by method.
type FakeCalls struct {
	Restore, Save, ListRules, EnsureJump, DeleteJump, DeleteConntrack int
}

type fakeTable struct {
	builtin []string // built-in chain names in save order
	chains  map[string]*fakeChain
}

type fakeChain struct {
	policy string // "ACCEPT" for built-in chains, "-" for user chains
	rules  []string
}

var _ Netfilter = (*Fake)(nil)

// fakeTargets are the targets the Fake accepts without a chain of that name:
// the verdicts and the extensions weir and its tests use.
var fakeTargets = map[string]bool{
	"ACCEPT": true, "DROP": true, "RETURN": true, "QUEUE": true, "DNAT": true,
	"SNAT": true, "MASQUERADE": true, "REJECT": true, "MARK": true, "LOG": true,
	"CONNMARK": true, "REDIRECT": true, "NOTRACK": true, "CT": true,
}

// NewFake returns a Fake holding the empty filter, nat, mangle and raw tables.
func NewFake() *Fake {
	f := &Fake{tables: map[string]*fakeTable{}}
	for name, chains := range builtinChains {
		t := &fakeTable{builtin: chains, chains: map[string]*fakeChain{}}
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
func (f *Fake) AddConntrack(c ConntrackFlow) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.conntrack = append(f.conntrack, c)
}

// Conntrack returns the conntrack entries left.
func (f *Fake) Conntrack() []ConntrackFlow {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]ConntrackFlow(nil), f.conntrack...)
}

// Run executes one iptables command on table, e.g. Run("nat", "-F", "WEIR-X"),
// with the semantics of the same line in a restore transaction. Tests use it to
// play the admin who edits rules by hand.
func (f *Fake) Run(table string, args ...string) error {
	text := "*" + table + "\n" + joinRule(args) + "\nCOMMIT\n"
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.restoreLocked([]byte(text))
}

func (t *fakeTable) clone() *fakeTable {
	c := &fakeTable{builtin: t.builtin, chains: make(map[string]*fakeChain, len(t.chains))}
	for n, ch := range t.chains {
		c.chains[n] = &fakeChain{policy: ch.policy, rules: append([]string(nil), ch.rules...)}
	}
	return c
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
			fields := strings.Fields(line[1:])
			if len(fields) < 2 {
				return fail("bad chain declaration")
			}
			c, ok := work.chains[fields[0]]
			switch {
			case ok && c.policy != "-":
				if fields[1] != "-" {
					c.policy = fields[1]
				}
			case ok:
				c.rules = nil
			default:
				work.chains[fields[0]] = &fakeChain{policy: "-"}
			}
		default:
			if err := work.command(splitRule(line)); err != nil {
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

// command applies one iptables command (without -t) to the table.
func (t *fakeTable) command(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("empty command")
	}
	op, rest := args[0], args[1:]
	chainArg := func() (string, *fakeChain, error) {
		if len(rest) == 0 {
			return "", nil, fmt.Errorf("%s needs a chain", op)
		}
		c, ok := t.chains[rest[0]]
		if !ok {
			return rest[0], nil, fmt.Errorf("no chain/target/match by that name: %s", rest[0])
		}
		return rest[0], c, nil
	}
	switch op {
	case "-A", "--append", "-I", "--insert", "-D", "--delete":
		_, c, err := chainArg()
		if err != nil {
			return err
		}
		spec := rest[1:]
		pos := -1
		if op == "-I" || op == "--insert" {
			pos = 0
			if len(spec) > 0 {
				if p, err := strconv.Atoi(spec[0]); err == nil {
					pos, spec = p-1, spec[1:]
				}
			}
			if pos < 0 || pos > len(c.rules) {
				return fmt.Errorf("index of insertion too big")
			}
		}
		rule := fakeCanonical(spec)
		if op == "-D" || op == "--delete" {
			for i, r := range c.rules {
				if r == rule {
					c.rules = append(c.rules[:i], c.rules[i+1:]...)
					return nil
				}
			}
			return fmt.Errorf("bad rule (does a matching rule exist in that chain?)")
		}
		if target := ruleTarget(spec); target != "" && !fakeTargets[target] {
			tc, ok := t.chains[target]
			if !ok || tc.policy != "-" {
				return fmt.Errorf("couldn't load target `%s': no such file or directory", target)
			}
		}
		if pos < 0 {
			c.rules = append(c.rules, rule)
		} else {
			c.rules = append(c.rules[:pos], append([]string{rule}, c.rules[pos:]...)...)
		}
	case "-N", "--new-chain":
		if len(rest) == 0 {
			return fmt.Errorf("-N needs a chain")
		}
		if _, ok := t.chains[rest[0]]; ok {
			return fmt.Errorf("chain already exists: %s", rest[0])
		}
		t.chains[rest[0]] = &fakeChain{policy: "-"}
	case "-F", "--flush":
		if len(rest) == 0 {
			for _, c := range t.chains {
				c.rules = nil
			}
			return nil
		}
		_, c, err := chainArg()
		if err != nil {
			return err
		}
		c.rules = nil
	case "-X", "--delete-chain":
		if len(rest) == 0 {
			for _, n := range t.userChains() {
				if err := t.deleteChain(n); err != nil {
					return err
				}
			}
			return nil
		}
		if _, _, err := chainArg(); err != nil {
			return err
		}
		return t.deleteChain(rest[0])
	case "-P", "--policy":
		_, c, err := chainArg()
		if err != nil {
			return err
		}
		if c.policy == "-" || len(rest) < 2 {
			return fmt.Errorf("bad policy for %s", rest[0])
		}
		c.policy = rest[1]
	default:
		return fmt.Errorf("unknown command %q", op)
	}
	return nil
}

// errTooManyLinks and errJumpLoop are the kernel's refusals of a chain
// graph, worded as iptables-nft-restore reports them.
var (
	errTooManyLinks = errors.New("too many links (a built-in chain reaches more than 15 nested chains)")
	errJumpLoop     = errors.New("too many levels of symbolic links (chains jump in a loop)")
)

// checkGraph applies the kernel's checks of the jump graph: no loop among user
// chains, and no built-in chain reaching more than maxChainDepth nested user
// chains. nf_tables counts a goto like a jump (NFT_JUMP_STACK_SIZE is 16,
// the base chain included), so both do here.
func (t *fakeTable) checkGraph() error {
	const (
		unvisited = iota
		visiting
		done
	)
	state := make(map[string]int, len(t.chains))
	depth := make(map[string]int, len(t.chains)) // nested chains below a user chain, itself included
	var visit func(name string) error
	visit = func(name string) error {
		switch state[name] {
		case visiting:
			return fmt.Errorf("%w: through %s", errJumpLoop, name)
		case done:
			return nil
		}
		state[name] = visiting
		d := 1
		for _, r := range t.chains[name].rules {
			target := fakeRuleTarget(r)
			if c, ok := t.chains[target]; !ok || c.policy != "-" {
				continue
			}
			if err := visit(target); err != nil {
				return err
			}
			d = max(d, 1+depth[target])
		}
		depth[name], state[name] = d, done
		return nil
	}
	for _, name := range t.userChains() {
		if err := visit(name); err != nil {
			return err
		}
	}
	for _, name := range t.builtin {
		for _, r := range t.chains[name].rules {
			target := fakeRuleTarget(r)
			if d, ok := depth[target]; ok && d > maxChainDepth {
				return fmt.Errorf("%w: %s → %s is %d deep", errTooManyLinks, name, target, d)
			}
		}
	}
	return nil
}

// fakeRuleTarget is ruleTarget of a stored rule. Rules without quotes (nearly
// all) are split on blanks without allocating an argument list each, which
// keeps checkGraph cheap on tables of 100,000 rules.
func fakeRuleTarget(rule string) string {
	if strings.ContainsRune(rule, '"') {
		return ruleTarget(splitRule(rule))
	}
	prev := ""
	for f := range strings.FieldsSeq(rule) {
		switch prev {
		case "-j", "--jump", "-g", "--goto":
			return f
		}
		prev = f
	}
	return ""
}

func (t *fakeTable) deleteChain(name string) error {
	c := t.chains[name]
	if c.policy != "-" {
		return fmt.Errorf("cannot delete built-in chain %s", name)
	}
	if len(c.rules) > 0 {
		return fmt.Errorf("deleting chain %s: directory not empty", name)
	}
	for n, o := range t.chains {
		for _, r := range o.rules {
			if ruleTarget(splitRule(r)) == name {
				return fmt.Errorf("deleting chain %s: device or resource busy (referenced from %s)", name, n)
			}
		}
	}
	delete(t.chains, name)
	return nil
}

func (t *fakeTable) userChains() []string {
	var names []string
	for n, c := range t.chains {
		if c.policy == "-" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// fakeCanonical stores a rule as the kernel hands it back to iptables-save:
// addresses with their prefix length and probabilities in 11-decimal form.
func fakeCanonical(args []string) string {
	out := append([]string(nil), args...)
	for i := 0; i+1 < len(out); i++ {
		switch out[i] {
		case "-s", "--source", "-d", "--destination":
			out[i+1] = normalizePrefix(out[i+1])
		case "--probability":
			out[i+1] = normalizeProbability(out[i+1])
		}
	}
	return joinRule(out)
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
func (f *Fake) DeleteConntrack(ctx context.Context, flows []ConntrackFlow) (uint, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls.DeleteConntrack++
	del := map[ConntrackFlow]bool{}
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
				k = ConntrackFlow{}
				break
			}
		}
		if k == (ConntrackFlow{}) {
			n++
			continue
		}
		kept = append(kept, c)
	}
	f.conntrack = kept
	return n, nil
}
