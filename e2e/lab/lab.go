// Package lab builds a throw-away network of Linux network namespaces for weir's
// end-to-end tests and its demo: a switch namespace holding a bridge, host
// namespaces on that bridge (198.18.0.i/24), guest namespaces behind every host
// (198.19.i.(j+1)/32, default route via their host), and a Git server namespace
// (198.18.0.250) running the real `git daemon`.
//
// Every name a lab creates starts with its per-run Prefix, and the lab is
// removed by Close; Sweep removes what killed runs left behind. Frontends in
// 198.20.0.0/24 are routed nowhere: a host answers a packet to a frontend that
// weir did not rewrite with ICMP unreachable, so a missing rule shows up as a
// failed connection at once instead of a leak or a timeout.
package lab

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Address plan of every lab (DESIGN.md "Test network convention").
const (
	// GitAddr is the Git server's address on the bridge.
	GitAddr = "198.18.0.250"
	// FrontendNet is the range of virtual addresses; hosts route it to "unreachable".
	FrontendNet = "198.20.0.0/24"
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
	Guests []*Guest
}

// Guest is a guest OS: a namespace behind its host with a /32 address.
type Guest struct {
	Host  int // index of its host
	Index int // 1-based within the host
	NS    string
	Addr  string // 198.19.Host.(Index+1)
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
	if opts.Hosts < 1 || opts.Hosts > MaxHosts {
		return nil, fmt.Errorf("lab hosts %d: want 1…%d", opts.Hosts, MaxHosts)
	}
	guests := opts.Guests
	if guests == nil {
		guests = make([]int, opts.Hosts)
		for i := range guests {
			guests[i] = opts.GuestsPerHost
		}
	}
	if len(guests) != opts.Hosts {
		return nil, fmt.Errorf("lab guests %v: want one count per host (%d)", guests, opts.Hosts)
	}
	for i, n := range guests {
		if n < 0 || n > MaxGuests {
			return nil, fmt.Errorf("lab guests on host %d = %d: want 0…%d", i+1, n, MaxGuests)
		}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir := opts.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "weir-lab-"+opts.Prefix+"-")
		if err != nil {
			return nil, fmt.Errorf("creating lab dir: %w", err)
		}
		dir = d
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating lab dir %s: %w", dir, err)
	}
	markerDir := opts.MarkerDir
	if markerDir == "" {
		markerDir = DefaultMarkerDir
	}
	l := &Lab{
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

// ErrNotRoot is returned by New when the process cannot create namespaces.
var ErrNotRoot = errors.New("the lab needs root: it creates network namespaces, veth pairs and a bridge, and weir programs iptables in them")

func (l *Lab) build(ctx context.Context, guests []int, withGit bool) error {
	br := l.Prefix + "br"
	if err := l.addNS(ctx, l.Switch); err != nil {
		return err
	}
	if err := l.ip(ctx, l.Switch, "link", "add", br, "type", "bridge"); err != nil {
		return err
	}
	if err := l.ip(ctx, l.Switch, "link", "set", br, "up"); err != nil {
		return err
	}
	for i := 1; i <= len(guests); i++ {
		h := &Host{Index: i, Name: "host-" + string(rune('a'+i-1)), NS: fmt.Sprintf("%sh%d", l.Prefix, i), Addr: fmt.Sprintf("198.18.0.%d", i)}
		l.Hosts = append(l.Hosts, h)
		if err := l.addNS(ctx, h.NS); err != nil {
			return err
		}
		if err := l.sysctl(ctx, h.NS, "net.ipv4.ip_forward=1"); err != nil {
			return err
		}
		if err := l.uplink(ctx, h.NS, fmt.Sprintf("h%d", i), h.Addr); err != nil {
			return err
		}
		// A frontend that no rule rewrote must fail loudly, not leak or hang.
		if err := l.ip(ctx, h.NS, "route", "add", "unreachable", FrontendNet); err != nil {
			return err
		}
		for j := 1; j <= guests[i-1]; j++ {
			g, err := l.addGuest(ctx, h, j)
			if err != nil {
				return err
			}
			h.Guests = append(h.Guests, g)
		}
	}
	for _, h := range l.Hosts {
		for _, o := range l.Hosts {
			if o == h {
				continue
			}
			if err := l.ip(ctx, h.NS, "route", "add", fmt.Sprintf("198.19.%d.0/24", o.Index), "via", o.Addr); err != nil {
				return err
			}
		}
	}
	if withGit {
		g, err := l.startGit(ctx)
		if err != nil {
			return err
		}
		l.Git = g
	}
	return nil
}

// uplink connects namespace ns to the bridge with address addr/24; tag
// distinguishes the veth names.
func (l *Lab) uplink(ctx context.Context, ns, tag, addr string) error {
	sw, up := l.Prefix+tag+"s", l.Prefix+tag+"u"
	if err := l.ip(ctx, l.Switch, "link", "add", sw, "type", "veth", "peer", "name", up, "netns", ns); err != nil {
		return err
	}
	if err := l.ip(ctx, l.Switch, "link", "set", sw, "master", l.Prefix+"br", "up"); err != nil {
		return err
	}
	if err := l.ip(ctx, ns, "addr", "add", addr+"/24", "dev", up); err != nil {
		return err
	}
	return l.ip(ctx, ns, "link", "set", up, "up")
}

func (l *Lab) addGuest(ctx context.Context, h *Host, j int) (*Guest, error) {
	g := &Guest{Host: h.Index, Index: j, NS: fmt.Sprintf("%sh%dg%d", l.Prefix, h.Index, j), Addr: fmt.Sprintf("198.19.%d.%d", h.Index, j+1)}
	if err := l.addNS(ctx, g.NS); err != nil {
		return nil, err
	}
	hv, gv := fmt.Sprintf("%sh%dg%d", l.Prefix, h.Index, j), fmt.Sprintf("%sg%de", l.Prefix, j)
	steps := [][]string{
		{h.NS, "link", "add", hv, "type", "veth", "peer", "name", gv, "netns", g.NS},
		{h.NS, "link", "set", hv, "up"},
		{h.NS, "route", "add", g.Addr + "/32", "dev", hv},
		{g.NS, "addr", "add", g.Addr + "/32", "dev", gv},
		{g.NS, "link", "set", gv, "up"},
		// The host answers ARP for its own address on every interface, so it can
		// be the gateway of a /32 guest without an address on the guest's link.
		{g.NS, "route", "add", h.Addr, "dev", gv, "scope", "link"},
		{g.NS, "route", "add", "default", "via", h.Addr, "dev", gv},
	}
	for _, s := range steps {
		if err := l.ip(ctx, s[0], s[1:]...); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// addNS creates a namespace with loopback up and reverse-path filtering off
// (guests' replies come back over other interfaces than a strict check expects).
func (l *Lab) addNS(ctx context.Context, ns string) error {
	if err := run(ctx, "ip", "netns", "add", ns); err != nil {
		return err
	}
	if err := l.ip(ctx, ns, "link", "set", "lo", "up"); err != nil {
		return err
	}
	return l.sysctl(ctx, ns, "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0")
}

func (l *Lab) ip(ctx context.Context, ns string, args ...string) error {
	return run(ctx, "ip", append([]string{"-n", ns}, args...)...)
}

func (l *Lab) sysctl(ctx context.Context, ns string, settings ...string) error {
	return run(ctx, "ip", append([]string{"netns", "exec", ns, "sysctl", "-qw"}, settings...)...)
}

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

// Exec runs a command inside namespace ns and returns its combined output.
func (l *Lab) Exec(ctx context.Context, ns string, name string, args ...string) (string, error) {
	return output(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
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

func run(ctx context.Context, name string, args ...string) error {
	_, err := output(ctx, name, args...)
	return err
}

func output(ctx context.Context, name string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
