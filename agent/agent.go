// Package agent is the per-host daemon loop: it fetches spec revisions from a
// source, validates them, computes this host's part of the cluster-wide plan
// from the alive members and the health every host reports, applies it to
// netfilter, keeps the last good revision (in memory and on disk) when a newer
// one is rejected, probes the health checks of its own guests, announces its
// state and failing checks over gossip, and serves the HTTP API (/status,
// /balancers/NAME, /rules, /healthz, /refresh, /metrics, /keys).
//
// One worker goroutine plans and applies; every trigger (source change, gossip
// membership change, revision hint, resync tick, POST /refresh) only marks work
// as pending, so bursts coalesce into one pass and passes are spaced by a
// minimum interval. Fetching runs beside it, one fetch at a time, and hands
// its answer to the worker, so a source that hangs never delays a drift
// repair or a membership change. Every fetch and every pass has a deadline.
package agent

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"weir/agent/health"
	"weir/agent/source"
	"weir/cluster"
	"weir/reconcile/netfilter"
	"weir/reconcile/plan"
	"weir/reconcile/render"
	"weir/spec"
)

// Defaults for Config's zero values.
const (
	DefaultResync       = 30 * time.Second
	DefaultMinInterval  = 200 * time.Millisecond
	DefaultSettleCheck  = time.Second
	DefaultLeaveTimeout = 5 * time.Second
	// DefaultFetchTimeout bounds one fetch from the spec source: listing,
	// downloading and reading a revision.
	DefaultFetchTimeout = time.Minute
	// DefaultPassTimeout bounds one reconcile pass: planning, applying and
	// checking for drift. A pass usually takes milliseconds and iptables
	// waits at most a few seconds for the xtables lock, but the first full
	// apply of 10,000 balancers takes seconds on nft (BENCHMARKS.md): the
	// bound leaves room for a loaded host.
	DefaultPassTimeout = 2 * time.Minute
)

// Cluster is what the agent needs from the gossip cluster (weir/cluster's
// *Cluster implements it).
type Cluster interface {
	// SetLocal announces this node's state to the others.
	SetLocal(cluster.NodeState) error
	// Members returns every member seen, including dead and departed ones.
	Members() []cluster.Member
	// AliveHosts returns the names of the members that count as alive hosts
	// (alive or suspect; never observers or strangers).
	AliveHosts() []string
	// SetExpected tells the cluster the Hosts (name → address) of the
	// revision being planned: only members that match one count as alive.
	SetExpected(revision string, hosts map[string]netip.Addr)
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
	// SetHealth reports which endpoint checks of this host's own guests
	// fail; the others take it only from this host.
	SetHealth(unhealthy []spec.CheckID) error
	// UnhealthyChecks returns, by host, the endpoint checks each host
	// that counts (this one included) reports failing.
	UnhealthyChecks() map[string][]spec.CheckID
}

// Syncer applies a host's desired rulesets (IPv4 and IPv6) to netfilter
// atomically per table and family, and repairs drift (weir/reconcile's
// *Syncer, one per family, adapted in the wiring).
type Syncer interface {
	Apply(ctx context.Context, rs render.Rulesets) error
	// Reconcile compares the live ruleset with the last applied one and
	// repairs it when it drifted.
	Reconcile(ctx context.Context) (repaired bool, err error)
}

// Desired is this host's part of a plan.
type Desired struct {
	Digest    string          // digest of the cluster-wide plan; equal on agreeing nodes
	Rulesets  render.Rulesets // by family
	Balancers int             // balancers this host sets, in both families
	Rules     int             // rules in Rulesets
	// Health lists the plan's unhealthy targets and failing-open
	// balancers; nil when there are none.
	Health *cluster.HealthSummary
	// FailOpen names every balancer of the plan that fails open, sorted.
	FailOpen []string
}

// Planner computes this host's part of the plan for a spec, the alive set
// and the health view (weir/reconcile's Assign, Digest and Render, adapted
// in the wiring).
type Planner interface {
	Plan(s *spec.Spec, alive []string, health plan.Health, node string) Desired
}

