package health

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"weir/spec"
)

// DefaultMaxConcurrent is how many probes a Prober runs at once by default.
// Probes that answer take well under a millisecond, so this only matters
// when endpoints hang until their timeout: 128 slots keep 256 hanging
// endpoints (timeout 1 s, interval 2 s) on schedule while bounding the
// sockets and goroutines a host spends on checks. Beyond that, due probes
// wait for a slot, oldest first.
const DefaultMaxConcurrent = 128

// Transition is one change of an endpoint check's state.
type Transition struct {
	Check
	From, To State
	At       time.Time
	// Err is the last failure's message when To is Unhealthy.
	Err string
	// Removed is set when Update dropped a check whose state was known:
	// To is Unknown, and the check is no longer probed or reported.
	Removed bool
}

// Status is the current state of one endpoint check.
type Status struct {
	Check
	State State
	Since time.Time // when State was entered; zero while Unknown
	Err   string    // the failure that made it Unhealthy
}

// Config tunes a Prober; the zero value probes over the network.
type Config struct {
	// Probe runs one check; default NewNetProbe().Probe. It must return
	// soon after its context is done.
	Probe ProbeFunc
	// OnTransition is called once for each state change, in order, from
	// the goroutine running Run; it must not block. Snapshot already
	// shows the new state when it is called.
	OnTransition func(Transition)
	// MaxConcurrent bounds the probes in flight; default
	// DefaultMaxConcurrent.
	MaxConcurrent int
	// Logger gets one line per transition; default: none.
	Logger *slog.Logger
	// Now is the clock results are stamped with; default time.Now.
	Now func() time.Time
	// Jitter returns the delay of a new check's first probe, in [0, d) for
	// its interval d, so that checks added together spread over the
	// interval; default uniformly random.
	Jitter func(d time.Duration) time.Duration
}

// Prober probes a set of endpoint checks, each every interval, and keeps the
// state of each. Update sets the checks, Run probes them until its context
// is done, Snapshot reads the states. Update and Snapshot are safe for
// concurrent use, also while Run runs.
type Prober struct {
	cfg     Config
	running atomic.Bool

	mu      sync.Mutex
	pending []Check // the last Update not yet applied by Run
	changed bool    // pending is set
	status  map[spec.CheckID]Status

	wake chan struct{} // an Update is pending
	s    scheduler     // owned by Run
}

// New returns a Prober with no checks.
func New(cfg Config) *Prober {
	if cfg.Probe == nil {
		cfg.Probe = NewNetProbe().Probe
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = DefaultMaxConcurrent
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Jitter == nil {
		cfg.Jitter = func(d time.Duration) time.Duration {
			if d <= 0 {
				return 0
			}
			return rand.N(d)
		}
	}
	return &Prober{
		cfg:    cfg,
		status: map[spec.CheckID]Status{},
		wake:   make(chan struct{}, 1),
		s:      newScheduler(cfg.MaxConcurrent),
	}
}

// Update replaces the set of checks (as ChecksFor returns them). Checks
// that stay keep their state and schedule; new ones start Unknown, first
// probed within one interval; dropped ones stop being probed (a probe in
// flight is abandoned) and leave Snapshot. A check whose parameters change
// has a new ID, so it starts over. Run applies it; before Run, the next Run
// starts with it.
func (p *Prober) Update(checks []Check) {
	p.mu.Lock()
	p.pending, p.changed = slices.Clone(checks), true
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Snapshot returns the state of every check, sorted by ID.
func (p *Prober) Snapshot() []Status {
	p.mu.Lock()
	out := make([]Status, 0, len(p.status))
	for _, st := range p.status {
		out = append(out, st)
	}
	p.mu.Unlock()
	slices.SortFunc(out, func(a, b Status) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	return out
}

// ErrRunning is returned by Run when another Run of the Prober is running.
var ErrRunning = errors.New("health: the prober is already running")

// Run probes the checks until ctx is done, then waits for the probes in
// flight (each ends within its timeout, at once when ctx is cancelled) and
// returns nil: when Run returns, no goroutine or socket of it is left. A
// later Run goes on with the same checks and states.
func (p *Prober) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer p.running.Store(false)
	probeCtx, cancel := context.WithCancel(ctx)
	defer p.s.stop(cancel)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if checks, ok := p.takePending(); ok {
			p.apply(checks)
		}
		var tick <-chan time.Time
		if wait, ok := p.s.startDue(probeCtx, p.cfg.Now(), p.probe); ok {
			timer.Reset(wait)
			tick = timer.C
		}
		select {
		case <-ctx.Done():
			return nil
		case <-p.wake:
		case r := <-p.s.results:
			p.record(r)
		case <-tick:
		}
	}
}

// takePending returns the checks of the last Update, if Run has not
// applied them yet.
func (p *Prober) takePending() ([]Check, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	checks, ok := p.pending, p.changed
	p.pending, p.changed = nil, false
	return checks, ok
}

// probe runs one check under its timeout; it is what startDue starts.
func (p *Prober) probe(ctx context.Context, c spec.EndpointCheck) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	err := p.cfg.Probe(ctx, c)
	return p.cfg.Now(), err
}
