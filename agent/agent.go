// Package agent is the per-host daemon loop: it fetches spec revisions from a
// source, validates them, computes this host's part of the cluster-wide plan
// from the alive members, applies it to netfilter, keeps the last good revision
// (in memory and on disk) when a newer one is rejected, announces its state over
// gossip, and serves the HTTP API (/status, /healthz, /refresh, /metrics).
//
// One worker goroutine does all the work; every trigger (source change, gossip
// membership change, revision hint, resync tick, POST /refresh) only marks work
// as pending, so bursts coalesce into one pass and passes are spaced by a
// minimum interval.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"weir/agent/source"
	"weir/cluster"
	"weir/reconcile/render"
	"weir/spec"
)

// Defaults for Config's zero values.
const (
	DefaultResync       = 30 * time.Second
	DefaultMinInterval  = 200 * time.Millisecond
	DefaultSettleCheck  = time.Second
	DefaultLeaveTimeout = 5 * time.Second
)

// Cluster is what the agent needs from the gossip cluster (weir/cluster's
// *Cluster implements it).
type Cluster interface {
	// SetLocal announces this node's state to the others.
	SetLocal(cluster.NodeState) error
	// Members returns every member seen, including dead and departed ones.
	Members() []cluster.Member
	// AliveHosts returns the names of the non-observer members counted as
	// alive (alive or suspect).
	AliveHosts() []string
	// Settled reports whether the node has joined, or has waited out the settle
	// period without reaching a peer; before that, absence is not evidence of death.
	Settled() bool
	// Changes signals membership changes.
	Changes() <-chan struct{}
	// Hint tells the others that revision exists, so they fetch at once.
	Hint(revision string)
	// Hints delivers revisions other nodes hinted.
	Hints() <-chan string
	// Leave announces a graceful departure.
	Leave(timeout time.Duration) error
}

// Syncer applies a host's desired ruleset to netfilter atomically and repairs
// drift (weir/reconcile's *Syncer, adapted in the wiring).
type Syncer interface {
	Apply(ctx context.Context, rs *render.Ruleset) error
	// Reconcile compares the live ruleset with the last applied one and
	// repairs it when it drifted.
	Reconcile(ctx context.Context) (repaired bool, err error)
}

// Desired is this host's part of a plan.
type Desired struct {
	Digest    string // digest of the cluster-wide plan; equal on agreeing nodes
	Ruleset   *render.Ruleset
	Balancers int // balancers this host sets
	Rules     int // rules in Ruleset
}

// Planner computes this host's part of the plan for a spec and alive set
// (weir/reconcile's Assign, Digest and Render, adapted in the wiring).
type Planner interface {
	Plan(s *spec.Spec, alive []string, node string) Desired
}

// PlannerFunc adapts a function to Planner.
type PlannerFunc func(s *spec.Spec, alive []string, node string) Desired

// Plan calls f.
func (f PlannerFunc) Plan(s *spec.Spec, alive []string, node string) Desired {
	return f(s, alive, node)
}

// LoadFunc loads and validates a spec tree; its error lists FILE:LINE messages.
type LoadFunc func(fsys fs.FS) (*spec.Spec, error)

// StatusFunc builds the DESIGN.md status object (cluster.BuildStatus).
type StatusFunc func(revision string, members []cluster.Member) any

// Config holds the agent's settings. Zero durations take the defaults above.
type Config struct {
	Node string // this host's name (--node)
	// StateDir holds the last good revision's spec files; empty disables persistence.
	StateDir string
	// Resync is how often the live rules are checked for drift (--resync).
	Resync time.Duration
	// MinInterval is the least time between two passes; triggers arriving
	// sooner coalesce into the next pass.
	MinInterval time.Duration
	// SettleCheck is how often an unsettled agent polls Cluster.Settled.
	SettleCheck time.Duration
	// LeaveTimeout bounds the graceful leave at shutdown.
	LeaveTimeout time.Duration
	// WebhookSecret, when set, is required on POST /refresh as a GitHub-style
	// X-Hub-Signature-256 HMAC of the body or as a bearer token.
	WebhookSecret []byte
	Logger        *slog.Logger
	Clock         Clock
}

// Deps are the adapters the agent drives. Source, Cluster and Syncer are
// required; Load defaults to spec.Load, Planner to ReconcilePlanner and Status
// to cluster.BuildStatus.
type Deps struct {
	Source  source.Source
	Load    LoadFunc
	Cluster Cluster
	Planner Planner
	Syncer  Syncer
	Status  StatusFunc
}

