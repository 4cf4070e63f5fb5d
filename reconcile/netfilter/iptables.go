package netfilter

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netns"

	"weir/spec"
)

// Backends NewIPTables accepts.
const (
	BackendAuto   = "auto"   // whatever the host's `iptables` is (Debian: nft)
	BackendNFT    = "nft"    // iptables-nft, iptables-nft-restore, iptables-nft-save
	BackendLegacy = "legacy" // iptables-legacy and its restore/save
)

// IPTablesOptions configures NewIPTables.
type IPTablesOptions struct {
	// Family chooses the binaries: iptables for spec.IPv4 (the zero
	// value), ip6tables for spec.IPv6. The backend is detected, or looked
	// up, per family: ip6tables may be legacy where iptables is nft.
	Family spec.Family
	// Backend is BackendAuto (also ""), BackendNFT or BackendLegacy. Auto follows
	// the host's `iptables` binary (its --version says "nf_tables" or
	// "legacy"), as go-iptables does, so weir writes where the admin's tools look.
	Backend string
	// Netns, when set, is the name of a network namespace under /run/netns that
	// every operation runs in. Commands are started from an OS thread locked
	// to the goroutine and switched into the namespace (as CNI plugins do), so
	// the iptables binaries, go-iptables and netlink all act inside it without
	// an `ip netns exec` wrapper. Tests and benchmarks use it; the agent does
	// not.
	Netns string
	// LockWait is how long a command waits for the xtables lock that another
	// program (a firewall manager, an admin's iptables) holds, as
	// `-w SECONDS` (default DefaultLockWait, rounded up to whole seconds).
	// The legacy backend takes the lock; nft ignores it.
	LockWait time.Duration
	// CommandTimeout bounds each command (default DefaultCommandTimeout): one
	// still running then is killed with its process group.
	CommandTimeout time.Duration
	// Logger receives debug lines for each command; nil discards them.
	Logger *slog.Logger
}

// Defaults of IPTablesOptions.
const (
	DefaultLockWait = 5 * time.Second
	// DefaultCommandTimeout is a backstop: a restore of Render's 10,000
	// balancers takes a few seconds on nft (BENCHMARKS.md).
	DefaultCommandTimeout = time.Minute
)

// IPTables is the real Netfilter: whole-table transactions through
// iptables-restore --noflush, reads through iptables-save and iptables -S, and
// jump rules through iptables -C/-I/-D. Every command waits at most LockWait
// for the xtables lock and runs at most CommandTimeout. These few commands
// are run here rather than through go-iptables because it takes no context:
// a command it started could not be cut off at the pass's deadline.
type IPTables struct {
	family   spec.Family
	backend  string
	iptables string // path of the iptables binary of the backend
	restore  string // path of the *-restore binary of the backend
	save     string // path of the *-save binary of the backend
	netns    string
	lockWait string // -w argument: whole seconds
	timeout  time.Duration
	log      *slog.Logger
}

var _ Netfilter = (*IPTables)(nil)

// NewIPTables finds the binaries of the chosen backend and checks that they run.
func NewIPTables(opts IPTablesOptions) (*IPTables, error) {
	t := &IPTables{family: opts.Family, netns: opts.Netns, log: opts.Logger, timeout: opts.CommandTimeout}
	if t.log == nil {
		t.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if t.timeout <= 0 {
		t.timeout = DefaultCommandTimeout
	}
	wait := opts.LockWait
	if wait <= 0 {
		wait = DefaultLockWait
	}
	t.lockWait = strconv.Itoa(int(math.Ceil(wait.Seconds())))
	cmd := Command(opts.Family)
	bin, backend, err := backendBinary(cmd, opts.Backend)
	if err != nil {
		return nil, err
	}
	t.backend = backend
	if t.iptables, err = exec.LookPath(bin); err != nil {
		return nil, fmt.Errorf("finding %s: %w", bin, err)
	}
	if t.backend == "" {
		err = t.do(func() error {
			t.backend, err = t.detectBackend()
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	if t.restore, err = lookBackend(cmd+"-"+t.backend+"-restore", cmd+"-restore", opts.Backend); err != nil {
		return nil, err
	}
	if t.save, err = lookBackend(cmd+"-"+t.backend+"-save", cmd+"-save", opts.Backend); err != nil {
		return nil, err
	}
	return t, nil
}

// Command returns the command that programs family f: "iptables" or
// "ip6tables".
func Command(f spec.Family) string {
	if f == spec.IPv6 {
		return "ip6tables"
	}
	return "iptables"
}

// backendBinary returns the binary of cmd (iptables or ip6tables) of the
// requested backend, and the backend unless it is to be detected ("").
func backendBinary(cmd, requested string) (bin, backend string, err error) {
	switch requested {
	case "", BackendAuto:
		return cmd, "", nil
	case BackendNFT:
		return cmd + "-nft", BackendNFT, nil
	case BackendLegacy:
		return cmd + "-legacy", BackendLegacy, nil
	}
	return "", "", fmt.Errorf("unknown iptables backend %q (want auto, nft or legacy)", requested)
}

// detectBackend asks the iptables binary which backend it is: its --version
// says "nf_tables" or "legacy".
func (t *IPTables) detectBackend() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), t.timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, t.iptables, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("detecting the backend of %s: %w", t.iptables, err)
	}
	if strings.Contains(string(out), "nf_tables") {
		return BackendNFT, nil
	}
	return BackendLegacy, nil
}

// lookBackend finds name, or fallback when the backend was auto-detected and
// the host has no backend-specific binaries (older distributions).
func lookBackend(name, fallback, requested string) (string, error) {
	p, err := exec.LookPath(name)
	if err == nil {
		return p, nil
	}
	if requested == "" || requested == BackendAuto {
		if p, err2 := exec.LookPath(fallback); err2 == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("finding %s: %w", name, err)
}

// Backend returns BackendNFT or BackendLegacy.
func (t *IPTables) Backend() string { return t.backend }

// Family returns the address family t programs.
func (t *IPTables) Family() spec.Family { return t.family }

// do runs fn in the configured network namespace, if any (see InNetns).
func (t *IPTables) do(fn func() error) error {
	if t.netns == "" {
		return fn()
	}
	return InNetns(t.netns, fn)
}

// InNetns runs fn with the calling goroutine locked to an OS thread that is
// switched into the named network namespace (under /run/netns), and switches
// it back afterwards. Go starts child processes from the calling thread and
// sockets belong to the namespace of the thread that creates them, so every
// command fn starts and every socket it opens is in the namespace; fn must
// not start goroutines that expect the same.
func InNetns(name string, fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("getting the current network namespace: %w", err)
	}
	defer orig.Close()
	target, err := netns.GetFromName(name)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("opening network namespace %q: %w", name, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("entering network namespace %q: %w", name, err)
	}
	defer func() {
		// If the thread cannot go back it stays locked, so no other goroutine
		// ever runs in the wrong namespace on it.
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
	}()
	return fn()
}