// PlannerFunc adapts a function to Planner.
type PlannerFunc func(s *spec.Spec, alive []string, health plan.Health, node string) Desired

// Plan calls f.
func (f PlannerFunc) Plan(s *spec.Spec, alive []string, health plan.Health, node string) Desired {
	return f(s, alive, health, node)
}

// LiveRules reads one address family's live netfilter for the API
// (weir/reconcile/netfilter's *IPTables implements it): GET
// /balancers/NAME counts each target's new connections from an owned
// chain's packet counters, and GET /rules names the backend in use.
type LiveRules interface {
	ChainCounters(ctx context.Context, table, chain string) ([]netfilter.RuleCount, error)
	Backend() string // nft or legacy
}

// LoadFunc loads and validates a spec tree; its error lists FILE:LINE messages.
type LoadFunc func(fsys fs.FS) (*spec.Spec, error)

// StatusFunc builds the cluster status about revision from members
// (cluster.BuildStatus).
type StatusFunc func(revision string, members []cluster.Member) cluster.Status

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
	// FetchTimeout bounds one fetch from the source (--fetch-timeout).
	// Like PassTimeout it is enforced as a context deadline, which runs on
	// the wall clock; Clock only judges overruns (Health).
	FetchTimeout time.Duration
	// PassTimeout bounds one reconcile pass.
	PassTimeout time.Duration
	// API limits the HTTP API; see APIConfig.
	API APIConfig
	// GossipEncrypted says whether gossip is encrypted; Status reports it.
	GossipEncrypted bool
	// ReturnMemory hands the heap a pass left over back to the system
	// after the pass (see memoryGovernor). It acts on the whole process:
	// the daemon sets it, tests that run agents side by side do not.
	ReturnMemory bool
	// Build labels weir_build_info.
	Build  Build
	Logger *slog.Logger
	Clock  Clock
}

// KeyManager runs gossip key operations over the cluster (weir/cluster's
// *Cluster implements it); the API serves it on /keys.
type KeyManager interface {
	KeyOperation(ctx context.Context, op cluster.KeyOp, key []byte) (cluster.KeyReport, error)
}

// Deps are the adapters the agent drives. Source, Cluster and Syncer are
// required; Load defaults to a spec.Loader's (which decodes only the files
// that changed since the previous revision), Planner to ReconcilePlanner and
// Status to cluster.BuildStatus. Keys is optional: without it /keys answers
// 501. Probe runs the health checks of this host's guests (default: over the
// network, health.NewNetProbe). Live, by spec.Family, is optional: without
// a family's reader /balancers/NAME reports no connection counts for its
// balancers and /rules names no backend.
type Deps struct {
	Source  source.Source
	Load    LoadFunc
	Cluster Cluster
	Planner Planner
	Syncer  Syncer
	Status  StatusFunc
	Keys    KeyManager
	Probe   health.ProbeFunc
	Live    [2]LiveRules
}

// revisionSpec is one validated revision.
type revisionSpec struct {
	revision string
	spec     *spec.Spec
	fsys     fs.FS // where it was loaded from, for persisting; nil once persisted
}

