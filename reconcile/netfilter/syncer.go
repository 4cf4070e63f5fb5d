package netfilter

import (
	"context"
	"crypto/sha256"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"weir/reconcile/render"
)

// managedTables are always inspected by a full apply, so that owned chains left
// in them by an earlier ruleset are deleted even when the new one has none there.
var managedTables = []string{"filter", "nat"}

// DefaultFullCheckEvery is how many Reconcile calls make one cycle of
// canary checks and one full compare: at 10,000 balancers on nft a full
// compare costs seconds of CPU (iptables-save), a canary tens of
// milliseconds.
const DefaultFullCheckEvery = 10

// SyncerOptions configures NewSyncer. Zero values pick the defaults.
type SyncerOptions struct {
	Logger *slog.Logger
	Now    func() time.Time
	// FullCheckEvery makes every n-th Reconcile (the first included) compare
	// every owned chain through iptables-save; the others run the cheap canary
	// check. Default DefaultFullCheckEvery. 1 compares everything on every
	// call.
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
	desired *render.Ruleset        // the last Ruleset asked for; Reconcile converges to it
	dirty   bool                   // the kernel may differ from state: the next apply is full
	state   map[string]*tableState // what the kernel holds, by table, after the last successful apply
	flows   []render.Flow          // Flows of the last successful apply
	checks  int                    // Reconcile calls that ran a check
	repairs int
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
	jumps  []render.Jump
	// canary is the chain list the canary check reads every time and rest the
	// remaining chains it samples from; both nil until first needed.
	canary, rest []string
	offset       int
}

// newTableState returns the state of chains (unique names) with the given
// states, sorting them by name unless they are sorted already, as Render's
// are.
func newTableState(names []string, states []*chainState, jumps []render.Jump) *tableState {
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
		s.fullEvery = DefaultFullCheckEvery
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
func (s *Syncer) Apply(ctx context.Context, rs *render.Ruleset) (ApplyResult, error) {
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

// hashRules hashes the rules of a chain, one per line, as they stream
// into the hash: no copy of the chain's text is made.
func hashRules(rules []string) [32]byte {
	h := sha256.New()
	for _, r := range rules {
		io.WriteString(h, r)
		h.Write(newline)
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

var newline = []byte{'\n'}

// tableOf returns the table of rs named name, or an empty one.
func tableOf(rs *render.Ruleset, name string) *render.Table {
	for i := range rs.Tables {
		if rs.Tables[i].Name == name {
			return &rs.Tables[i]
		}
	}
	return &render.Table{Name: name}
}

// tableNames returns the sorted union of managedTables, the tables of rs and
// the tables in state.
func (s *Syncer) tableNames(rs *render.Ruleset) []string {
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
	slices.Sort(names)
	return names
}

// jumpKey identifies a jump rule whatever form it was written or printed in.
func jumpKey(chain string, rule []string) string {
	return chain + " " + normalizeRule(JoinRule(rule))
}
