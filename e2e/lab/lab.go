// Package lab builds a throw-away network of Linux network namespaces for weir's
// end-to-end tests, the bench and the demo: a switch namespace holding a bridge, host
// namespaces on that bridge (198.18.0.i/24), guest namespaces behind every host
// (198.19.i.(j+1)/32, default route via their host), and a Git server namespace
// (198.18.0.250) running the real `git daemon`. With Options.IPv6 the lab is
// dual-stack: hosts also at fd00:18::i/64, guests at fd00:19:i::(j+1)/128.
//
// Every name a lab creates starts with its per-run Prefix, and the lab is
// removed by Close; Sweep removes what killed runs left behind. Frontends in
// 198.20.0.0/24 are routed nowhere: a host answers a packet to a frontend that
// weir did not rewrite with ICMP unreachable, so a missing rule shows up as a
// failed connection at once instead of a leak or a timeout.
//
// It is how those three create namespaces and run in them (on
// internal/testsupport's AddNetns and NetnsCommand, and netfilter.InNetns
// for a socket), start weir agents and read their status (Weir), and wait
// (testsupport.Eventually).
package lab

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Address plan of every lab (docs/test-network.md).
const (
	// GitAddr is the Git server's address on the bridge.
	GitAddr = "198.18.0.250"
	// FrontendNet is the range of virtual addresses; hosts route it to "unreachable".
	FrontendNet = "198.20.0.0/24"
	// FrontendNet6 is FrontendNet's IPv6 range, routed to "unreachable" in
	// a dual-stack lab.
	FrontendNet6 = "fd00:20::/64"
	// MaxHosts bounds Options.Hosts: host names are host-a … host-z.
	MaxHosts = 26
	// MaxGuests bounds the guests behind one host (guest names use two digits).
	MaxGuests = 99
)

// Options configures New.
type Options struct {
	// Prefix names every namespace and interface of the lab; empty means
	// "we" + 5 random base36 characters. At most 7 characters, so that every
	// interface name stays within the kernel's 15.
	Prefix string
	// Hosts is the number of host namespaces (1 … MaxHosts).
	Hosts int
	// GuestsPerHost is the number of guests behind every host, unless Guests is set.
	GuestsPerHost int
	// Guests, when set, gives the number of guests per host (len(Guests) == Hosts).
	Guests []int
	// Git starts a Git server namespace with an empty bare repository specs.git.
	Git bool
	// IPv6 makes the lab dual-stack: every host also has fd00:18::Index/64
	// on the bridge and forwards IPv6, every guest also has
	// fd00:19:Host::(Index+1)/128 with its host as IPv6 default router, and
	// hosts route each other's guest /64 and FrontendNet6 as they do the
	// IPv4 ranges (docs/test-network.md). Addresses skip duplicate address
	// detection (nodad), so they work at once.
	IPv6 bool
	// Dir holds logs, the bare repository and work clones; empty means a new temp dir.
	Dir string
	// MarkerDir holds the owner markers Sweep reads; empty means DefaultMarkerDir.
	MarkerDir string
	// Logger receives progress; nil discards it.
	Logger *slog.Logger
}

// Lab is a running network of namespaces.
type Lab struct {
	Prefix string
	Dir    string
	// Switch is the namespace holding the bridge.
	Switch string
	Hosts  []*Host
	// Git is the Git server, nil unless Options.Git.
	Git *GitServer

	log       *slog.Logger
	markerDir string
	ipv6      bool // Options.IPv6

	mu     sync.Mutex
	procs  []*Proc
	closed bool
}

// Host is a host OS: a namespace on the bridge that routes for its guests.
type Host struct {
	Index  int    // 1-based
	Name   string // host-a, host-b, …: the agent's --node name
	NS     string // namespace name
	Addr   string // 198.18.0.Index
	Addr6  string // fd00:18::Index in a dual-stack lab, else ""
	Guests []*Guest
}

// Guest is a guest OS: a namespace behind its host with a /32 address.
type Guest struct {
	Host  int // index of its host
	Index int // 1-based within the host
	NS    string
	Addr  string // 198.19.Host.(Index+1)
	Addr6 string // fd00:19:Host::(Index+1) in a dual-stack lab, else ""
}

// NewPrefix returns "we" followed by 5 random base36 characters.
func NewPrefix() string {
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	b := []byte("we")
	for range 5 {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(digits))))
		if err != nil {
			panic(fmt.Sprintf("reading random bytes: %v", err)) // crypto/rand does not fail on Linux
		}
		b = append(b, digits[n.Int64()])
	}
	return string(b)
}

