package reconcile

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// managedTables are always inspected by a full apply, so that owned chains left
// in them by an earlier ruleset are deleted even when the new one has none there.
var managedTables = []string{"filter", "nat"}

// SyncerOptions configures NewSyncer. Zero values pick the defaults.
type SyncerOptions struct {
	Logger *slog.Logger
	Now    func() time.Time
	// FullCheckEvery makes every n-th Reconcile (the first included) compare
	// every owned chain through iptables-save; the others run the cheap canary
	// check. Default 10: at 10,000 balancers on nft a save costs about 1.4 s of
	// CPU, so at a 30 s resync a full compare every 10th call stays well under
	// 1% of a core. 1 compares everything on every call.
	FullCheckEvery int
	// CanaryChains is how many chains per table, starting at the targets of the
	// jumps and going down the dispatch tree breadth-first, the canary check
	// reads on every call. Default 8.
	CanaryChains int
	// CanarySample is how many further chains per table the canary check reads
	// on every call, rotating through all of them. Default 4.
	CanarySample int
}

// ApplyResult says what one Apply (or the re-apply of a repair) did.
type ApplyResult struct {
	Full             bool          // all owned chains were rewritten, stale ones found from iptables-save
	ChainsWritten    int           // owned chains declared and filled
	ChainsDeleted    int           // stale owned chains flushed and deleted
	Rules            int           // rules written
	Written          []string      // "table/chain" of every chain written, sorted
	Deleted          []string      // "table/chain" of every chain deleted, sorted
	JumpsAdded       int           // jump rules inserted into built-in chains
	JumpsDeleted     int           // stale jump rules deleted from built-in chains
	ConntrackDeleted uint          // conntrack entries of departed UDP targets deleted
	Duration         time.Duration // wall time of the whole apply
}

// Syncer applies Rulesets to a Netfilter: atomically per table, only what
// changed since the last apply, and repairs drift. It is safe for concurrent use.
//
// The first Apply, and the first after any failure, is full: iptables-save
// tells which owned chains exist, and one `iptables-restore --noflush`
// transaction per table declares (so flushes) and refills every desired chain
// and flushes and deletes the stale ones, so traffic never meets a half-written
// table and nothing weir does not own is touched. Afterwards Apply is partial:
// comparing each chain's rules with what was last applied picks the chains to
// rewrite, and an unchanged Ruleset costs no kernel call at all.
type Syncer struct {
	nf           Netfilter
	log          *slog.Logger
	now          func() time.Time
	fullEvery    int
	canaryTop    int
	canarySample int

	mu      sync.Mutex
	desired *Ruleset               // the last Ruleset asked for; Reconcile converges to it
	dirty   bool                   // the kernel may differ from state: the next apply is full
	state   map[string]*tableState // what the kernel holds, by table, after the last successful apply
	flows   []Flow                 // Flows of the last successful apply
	checks  int                    // Reconcile calls that ran a check
	repairs int
	scratch []byte // hashing buffer
}

// tableState is the owned part of one table as last applied.
type tableState struct {
	// names are the owned chains, sorted, and states[i] is names[i]'s state.
	// A partial apply walks them beside the new Ruleset's sorted chains: at
	// 10,000 balancers (76,000 chains) two map operations per chain cost
	// 60 ms of cache misses per apply, the merge a few.
	names  []string
	states []*chainState
	index  map[string]*chainState // by name, built when a drift check first needs it
	jumps  []Jump
	// canary is the chain list the canary check reads every time and rest the
	// remaining chains it samples from; both nil until first needed.
	canary, rest []string
	offset       int
}

// newTableState returns the state of chains (unique names) with the given
// states, sorting them by name unless they are sorted already, as Render's
// are.
func newTableState(names []string, states []*chainState, jumps []Jump) *tableState {
	ts := &tableState{names: names, states: states, jumps: jumps}
	if !slices.IsSorted(names) {
		idx := make([]int, len(names))
		for i := range idx {
			idx[i] = i
		}
		slices.SortStableFunc(idx, func(a, b int) int { return strings.Compare(names[a], names[b]) })
		ts.names, ts.states = make([]string, len(idx)), make([]*chainState, len(idx))
		for i, j := range idx {
			ts.names[i], ts.states[i] = names[j], states[j]
		}
	}
	return ts
}

