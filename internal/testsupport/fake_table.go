package testsupport

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	"weir/reconcile/netfilter"
	"weir/spec"
)

type fakeTable struct {
	family  spec.Family // of the addresses its rules may hold
	builtin []string    // built-in chain names in save order
	chains  map[string]*fakeChain
}

type fakeChain struct {
	policy string // "ACCEPT" for built-in chains, "-" for user chains
	rules  []string
}

// fakeTargets are the targets the Fake accepts without a chain of that name:
// the verdicts and the extensions weir and its tests use.
var fakeTargets = map[string]bool{
	"ACCEPT": true, "DROP": true, "RETURN": true, "QUEUE": true, "DNAT": true,
	"SNAT": true, "MASQUERADE": true, "REJECT": true, "MARK": true, "LOG": true,
	"CONNMARK": true, "REDIRECT": true, "NOTRACK": true, "CT": true,
}

// maxNestedChains is how many nested user chains nf_tables lets a built-in
// chain reach: NFT_JUMP_STACK_SIZE is 16, the base chain included. Deeper
// rulesets fail with EMLINK, "Too many links".
const maxNestedChains = 15

func (t *fakeTable) clone() *fakeTable {
	c := &fakeTable{family: t.family, builtin: t.builtin, chains: make(map[string]*fakeChain, len(t.chains))}
	for n, ch := range t.chains {
		c.chains[n] = &fakeChain{policy: ch.policy, rules: append([]string(nil), ch.rules...)}
	}
	return c
}

// declare applies a chain declaration line (":NAME POLICY [0:0]"): it
// creates a user chain, flushes an existing one, or sets a built-in chain's
// policy unless it is "-".
func (t *fakeTable) declare(line string) error {
	fields := strings.Fields(line[1:])
	if len(fields) < 2 {
		return errors.New("bad chain declaration")
	}
	c, ok := t.chains[fields[0]]
	switch {
	case ok && c.policy != "-":
		if fields[1] != "-" {
			c.policy = fields[1]
		}
	case ok:
		c.rules = nil
	default:
		t.chains[fields[0]] = &fakeChain{policy: "-"}
	}
	return nil
}

// command applies one iptables command (without -t) to the table.
func (t *fakeTable) command(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("empty command")
	}
	op, rest := args[0], args[1:]
	switch op {
	case "-A", "--append":
		return t.addRule(op, rest, false)
	case "-I", "--insert":
		return t.addRule(op, rest, true)
	case "-D", "--delete":
		return t.deleteRule(op, rest)
	case "-N", "--new-chain":
		return t.newChain(rest)
	case "-F", "--flush":
		return t.flush(op, rest)
	case "-X", "--delete-chain":
		return t.deleteChains(op, rest)
	case "-P", "--policy":
		return t.policy(op, rest)
	}
	return fmt.Errorf("unknown command %q", op)
}

// chainArg returns the chain rest names first for command op.
func (t *fakeTable) chainArg(op string, rest []string) (*fakeChain, error) {
	if len(rest) == 0 {
		return nil, fmt.Errorf("%s needs a chain", op)
	}
	c, ok := t.chains[rest[0]]
	if !ok {
		return nil, fmt.Errorf("no chain/target/match by that name: %s", rest[0])
	}
	return c, nil
}