// New builds a lab. On error everything already created is removed again.
func New(ctx context.Context, opts Options) (*Lab, error) {
	if os.Geteuid() != 0 {
		return nil, ErrNotRoot
	}
	if opts.Prefix == "" {
		opts.Prefix = NewPrefix()
	}
	if len(opts.Prefix) > 7 {
		return nil, fmt.Errorf("lab prefix %q: longer than 7 characters", opts.Prefix)
	}
	guests, err := opts.guestCounts()
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir, err := labDir(opts.Dir, opts.Prefix)
	if err != nil {
		return nil, err
	}
	markerDir := opts.MarkerDir
	if markerDir == "" {
		markerDir = DefaultMarkerDir
	}
	l := &Lab{
		ipv6:      opts.IPv6,
		Prefix:    opts.Prefix,
		Dir:       dir,
		Switch:    opts.Prefix + "sw",
		log:       log,
		markerDir: markerDir,
	}
	// The marker goes first: a run killed halfway must still be sweepable.
	if err := writeMarker(markerDir, l.Prefix); err != nil {
		return nil, err
	}
	start := time.Now()
	if err := l.build(ctx, guests, opts.Git); err != nil {
		closeErr := l.Close()
		return nil, errors.Join(err, closeErr)
	}
	log.Info("lab up", "prefix", l.Prefix, "hosts", opts.Hosts, "dir", dir, "took", time.Since(start).Round(time.Millisecond))
	return l, nil
}

// guestCounts returns the number of guests of every host, checked against
// the limits of the address plan.
func (o Options) guestCounts() ([]int, error) {
	if o.Hosts < 1 || o.Hosts > MaxHosts {
		return nil, fmt.Errorf("lab hosts %d: want 1…%d", o.Hosts, MaxHosts)
	}
	guests := o.Guests
	if guests == nil {
		guests = make([]int, o.Hosts)
		for i := range guests {
			guests[i] = o.GuestsPerHost
		}
	}
	if len(guests) != o.Hosts {
		return nil, fmt.Errorf("lab guests %v: want one count per host (%d)", guests, o.Hosts)
	}
	for i, n := range guests {
		if n < 0 || n > MaxGuests {
			return nil, fmt.Errorf("lab guests on host %d = %d: want 0…%d", i+1, n, MaxGuests)
		}
	}
	return guests, nil
}

// labDir creates dir, or a new temp dir named after prefix when dir is empty.
func labDir(dir, prefix string) (string, error) {
	if dir == "" {
		d, err := os.MkdirTemp("", "weir-lab-"+prefix+"-")
		if err != nil {
			return "", fmt.Errorf("creating lab dir: %w", err)
		}
		return d, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating lab dir %s: %w", dir, err)
	}
	return dir, nil
}

// ErrNotRoot is returned by New when the process cannot create namespaces.
var ErrNotRoot = errors.New("the lab needs root: it creates network namespaces, veth pairs and a bridge, and weir programs iptables in them")

// Namespaces lists the lab's namespaces that currently exist.
func (l *Lab) Namespaces() ([]string, error) {
	all, err := ListNamespaces()
	if err != nil {
		return nil, err
	}
	var mine []string
	for _, ns := range all {
		if strings.HasPrefix(ns, l.Prefix) {
			mine = append(mine, ns)
		}
	}
	return mine, nil
}

// Guest returns guest j of host i (both 1-based); it panics when there is none,
// since tests and the demo ask only for guests they configured.
func (l *Lab) Guest(host, j int) *Guest {
	return l.Hosts[host-1].Guests[j-1]
}

// Close stops every process the lab started, deletes its namespaces (which
// removes their veths and bridge) and its marker. The lab dir is kept; the
// caller decides (KeepDir / RemoveDir). Close is idempotent.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	procs := l.procs
	l.mu.Unlock()
	var errs []error
	for _, p := range procs {
		if err := p.Kill(); err != nil && !errors.Is(err, ErrNotRunning) {
			errs = append(errs, err)
		}
	}
	if err := removeLab(l.Prefix, l.markerDir); err != nil {
		errs = append(errs, err)
	}
	l.log.Info("lab down", "prefix", l.Prefix)
	return errors.Join(errs...)
}

// RemoveDir deletes the lab's directory (logs, repositories).
func (l *Lab) RemoveDir() error {
	return os.RemoveAll(l.Dir)
}

// LogPath is where the process called name writes its output.
func (l *Lab) LogPath(name string) string {
	return filepath.Join(l.Dir, "logs", name+".log")
}