// get returns the state of chain, or nil when it is not an owned chain of
// the table.
func (ts *tableState) get(chain string) *chainState {
	if ts.index == nil {
		ts.index = make(map[string]*chainState, len(ts.names))
		for i, n := range ts.names {
			ts.index[n] = ts.states[i]
		}
	}
	return ts.index[chain]
}

// chainState is one applied chain.
type chainState struct {
	rules []string // as rendered: partial sync compares them with the new ones
	// norm is the hash of the normalized rules, computed when first compared
	// with the kernel. live is the hash of the kernel's own text for the chain,
	// recorded once it was seen equal to the desired rules, so later checks
	// compare hashes instead of normalizing every rule again.
	norm, live     [32]byte
	normOK, liveOK bool
}

// NewSyncer returns a Syncer that programs nf.
func NewSyncer(nf Netfilter, opts SyncerOptions) *Syncer {
	s := &Syncer{
		nf: nf, log: opts.Logger, now: opts.Now, fullEvery: opts.FullCheckEvery,
		canaryTop: opts.CanaryChains, canarySample: opts.CanarySample, dirty: true,
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.fullEvery <= 0 {
		s.fullEvery = 10
	}
	if s.canaryTop <= 0 {
		s.canaryTop = 8
	}
	if s.canarySample <= 0 {
		s.canarySample = 4
	}
	return s
}

// Repairs returns how many times Reconcile found drift and re-applied.
func (s *Syncer) Repairs() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.repairs
}

// Apply makes rs the desired state and applies it: fully the first time and
// after a failure, else only the chains and jumps that changed. Apply keeps rs;
// the caller must not modify it afterwards. On error the next Apply or
// Reconcile is full.
func (s *Syncer) Apply(ctx context.Context, rs *Ruleset) (ApplyResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.desired = rs
	return s.converge(ctx, s.dirty)
}

// converge applies s.desired, then deletes the conntrack entries of UDP
// targets that left their balancer.
func (s *Syncer) converge(ctx context.Context, full bool) (ApplyResult, error) {
	start := s.now()
	var res ApplyResult
	var err error
	if full || s.state == nil {
		res, err = s.applyFull(ctx, s.desired)
	} else {
		res, err = s.applyPartial(ctx, s.desired)
	}
	if err != nil {
		s.dirty = true
		res.Duration = s.now().Sub(start)
		return res, err
	}
	s.dirty = false
	if gone := removedFlows(s.flows, s.desired.Flows); len(gone) > 0 {
		n, err := s.nf.DeleteConntrack(ctx, gone)
		res.ConntrackDeleted = n
		if err != nil {
			// The rules are right; stale UDP entries only delay the move of
			// those flows until they time out, so this does not fail the apply.
			s.log.Warn("deleting conntrack entries of departed targets", "flows", len(gone), "err", err)
		}
	}
	s.flows = s.desired.Flows
	res.Duration = s.now().Sub(start)
	s.log.Debug("applied ruleset", "full", res.Full, "written", res.ChainsWritten,
		"deleted", res.ChainsDeleted, "rules", res.Rules, "duration", res.Duration)
	return res, nil
}

func hashRules(rules []string) [32]byte {
	var scratch []byte
	return hashRulesBuf(rules, &scratch)
}

// hashRulesBuf hashes rules using *scratch as its buffer, so hashing every
// chain of a large ruleset allocates once.
func hashRulesBuf(rules []string, scratch *[]byte) [32]byte {
	buf := (*scratch)[:0]
	for _, r := range rules {
		buf = append(append(buf, r...), '\n')
	}
	*scratch = buf
	return sha256.Sum256(buf)
}