// revisionSpec is one validated revision.
type revisionSpec struct {
	revision string
	spec     *spec.Spec
	fsys     fs.FS // where it was loaded from, for persisting
}

// appliedState is what is in the kernel, as far as this agent knows.
type appliedState struct {
	revision  string
	digest    string
	alive     []string
	balancers int
	rules     int
	at        time.Time
}

// Agent is one host's daemon. Create it with New and start it with Run.
type Agent struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	clock   Clock
	metrics *metrics

	sourceChanged chan struct{}
	refresh       chan struct{}
	running       atomic.Bool

	// Everything below is written only by the worker; mu guards it for readers
	// (HTTP handlers and the metrics collector).
	mu         sync.Mutex
	good       *revisionSpec // last good revision: the one applied or to re-plan
	applied    appliedState
	attempted  string // newest revision fetched (lastAttemptedRevision)
	attemptErr error  // why attempted was rejected (validation or apply)
	applyErr   error  // why re-planning the good revision failed to apply
	fetchErr   error  // why the last fetch failed
	lastHint   string // newest revision hinted by another node
	announced  *cluster.NodeState
	settled    bool
	failures   int // consecutive passes that failed to fetch or apply
}

// New returns an agent for cfg driving deps.
func New(cfg Config, deps Deps) (*Agent, error) {
	if cfg.Node == "" {
		return nil, errors.New("agent: node name is required")
	}
	if deps.Source == nil || deps.Cluster == nil || deps.Syncer == nil {
		return nil, errors.New("agent: a source, a cluster and a syncer are required")
	}
	if deps.Load == nil {
		deps.Load = spec.Load
	}
	if deps.Planner == nil {
		deps.Planner = ReconcilePlanner()
	}
	if deps.Status == nil {
		deps.Status = buildStatus
	}
	if cfg.Resync <= 0 {
		cfg.Resync = DefaultResync
	}
	if cfg.MinInterval <= 0 {
		cfg.MinInterval = DefaultMinInterval
	}
	if cfg.SettleCheck <= 0 {
		cfg.SettleCheck = DefaultSettleCheck
	}
	if cfg.LeaveTimeout <= 0 {
		cfg.LeaveTimeout = DefaultLeaveTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	a := &Agent{
		cfg:           cfg,
		deps:          deps,
		log:           cfg.Logger,
		clock:         cfg.Clock,
		sourceChanged: make(chan struct{}, 1),
		refresh:       make(chan struct{}, 1),
	}
	a.metrics = newMetrics(a)
	return a, nil
}

// Refresh asks the worker to fetch from the source now (POST /refresh). It
// never blocks; refreshes arriving while one is pending coalesce.
func (a *Agent) Refresh() { signal(a.refresh) }

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// pending is the work the next pass does.
type pending struct {
	fetch  bool // ask the source for its latest revision
	replan bool // membership may have changed: recompute and apply if different
	resync bool // check the live rules for drift
	retry  bool // an earlier pass failed: fetch and apply again
}

func (p pending) any() bool { return p.fetch || p.replan || p.resync || p.retry }

// Run runs the loop until ctx ends, then leaves the gossip cluster and returns.
// The rules stay in the kernel: only `weir cleanup` removes them.
func (a *Agent) Run(ctx context.Context) error {
	if !a.running.CompareAndSwap(false, true) {
		return errors.New("agent: already running")
	}
	defer a.running.Store(false)

	a.restore()

	watchCtx, stopWatch := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { a.deps.Source.Watch(watchCtx, func() { signal(a.sourceChanged) }) })
	defer func() {
		stopWatch()
		wg.Wait()
	}()

	changes := a.deps.Cluster.Changes()
	hints := a.deps.Cluster.Hints()
	p := pending{fetch: true}
	var lastPass, retryAt time.Time
	now := a.clock.Now()
	nextResync := now.Add(a.cfg.Resync)
	nextSettle := now // check at once
	for {
		now = a.clock.Now()
		if !now.Before(nextResync) {
			p.resync = true
			nextResync = now.Add(a.cfg.Resync)
		}
		if !retryAt.IsZero() && !now.Before(retryAt) {
			p.retry = true
			retryAt = time.Time{}
		}
		if !a.isSettled() && !now.Before(nextSettle) {
			if a.deps.Cluster.Settled() {
				a.setSettled()
				p.replan = true
				a.log.Info("cluster settled; hosts never seen now count as not alive")
			} else {
				nextSettle = now.Add(a.cfg.SettleCheck)
			}
		}
		if p.any() && (lastPass.IsZero() || now.Sub(lastPass) >= a.cfg.MinInterval) {
			if a.pass(ctx, p) {
				retryAt = a.clock.Now().Add(a.retryBackoff())
			} else {
				retryAt = time.Time{}
			}
			p = pending{}
			lastPass = a.clock.Now()
			if ctx.Err() != nil {
				return a.leave()
			}
			continue
		}

		deadline := nextResync
		if !retryAt.IsZero() && retryAt.Before(deadline) {
			deadline = retryAt
		}
		if !a.isSettled() && nextSettle.Before(deadline) {
			deadline = nextSettle
		}
		if p.any() {
			if due := lastPass.Add(a.cfg.MinInterval); due.Before(deadline) {
				deadline = due
			}
		}
		select {
		case <-ctx.Done():
			return a.leave()
		case <-a.sourceChanged:
			p.fetch = true
		case <-a.refresh:
			p.fetch = true
		case rev, ok := <-hints:
			if !ok {
				hints = nil
				continue
			}
			if a.noteHint(rev) {
				p.fetch = true
			}
		case _, ok := <-changes:
			if !ok {
				changes = nil
				continue
			}
			p.replan = true
		case <-a.clock.After(deadline.Sub(now)):
		}
	}
}