// addRule is -A CHAIN RULE or, with insert, -I CHAIN [POS] RULE, POS
// counting from 1 (the default).
func (t *fakeTable) addRule(op string, rest []string, insert bool) error {
	c, err := t.chainArg(op, rest)
	if err != nil {
		return err
	}
	spec, pos := rest[1:], len(c.rules)
	if insert {
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
	rule, err := t.checkedRule(spec)
	if err != nil {
		return err
	}
	c.rules = slices.Insert(c.rules, pos, rule)
	return nil
}

// checkedRule returns the rule spec as stored, or an error when it jumps to
// a target that is neither a known extension nor a user chain.
func (t *fakeTable) checkedRule(spec []string) (string, error) {
	if err := checkFamily(spec, t.family); err != nil {
		return "", err
	}
	rule := fakeCanonical(spec)
	if target := netfilter.RuleTarget(spec); target != "" && !fakeTargets[target] {
		tc, ok := t.chains[target]
		if !ok || tc.policy != "-" {
			return "", fmt.Errorf("couldn't load target `%s': no such file or directory", target)
		}
	}
	return rule, nil
}

// deleteRule is -D CHAIN RULE.
func (t *fakeTable) deleteRule(op string, rest []string) error {
	c, err := t.chainArg(op, rest)
	if err != nil {
		return err
	}
	if i := slices.Index(c.rules, fakeCanonical(rest[1:])); i >= 0 {
		c.rules = slices.Delete(c.rules, i, i+1)
		return nil
	}
	return fmt.Errorf("bad rule (does a matching rule exist in that chain?)")
}

// newChain is -N CHAIN.
func (t *fakeTable) newChain(rest []string) error {
	if len(rest) == 0 {
		return fmt.Errorf("-N needs a chain")
	}
	if _, ok := t.chains[rest[0]]; ok {
		return fmt.Errorf("chain already exists: %s", rest[0])
	}
	t.chains[rest[0]] = &fakeChain{policy: "-"}
	return nil
}

// flush is -F [CHAIN]: every chain without one.
func (t *fakeTable) flush(op string, rest []string) error {
	if len(rest) == 0 {
		for _, c := range t.chains {
			c.rules = nil
		}
		return nil
	}
	c, err := t.chainArg(op, rest)
	if err != nil {
		return err
	}
	c.rules = nil
	return nil
}

// deleteChains is -X [CHAIN]: every user chain without one.
func (t *fakeTable) deleteChains(op string, rest []string) error {
	if len(rest) == 0 {
		for _, n := range t.userChains() {
			if err := t.deleteChain(n); err != nil {
				return err
			}
		}
		return nil
	}
	if _, err := t.chainArg(op, rest); err != nil {
		return err
	}
	return t.deleteChain(rest[0])
}

// policy is -P CHAIN TARGET, for built-in chains only.
func (t *fakeTable) policy(op string, rest []string) error {
	c, err := t.chainArg(op, rest)
	if err != nil {
		return err
	}
	if c.policy == "-" || len(rest) < 2 {
		return fmt.Errorf("bad policy for %s", rest[0])
	}
	c.policy = rest[1]
	return nil
}

// errTooManyLinks and errJumpLoop are the kernel's refusals of a chain
// graph, worded as iptables-nft-restore reports them.
var (
	errTooManyLinks = errors.New("too many links (a built-in chain reaches more than 15 nested chains)")
	errJumpLoop     = errors.New("too many levels of symbolic links (chains jump in a loop)")
)

// checkGraph applies the kernel's checks of the jump graph: no loop among user
// chains, and no built-in chain reaching more than maxNestedChains nested user
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
			if d, ok := depth[target]; ok && d > maxNestedChains {
				return fmt.Errorf("%w: %s → %s is %d deep", errTooManyLinks, name, target, d)
			}
		}
	}
	return nil
}

// fakeRuleTarget is netfilter.RuleTarget of a stored rule. Rules without quotes (nearly
// all) are split on blanks without allocating an argument list each, which
// keeps checkGraph cheap on tables of 100,000 rules.
func fakeRuleTarget(rule string) string {
	if strings.ContainsRune(rule, '"') {
		return netfilter.RuleTarget(netfilter.SplitRule(rule))
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
			if netfilter.RuleTarget(netfilter.SplitRule(r)) == name {
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

// checkFamily rejects, as iptables and ip6tables do, a rule whose
// addresses or ICMP reject type belong to the other family than family.
func checkFamily(args []string, family spec.Family) error {
	for i := 0; i+1 < len(args); i++ {
		v := args[i+1]
		switch args[i] {
		case "-s", "--source", "-d", "--destination":
			v, _, _ = strings.Cut(v, "/")
		case "--to-destination":
			if ap, err := netip.ParseAddrPort(v); err == nil {
				v = ap.Addr().String()
			} else {
				v, _, _ = strings.Cut(v, ":")
			}
		case "--reject-with":
			if strings.HasPrefix(v, "icmp6-") != (family == spec.IPv6) && v != "tcp-reset" {
				return fmt.Errorf("REJECT: unknown reject type %q for %s", v, family)
			}
			continue
		default:
			continue
		}
		if a, err := netip.ParseAddr(v); err == nil && spec.FamilyOf(a) != family {
			return fmt.Errorf("host/network `%s' not found (an %s address in %s rules)", v, spec.FamilyOf(a), family)
		}
	}
	return nil
}

// fakeCanonical stores a rule as the kernel hands it back to iptables-save:
// addresses with their prefix length and probabilities in 11-decimal form.
func fakeCanonical(args []string) string {
	out := append([]string(nil), args...)
	for i := 0; i+1 < len(out); i++ {
		switch out[i] {
		case "-s", "--source", "-d", "--destination":
			out[i+1] = netfilter.NormalizePrefix(out[i+1])
		case "--probability":
			out[i+1] = netfilter.NormalizeProbability(out[i+1])
		}
	}
	return netfilter.JoinRule(out)
}