func (rs *Ruleset) table(name string) *Table {
	for i := range rs.Tables {
		if rs.Tables[i].Name == name {
			return &rs.Tables[i]
		}
	}
	return &Table{Name: name}
}

// tableNames returns the sorted union of managedTables, the tables of rs and
// the tables in state.
func (s *Syncer) tableNames(rs *Ruleset) []string {
	set := map[string]bool{}
	for _, t := range managedTables {
		set[t] = true
	}
	for _, t := range rs.Tables {
		set[t.Name] = true
	}
	for t := range s.state {
		set[t] = true
	}
	names := make([]string, 0, len(set))
	for t := range set {
		names = append(names, t)
	}
	sort.Strings(names)
	return names
}

// jumpKey identifies a jump rule whatever form it was written or printed in.
func jumpKey(chain string, rule []string) string {
	return chain + " " + normalizeRule(joinRule(rule))
}

// txn is one table's part of a restore: everything weir changes in the table
// in one atomic transaction.
type txn struct {
	table   string
	declare []string // chains to create or flush
	fill    []*Chain // chains whose rules to append
	unjump  []string // "CHAIN RULE" jump rules to delete from built-in chains
	jump    []string // "CHAIN RULE" jump rules to insert at the top, in this order
	del     []string // chains to delete
}

func (x *txn) empty() bool {
	return len(x.declare)+len(x.unjump)+len(x.jump)+len(x.del) == 0
}

// write appends the transaction to b and returns how many rules it appends.
// Declarations come first so rules may jump to any chain declared; stale jumps
// go before the chains they enter are deleted; new jumps are inserted last
// first, so that they end up at the top of their chain in the order given.
func (x *txn) write(b *bytes.Buffer) int {
	b.WriteString("*" + x.table + "\n")
	for _, c := range x.declare {
		b.WriteString(":" + c + " - [0:0]\n")
	}
	for _, j := range x.unjump {
		b.WriteString("-D " + j + "\n")
	}
	n := 0
	for _, c := range x.fill {
		for _, r := range c.Rules {
			b.WriteString("-A " + c.Name + " " + r + "\n")
			n++
		}
	}
	for i := len(x.jump) - 1; i >= 0; i-- {
		chain, rule, _ := strings.Cut(x.jump[i], " ")
		b.WriteString("-I " + chain + " 1 " + rule + "\n")
	}
	for _, c := range x.del {
		b.WriteString("-X " + c + "\n")
	}
	b.WriteString("COMMIT\n")
	return n
}

// restore applies the non-empty transactions in one iptables-restore run (each
// table commits atomically) and returns the number of rules written.
func restore(ctx context.Context, nf Netfilter, txns []*txn) (int, error) {
	var b bytes.Buffer
	n := 0
	for _, x := range txns {
		if !x.empty() {
			n += x.write(&b)
		}
	}
	if b.Len() == 0 {
		return 0, nil
	}
	return n, nf.Restore(ctx, b.Bytes())
}