// leave departs the gossip cluster, leaving the rules in place.
func (a *Agent) leave() error {
	a.log.Info("shutting down: leaving the gossip cluster; rules stay in place")
	if err := a.deps.Cluster.Leave(a.cfg.LeaveTimeout); err != nil {
		return fmt.Errorf("leaving the gossip cluster: %w", err)
	}
	return nil
}

// retryBackoff is the wait before retrying after consecutive failed passes:
// 1s, 2s, 4s … capped at the resync interval.
func (a *Agent) retryBackoff() time.Duration {
	a.mu.Lock()
	n := a.failures
	a.mu.Unlock()
	d := time.Second << min(max(n-1, 0), 10)
	return min(d, a.cfg.Resync)
}

func (a *Agent) isSettled() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.settled
}

func (a *Agent) setSettled() {
	a.mu.Lock()
	a.settled = true
	a.mu.Unlock()
}

// noteHint records a hinted revision and reports whether it is worth a fetch:
// a hint for a revision this agent already attempted is ignored.
func (a *Agent) noteHint(rev string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lastHint = rev
	return rev != a.attempted && (a.good == nil || rev != a.good.revision)
}

// pass does one round of pending work and reports whether it failed to fetch
// or to apply, so that the loop schedules a retry with backoff.
func (a *Agent) pass(ctx context.Context, p pending) (failed bool) {
	start := a.clock.Now()
	defer func() { a.metrics.duration.Observe(a.clock.Now().Sub(start).Seconds()) }()

	if p.retry || p.resync {
		p.fetch = p.fetch || p.retry
		a.mu.Lock()
		if errors.Is(a.attemptErr, errApply) {
			// A revision that failed to apply (not to validate) is tried again,
			// as Flux retries a failed reconciliation.
			a.attempted = ""
			p.fetch = true
		}
		a.mu.Unlock()
	}

	var cand *revisionSpec
	fetchFailed := false
	if p.fetch {
		cand, fetchFailed = a.fetch(ctx)
	}
	if ctx.Err() != nil {
		return false
	}
	a.apply(ctx, cand, p.resync, false)
	a.announce()

	a.mu.Lock()
	defer a.mu.Unlock()
	// Judged on the state, not on this pass alone: a pass that only re-planned
	// must not cancel the retry of an earlier failed fetch.
	failed = fetchFailed || a.fetchErr != nil || errors.Is(a.attemptErr, errApply) || a.applyErr != nil
	if failed {
		a.failures++
	} else {
		a.failures = 0
	}
	return failed
}

// errApply marks attempt errors that came from applying, not validating.
var errApply = errors.New("apply failed")