// appliedState is what is in the kernel, as far as this agent knows.
type appliedState struct {
	revision  string
	digest    string
	alive     []string
	view      plan.UnhealthySet // the health view the plan was made with
	health    *cluster.HealthSummary
	failOpen  []string
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
	memory  *memoryGovernor

	refresh   chan struct{} // fetch now: POST /refresh or the source changed
	fetchDone chan fetched  // the fetch worker's answers; one fetch runs at a time
	running   atomic.Bool
	ready     chan struct{} // closed once the first pass ended or the cluster settled
	readyOnce sync.Once

	prober       *health.Prober // probes this host's own guests
	healthWake   chan struct{}  // a check changed state: publish
	healthReplan chan struct{}  // this host's report changed: replan
	counterSlots chan struct{}  // bounds the counter reads of /balancers at once
	hm           *healthMetrics
	checksRev    string // revision whose checks the prober runs (worker only)

	// Everything below is written only by the worker; mu guards it for readers
	// (HTTP handlers and the metrics collector).
	mu         sync.Mutex
	good       *revisionSpec // last good revision: the one applied or to re-plan
	applied    appliedState
	attempted  string                     // newest revision fetched (lastAttemptedRevision)
	attemptErr error                      // why attempted was rejected (validation or apply)
	applyErr   error                      // why re-planning the good revision failed to apply
	fetchErr   error                      // why the last fetch failed
	passErr    error                      // why the last pass did not finish in time
	saveErr    error                      // why the last good revision could not be saved
	driftGap   time.Duration              // the distance between drift checks (spaceDriftChecks)
	nextDrift  time.Time                  // the next drift check is not due before this
	driftCosts [driftWindow]time.Duration // the last checks' costs, a ring
	driftNext  int                        // where the next cost goes in driftCosts
	unsaved    *revisionSpec              // a last good revision not saved yet
	saved      *savedTree                 // the last good revision as last saved (worker only)
	lastHint   string                     // newest revision hinted by another node
	announced  *cluster.NodeState
	settled    bool
	failures   int // consecutive passes that failed to fetch or apply

	wanted wantedRules // the ruleset handed to the Syncer last: GET /rules

	passStarted  time.Time // when the running pass started; zero between passes
	lastPassEnd  time.Time // when the last pass ended (the loop's start before one)
	fetchStarted time.Time // when the running fetch started; zero when none runs
}

// New returns an agent for cfg driving deps.
func New(cfg Config, deps Deps) (*Agent, error) {
	if cfg.Node == "" {
		return nil, errors.New("agent: node name is required")
	}
	if deps.Source == nil || deps.Cluster == nil || deps.Syncer == nil {
		return nil, errors.New("agent: a source, a cluster and a syncer are required")
	}
	deps.defaults()
	cfg.defaults()
	a := &Agent{
		cfg:          cfg,
		deps:         deps,
		log:          cfg.Logger,
		clock:        cfg.Clock,
		refresh:      make(chan struct{}, 1),
		fetchDone:    make(chan fetched, 1),
		healthWake:   make(chan struct{}, 1),
		healthReplan: make(chan struct{}, 1),
		counterSlots: make(chan struct{}, maxCounterReads),
		memory:       newMemoryGovernor(cfg.ReturnMemory),
		ready:        make(chan struct{}),
	}
	a.prober = a.newProber(deps.Probe)
	a.metrics = newMetrics(a)
	a.registerHealthMetrics()
	return a, nil
}

func (d *Deps) defaults() {
	if d.Load == nil {
		d.Load = new(spec.Loader).Load
	}
	if d.Planner == nil {
		d.Planner = ReconcilePlanner()
	}
	if d.Status == nil {
		d.Status = cluster.BuildStatus
	}
}

// orDefault sets *v to def when it is zero or negative: unset.
func orDefault[T ~int | ~int64](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

func (cfg *Config) defaults() {
	orDefault(&cfg.Resync, DefaultResync)
	orDefault(&cfg.MinInterval, DefaultMinInterval)
	orDefault(&cfg.SettleCheck, DefaultSettleCheck)
	orDefault(&cfg.LeaveTimeout, DefaultLeaveTimeout)
	orDefault(&cfg.FetchTimeout, DefaultFetchTimeout)
	orDefault(&cfg.PassTimeout, DefaultPassTimeout)
	cfg.API = cfg.API.withDefaults()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
}

// Refresh asks the worker to fetch from the source now (POST /refresh, and
// the source's change callback). It never blocks; refreshes arriving while
// one is pending coalesce.
func (a *Agent) Refresh() {
	select {
	case a.refresh <- struct{}{}:
	default:
	}
}

// Running reports whether Run's loop is running.
func (a *Agent) Running() bool { return a.running.Load() }