// applyFull rewrites every owned chain of every table from rs in one restore,
// finding stale owned chains and jumps, and missing jumps, from iptables-save.
// The jumps are fixed inside the same transaction rather than with one
// go-iptables call each: on the legacy backend every such call copies the
// whole table out of and back into the kernel (about 0.4 s at 70,000 rules).
func (s *Syncer) applyFull(ctx context.Context, rs *Ruleset) (ApplyResult, error) {
	res := ApplyResult{Full: true}
	state := map[string]*tableState{}
	var txns []*txn
	for _, name := range s.tableNames(rs) {
		want := rs.table(name)
		text, err := s.nf.Save(ctx, name)
		if err != nil {
			return res, fmt.Errorf("full apply of table %s: %w", name, err)
		}
		saved, err := parseSave(text)
		if err != nil {
			return res, fmt.Errorf("full apply of table %s: %w", name, err)
		}
		live := saved[name]
		if live == nil {
			live = &savedTable{Rules: map[string][]string{}}
		}
		x := &txn{table: name}
		missing := map[string]int{}
		for _, j := range want.Jumps {
			missing[jumpKey(j.Chain, j.Rule)]++
		}
		for _, c := range live.Chains {
			if !isBuiltin(name, c) {
				continue
			}
			for _, r := range live.Rules[c] {
				args := splitRule(r)
				if !strings.HasPrefix(ruleTarget(args), OwnedPrefix) {
					continue
				}
				if k := jumpKey(c, args); missing[k] > 0 {
					missing[k]--
					continue
				}
				x.unjump = append(x.unjump, c+" "+r)
			}
		}
		for _, j := range want.Jumps {
			if k := jumpKey(j.Chain, j.Rule); missing[k] > 0 {
				missing[k]--
				x.jump = append(x.jump, j.Chain+" "+joinRule(j.Rule))
			}
		}
		wanted := map[string]bool{}
		for i := range want.Chains {
			c := &want.Chains[i]
			wanted[c.Name] = true
			x.declare = append(x.declare, c.Name)
			x.fill = append(x.fill, c)
			res.Written = append(res.Written, name+"/"+c.Name)
		}
		for _, c := range live.Chains {
			if strings.HasPrefix(c, OwnedPrefix) && !wanted[c] {
				x.del = append(x.del, c)
				res.Deleted = append(res.Deleted, name+"/"+c)
			}
		}
		sort.Strings(x.del)
		x.declare = append(x.declare, x.del...)
		res.JumpsAdded += len(x.jump)
		res.JumpsDeleted += len(x.unjump)
		txns = append(txns, x)
		names, states := make([]string, len(want.Chains)), make([]*chainState, len(want.Chains))
		for i := range want.Chains {
			names[i], states[i] = want.Chains[i].Name, &chainState{rules: want.Chains[i].Rules}
		}
		state[name] = newTableState(names, states, want.Jumps)
	}
	n, err := restore(ctx, s.nf, txns)
	if err != nil {
		return res, fmt.Errorf("full apply: %w", err)
	}
	res.Rules = n
	s.state = state
	res.ChainsWritten, res.ChainsDeleted = len(res.Written), len(res.Deleted)
	sort.Strings(res.Written)
	sort.Strings(res.Deleted)
	return res, nil
}