// fetch asks the source for its latest revision and validates it when it is
// new. It returns the validated candidate, or nil when there is nothing new
// to apply. A rejected revision becomes the attempted one at once; a valid
// one when apply has tried it, so that readers never see a new attempted
// revision with the previous one's outcome.
func (a *Agent) fetch(ctx context.Context) (cand *revisionSpec, failed bool) {
	snap, err := a.deps.Source.Latest(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, false
		}
		a.metrics.fetchErrors.Inc()
		a.mu.Lock()
		a.fetchErr = fmt.Errorf("fetching specs: %w", err)
		a.mu.Unlock()
		a.log.Error("fetching specs failed; keeping the applied revision", "err", err)
		return nil, true
	}
	a.mu.Lock()
	a.fetchErr = nil
	known := snap.Revision == a.attempted
	goodRev := ""
	if a.good != nil {
		goodRev = a.good.revision
	}
	hinted := snap.Revision == a.lastHint
	a.mu.Unlock()
	if known {
		return nil, false
	}
	if snap.Revision != goodRev && !hinted {
		// New to this agent and nobody told us: tell the others, so one fetch
		// anywhere makes every agent fetch at once.
		a.deps.Cluster.Hint(snap.Revision)
	}
	s, err := a.deps.Load(snap.FS)
	if err != nil {
		a.metrics.specErrors.Inc()
		a.mu.Lock()
		a.attempted, a.attemptErr = snap.Revision, fmt.Errorf("rejected revision %s: %w", snap.Revision, err)
		a.mu.Unlock()
		a.log.Error("rejected revision; keeping the last good one", "revision", snap.Revision, "last_good", goodRev, "err", err)
		return nil, false
	}
	a.log.Info("fetched revision", "revision", snap.Revision, "hosts", len(s.Hosts), "balancers", len(s.Balancers))
	return &revisionSpec{revision: snap.Revision, spec: s, fsys: snap.FS}, false
}

// apply plans and applies cand (a newly validated revision) or, without one,
// re-plans the last good revision for the current membership. With resync it
// also checks the live rules for drift. Unless force is set, a re-plan that
// gives the plan already applied changes nothing.
func (a *Agent) apply(ctx context.Context, cand *revisionSpec, resync, force bool) {
	a.mu.Lock()
	good, applied, applyErr := a.good, a.applied, a.applyErr
	a.mu.Unlock()

	target := cand
	if target == nil {
		target = good
	}
	if target == nil {
		// Nothing valid yet: adopt whatever is in the kernel and wait.
		return
	}
	alive := a.alive(target.spec)
	d := a.deps.Planner.Plan(target.spec, alive, a.cfg.Node)
	if cand == nil && !force && applyErr == nil && applied.revision == target.revision && applied.digest == d.Digest {
		if resync {
			a.checkDrift(ctx)
		}
		return
	}

	err := a.deps.Syncer.Apply(ctx, d.Ruleset)
	if err != nil {
		a.metrics.applyErrors.Inc()
		a.log.Error("applying rules failed", "revision", target.revision, "digest", d.Digest, "err", err)
		if cand != nil {
			a.mu.Lock()
			a.attempted, a.attemptErr = cand.revision, fmt.Errorf("applying revision %s: %w: %w", cand.revision, errApply, err)
			a.mu.Unlock()
			if good != nil {
				// The owned chains of one table may have changed before another
				// failed; put the last good revision back.
				a.apply(ctx, nil, false, true)
			}
			return
		}
		a.mu.Lock()
		a.applyErr = fmt.Errorf("applying revision %s: %w", target.revision, err)
		a.mu.Unlock()
		return
	}

	now := a.clock.Now()
	a.mu.Lock()
	a.applied = appliedState{revision: target.revision, digest: d.Digest, alive: alive, balancers: d.Balancers, rules: d.Rules, at: now}
	a.applyErr = nil
	if cand != nil {
		a.good = cand
		a.attempted, a.attemptErr = cand.revision, nil
	}
	a.mu.Unlock()
	a.metrics.setApplied(target.revision, d, now)
	a.log.Info("applied rules", "revision", target.revision, "digest", d.Digest, "alive", alive, "balancers", d.Balancers, "rules", d.Rules)

	if cand != nil && (good == nil || good.revision != cand.revision) && a.cfg.StateDir != "" {
		if err := saveLastGood(a.cfg.StateDir, cand.revision, cand.fsys); err != nil {
			a.log.Error("persisting the last good revision failed", "revision", cand.revision, "err", err)
		}
	}
}