// applyPartial rewrites only the chains whose content changed since the last
// apply, declares new ones and deletes stale ones, all tables in one restore.
// Jump rules change only when the Ruleset's set of jumps does (rarely: a table
// gains or loses its first chain); those go through go-iptables, deletions
// before the restore that may delete their target, insertions after it.
func (s *Syncer) applyPartial(ctx context.Context, rs *Ruleset) (ApplyResult, error) {
	var res ApplyResult
	type jumpChange struct {
		table string
		jump  Jump
	}
	var txns []*txn
	var addJumps, delJumps []jumpChange
	next := map[string]*tableState{}
	for _, name := range s.tableNames(rs) {
		want := rs.table(name)
		old := s.state[name]
		if old == nil {
			old = &tableState{}
		}
		chains := sortedChains(want.Chains)
		names, states := make([]string, len(chains)), make([]*chainState, len(chains))
		x := &txn{table: name}
		// Both lists are sorted by name: walk them side by side.
		j := 0
		for i, c := range chains {
			for j < len(old.names) && old.names[j] < c.Name {
				x.del = append(x.del, old.names[j])
				res.Deleted = append(res.Deleted, name+"/"+old.names[j])
				j++
			}
			names[i] = c.Name
			// Comparing the rules themselves is exact and cheaper than
			// hashing every chain (sha256 of 13 MB of rules at 10,000
			// balancers cost about 40 ms per apply); most rules differ in
			// length or are equal by identity.
			if j < len(old.names) && old.names[j] == c.Name {
				o := old.states[j]
				j++
				if slices.Equal(o.rules, c.Rules) {
					// Same content: keep the chainState and what it learnt
					// of the kernel's form.
					o.rules = c.Rules
					states[i] = o
					continue
				}
			}
			states[i] = &chainState{rules: c.Rules}
			x.declare = append(x.declare, c.Name)
			x.fill = append(x.fill, c)
			res.Written = append(res.Written, name+"/"+c.Name)
		}
		for ; j < len(old.names); j++ {
			x.del = append(x.del, old.names[j])
			res.Deleted = append(res.Deleted, name+"/"+old.names[j])
		}
		ts := &tableState{names: names, states: states, jumps: want.Jumps}
		x.declare = append(x.declare, x.del...)
		oldJumps, newJumps := map[string]int{}, map[string]int{}
		for _, j := range old.jumps {
			oldJumps[jumpKey(j.Chain, j.Rule)]++
		}
		for _, j := range want.Jumps {
			k := jumpKey(j.Chain, j.Rule)
			newJumps[k]++
			if newJumps[k] > oldJumps[k] {
				addJumps = append(addJumps, jumpChange{name, j})
			}
		}
		for _, j := range old.jumps {
			if k := jumpKey(j.Chain, j.Rule); newJumps[k] > 0 {
				newJumps[k]--
				continue
			}
			delJumps = append(delJumps, jumpChange{name, j})
		}
		if x.empty() && old.canary != nil {
			ts.index = old.index
			ts.canary, ts.rest, ts.offset = old.canary, old.rest, old.offset
		}
		txns = append(txns, x)
		next[name] = ts
	}
	for _, d := range delJumps {
		if err := s.nf.DeleteJump(ctx, d.table, d.jump.Chain, d.jump.Rule); err != nil {
			return res, fmt.Errorf("partial apply: %w", err)
		}
		res.JumpsDeleted++
	}
	n, err := restore(ctx, s.nf, txns)
	if err != nil {
		return res, fmt.Errorf("partial apply: %w", err)
	}
	res.Rules = n
	for i := len(addJumps) - 1; i >= 0; i-- {
		a := addJumps[i]
		ok, err := s.nf.EnsureJump(ctx, a.table, a.jump.Chain, a.jump.Rule)
		if err != nil {
			return res, fmt.Errorf("partial apply: %w", err)
		}
		if ok {
			res.JumpsAdded++
		}
	}
	s.state = next
	res.ChainsWritten, res.ChainsDeleted = len(res.Written), len(res.Deleted)
	sort.Strings(res.Written)
	sort.Strings(res.Deleted)
	return res, nil
}

// Reconcile checks that the kernel still holds the last applied Ruleset and
// re-applies it in full when it does not (or when the last apply failed). It
// reports whether it repaired anything.
//
// Reading a large table is not free (iptables-save of 70,000 rules costs about
// 1.4 s of CPU on nft), so most calls run a canary check, as kube-proxy's
// canary chains do: the jump rules, the top of the dispatch tree and a few
// rotating chains, each read with `iptables -S CHAIN`. Every FullCheckEvery-th
// call compares every owned chain and jump with iptables-save output. Live
// rules are compared after normalizing both sides (see normalizeRule), and once
// equal the kernel's own text of a chain is remembered by hash, so later
// checks of an unchanged chain only hash.
func (s *Syncer) Reconcile(ctx context.Context) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.desired == nil {
		return false, nil
	}
	if s.dirty {
		s.log.Info("re-applying after a failed apply")
		if _, err := s.converge(ctx, true); err != nil {
			return false, fmt.Errorf("repairing netfilter: %w", err)
		}
		s.repairs++
		return true, nil
	}
	s.checks++
	full := (s.checks-1)%s.fullEvery == 0
	var drift []drifted
	var err error
	if full {
		drift, err = s.fullCheck(ctx)
	} else {
		drift = s.canaryCheck(ctx)
	}
	if err != nil {
		return false, fmt.Errorf("checking netfilter for drift: %w", err)
	}
	if len(drift) == 0 {
		return false, nil
	}
	shown := make([]string, 0, 5)
	for i := 0; i < len(drift) && i < cap(shown); i++ {
		shown = append(shown, drift[i].String())
	}
	s.log.Warn("netfilter drifted from the applied ruleset; re-applying", "full_check", full,
		"drifted", len(drift), "first", shown)
	if _, err := s.converge(ctx, true); err != nil {
		return false, fmt.Errorf("repairing netfilter: %w", err)
	}
	s.repairs++
	s.adoptAfterRepair(ctx, drift)
	return true, nil
}

// drifted is one difference between the kernel and the applied state.
type drifted struct {
	table, chain string
	why          string
}

func (d drifted) String() string { return d.table + "/" + d.chain + ": " + d.why }

// matches reports whether live, the kernel's rules of the chain, are the
// applied ones, and remembers the kernel's form when they are.
func (c *chainState) matches(live []string) bool {
	h := hashRules(live)
	if c.liveOK && h == c.live {
		return true
	}
	if !c.normOK {
		c.norm, c.normOK = hashNormalized(c.rules), true
	}
	if hashNormalized(live) != c.norm {
		return false
	}
	c.live, c.liveOK = h, true
	return true
}

func hashNormalized(rules []string) [32]byte {
	n := make([]string, len(rules))
	for i, r := range rules {
		n[i] = normalizeRule(r)
	}
	return hashRules(n)
}

// compareJumps reports the built-in chains whose owned jumps (rules whose
// target starts with OwnedPrefix) are not exactly the applied ones.
func compareJumps(table string, want []Jump, live map[string][]string) []drifted {
	wantBy := map[string]map[string]int{}
	for _, j := range want {
		if wantBy[j.Chain] == nil {
			wantBy[j.Chain] = map[string]int{}
		}
		wantBy[j.Chain][jumpKey(j.Chain, j.Rule)]++
	}
	chains := make([]string, 0, len(live))
	for c := range live {
		if isBuiltin(table, c) {
			chains = append(chains, c)
		}
	}
	sort.Strings(chains)
	var out []drifted
	for _, c := range chains {
		got := map[string]int{}
		for _, r := range live[c] {
			args := splitRule(r)
			if strings.HasPrefix(ruleTarget(args), OwnedPrefix) {
				got[jumpKey(c, args)]++
			}
		}
		w := wantBy[c]
		same := len(got) == len(w)
		for k, n := range w {
			if got[k] != n {
				same = false
			}
		}
		if !same {
			out = append(out, drifted{table, c, "jumps into owned chains differ"})
		}
	}
	return out
}