// checkDrift compares the live rules with the applied ones and repairs drift.
func (a *Agent) checkDrift(ctx context.Context) {
	repaired, err := a.deps.Syncer.Reconcile(ctx)
	if err != nil {
		a.metrics.applyErrors.Inc()
		a.log.Error("drift check failed", "err", err)
		a.mu.Lock()
		a.applyErr = fmt.Errorf("repairing drift: %w", err)
		a.mu.Unlock()
		return
	}
	if repaired {
		a.metrics.driftRepairs.Inc()
		a.log.Warn("live rules had drifted from the applied revision; repaired")
	}
}

// alive is the alive set given to the planner. Before the cluster has settled,
// a host that has not been seen yet may simply not have been reached, so every
// host of the spec counts as alive: a freshly started agent never removes a
// healthy target. After that, hosts never seen count as not alive. The local
// node is alive by definition.
func (a *Agent) alive(s *spec.Spec) []string {
	set := map[string]bool{a.cfg.Node: true}
	for _, h := range a.deps.Cluster.AliveHosts() {
		set[h] = true
	}
	if !a.isSettled() {
		for _, h := range s.Hosts {
			set[h.Name] = true
		}
	}
	out := make([]string, 0, len(set))
	for h := range set {
		out = append(out, h)
	}
	slices.Sort(out)
	return out
}

// announce publishes this node's state over gossip when it changed.
func (a *Agent) announce() {
	a.mu.Lock()
	ns := cluster.NodeState{
		Revision:  a.applied.revision,
		Digest:    a.applied.digest,
		Balancers: a.applied.balancers,
		Rules:     a.applied.rules,
		Error:     a.errorTextLocked(),
	}
	same := a.announced != nil && *a.announced == ns
	if !same {
		a.announced = &ns
	}
	a.mu.Unlock()
	if same {
		return
	}
	if err := a.deps.Cluster.SetLocal(ns); err != nil {
		a.log.Error("announcing node state over gossip failed", "err", err)
	}
}

// errorTextLocked is the node's current error: a rejected or unappliable
// revision, a failing re-plan, and a failing fetch, one per line.
func (a *Agent) errorTextLocked() string {
	err := errors.Join(a.attemptErr, a.applyErr, a.fetchErr)
	if err == nil {
		return ""
	}
	return err.Error()
}

// restore loads the persisted last good revision as the one to fall back on,
// without applying it: the first pass applies it only if the source fails or
// offers nothing valid.
func (a *Agent) restore() {
	if a.cfg.StateDir == "" {
		return
	}
	rev, fsys, err := loadLastGood(a.cfg.StateDir)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		a.log.Warn("reading the persisted last good revision failed", "err", err)
		return
	}
	s, err := a.deps.Load(fsys)
	if err != nil {
		a.log.Warn("the persisted last good revision no longer validates; ignoring it", "revision", rev, "err", err)
		return
	}
	a.mu.Lock()
	a.good = &revisionSpec{revision: rev, spec: s, fsys: fsys}
	a.mu.Unlock()
	a.log.Info("restored the last good revision from the state directory", "revision", rev)
}

// State is the agent's own view of itself, for /status and tests.
type State struct {
	Node            string    `json:"node"`
	Revision        string    `json:"revision"` // applied (last good) revision
	Digest          string    `json:"digest"`
	Latest          string    `json:"latest"` // newest revision fetched (attempted)
	Balancers       int       `json:"balancers"`
	Rules           int       `json:"rules"`
	Alive           []string  `json:"alive"` // alive set of the applied plan
	Settled         bool      `json:"settled"`
	Error           string    `json:"error"`
	LastAppliedTime time.Time `json:"lastApplied"`
}

// State returns the agent's current state.
func (a *Agent) State() State {
	a.mu.Lock()
	defer a.mu.Unlock()
	return State{
		Node:            a.cfg.Node,
		Revision:        a.applied.revision,
		Digest:          a.applied.digest,
		Latest:          a.attempted,
		Balancers:       a.applied.balancers,
		Rules:           a.applied.rules,
		Alive:           slices.Clone(a.applied.alive),
		Settled:         a.settled,
		Error:           a.errorTextLocked(),
		LastAppliedTime: a.applied.at,
	}
}

// Running reports whether Run's loop is running.
func (a *Agent) Running() bool { return a.running.Load() }