// canaryChains returns the chains the canary reads this time: the top of the
// dispatch tree and the next window of the others.
func (s *Syncer) canaryChains(ts *tableState) []string {
	if ts.canary == nil {
		seen := map[string]bool{}
		var queue []string
		for _, j := range ts.jumps {
			if t := ruleTarget(j.Rule); ts.get(t) != nil && !seen[t] {
				seen[t] = true
				queue = append(queue, t)
			}
		}
		canary := []string{}
		for len(queue) > 0 && len(canary) < s.canaryTop {
			c := queue[0]
			queue = queue[1:]
			canary = append(canary, c)
			for _, r := range ts.get(c).rules {
				if t := ruleTarget(splitRule(r)); ts.get(t) != nil && !seen[t] {
					seen[t] = true
					queue = append(queue, t)
				}
			}
		}
		inCanary := make(map[string]bool, len(canary))
		for _, c := range canary {
			inCanary[c] = true
		}
		rest := make([]string, 0, len(ts.names))
		for _, c := range ts.names {
			if !inCanary[c] {
				rest = append(rest, c)
			}
		}
		ts.canary, ts.rest = canary, rest
	}
	out := append([]string(nil), ts.canary...)
	n := min(s.canarySample, len(ts.rest))
	for i := 0; i < n; i++ {
		out = append(out, ts.rest[(ts.offset+i)%len(ts.rest)])
	}
	if len(ts.rest) > 0 {
		ts.offset = (ts.offset + n) % len(ts.rest)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// canaryCheck reads the jumps' built-in chains and the canary chains of each
// table. A chain that cannot be read (deleted by hand) counts as drift.
func (s *Syncer) canaryCheck(ctx context.Context) []drifted {
	var out []drifted
	for _, name := range sortedKeys(s.state) {
		ts := s.state[name]
		var list []string
		for _, j := range ts.jumps {
			if !contains(list, j.Chain) {
				list = append(list, j.Chain)
			}
		}
		nb := len(list)
		list = append(list, s.canaryChains(ts)...)
		if len(list) == 0 {
			continue
		}
		live, err := s.nf.ListRules(ctx, name, list)
		if err != nil {
			out = append(out, drifted{name, "*", err.Error()})
			continue
		}
		out = append(out, compareJumps(name, ts.jumps, live)...)
		for _, c := range list[nb:] {
			if !ts.get(c).matches(live[c]) {
				out = append(out, drifted{name, c, "rules differ"})
			}
		}
	}
	return out
}

// fullCheck compares every owned chain and jump of every table with
// iptables-save output.
func (s *Syncer) fullCheck(ctx context.Context) ([]drifted, error) {
	var out []drifted
	for _, name := range sortedKeys(s.state) {
		ts := s.state[name]
		text, err := s.nf.Save(ctx, name)
		if err != nil {
			return nil, err
		}
		ix, err := indexSave(text, &s.scratch)
		if err != nil {
			return nil, err
		}
		builtin := map[string][]string{}
		for _, c := range ix.chains {
			switch {
			case isBuiltin(name, c):
				builtin[c], _ = ix.rules(c)
			case strings.HasPrefix(c, OwnedPrefix) && ts.get(c) == nil:
				out = append(out, drifted{name, c, "stale owned chain"})
			}
		}
		out = append(out, compareJumps(name, ts.jumps, builtin)...)
		for i, c := range ts.names {
			cs := ts.states[i]
			lc, ok := ix.index[c]
			if !ok {
				out = append(out, drifted{name, c, "missing"})
				continue
			}
			if cs.liveOK && lc.hash == cs.live {
				continue
			}
			rules, _ := ix.rules(c)
			if !cs.matches(rules) {
				out = append(out, drifted{name, c, "rules differ"})
			}
		}
	}
	return out, nil
}

// adoptAfterRepair reads the chains that differed once more right after the
// re-apply. If one still differs, the kernel prints what weir wrote in a form
// normalizeRule does not know; its text is then taken as the applied form, so
// the Syncer does not re-apply on every resync.
func (s *Syncer) adoptAfterRepair(ctx context.Context, drift []drifted) {
	byTable := map[string][]string{}
	for _, d := range drift {
		if ts := s.state[d.table]; ts != nil && ts.get(d.chain) != nil {
			byTable[d.table] = append(byTable[d.table], d.chain)
		}
	}
	for table, chains := range byTable {
		if len(chains) > 64 {
			continue // a flushed table, not a normalization gap
		}
		live, err := s.nf.ListRules(ctx, table, chains)
		if err != nil {
			continue
		}
		for _, c := range chains {
			cs := s.state[table].get(c)
			if !cs.matches(live[c]) {
				s.log.Warn("kernel prints an owned chain differently from what was applied; adopting its form",
					"table", table, "chain", c)
				cs.live, cs.liveOK = hashRules(live[c]), true
			}
		}
	}
}

// sortedChains returns pointers to chains in name order; Render's chains
// are in that order already.
func sortedChains(chains []Chain) []*Chain {
	out := make([]*Chain, len(chains))
	for i := range chains {
		out[i] = &chains[i]
	}
	if !slices.IsSortedFunc(out, func(a, b *Chain) int { return strings.Compare(a.Name, b.Name) }) {
		slices.SortStableFunc(out, func(a, b *Chain) int { return strings.Compare(a.Name, b.Name) })
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
