package lab

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"weir/internal/testsupport"
)

// Weir runs the real weir binary in a lab's host namespaces: its agents, its
// CLI, and requests to the agents' APIs. It is the one way the e2e tests, the
// bench and the demo start agents and read their status.
type Weir struct {
	Bin string // path of bin/weir
	Lab *Lab
	// StatusFromAPI makes Status read GET /status from the agent's API
	// instead of running `weir status -o json` (both print the status
	// object of docs/api.md).
	StatusFromAPI bool
	// InsecureGossip starts agents with --insecure-gossip instead of the
	// lab's gossip key (KeyFile).
	InsecureGossip bool

	mu      sync.Mutex
	agents  map[string]*Proc        // by host name, as started by StartAgent
	clients map[string]*http.Client // by host name, for API
}

// AgentPort is the gossip port every lab agent binds.
const AgentPort = 7946

// APIAddr is every lab agent's API address: each host namespace has its own loopback.
const APIAddr = "127.0.0.1:7947"

// AgentArgs returns the flags common to every lab agent on host h: its node
// name, bind address, API, state dir and the lab's gossip key (or
// --insecure-gossip); callers add the source and timings.
func (w *Weir) AgentArgs(h *Host) []string {
	gossip := []string{"--gossip-key-file", w.KeyFile()}
	if w.InsecureGossip {
		gossip = []string{"--insecure-gossip"}
	}
	return append([]string{"agent", "--node", h.Name,
		"--bind", fmt.Sprintf("%s:%d", h.Addr, AgentPort),
		"--api", APIAddr,
		"--state-dir", filepath.Join(w.Lab.Dir, "state", h.Name)}, gossip...)
}

// KeyFile is the lab's gossip key file, which every agent gets unless
// InsecureGossip is set: one AES-256 key, mode 0600, written on first use.
func (w *Weir) KeyFile() string { return filepath.Join(w.Lab.Dir, "gossip.key") }

// WriteKey writes a new gossip key, as `weir keygen` prints it, to name
// with mode 0600 (weir refuses key files others may read).
func WriteKey(name string) error {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("generating a gossip key: %w", err)
	}
	if err := os.WriteFile(name, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		return fmt.Errorf("writing gossip key: %w", err)
	}
	return nil
}

// ensureKey writes the lab's gossip key file if it does not exist yet.
func (w *Weir) ensureKey() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.InsecureGossip {
		return nil
	}
	if _, err := os.Stat(w.KeyFile()); err == nil {
		return nil
	}
	return WriteKey(w.KeyFile())
}

// JoinArgs is --join with every host of hosts but self as a seed, so any
// agent can (re)join alone; nil when there is no other host.
func JoinArgs(hosts []*Host, self *Host) []string {
	var seeds []string
	for _, h := range hosts {
		if h != self {
			seeds = append(seeds, fmt.Sprintf("%s:%d", h.Addr, AgentPort))
		}
	}
	if len(seeds) == 0 {
		return nil
	}
	return []string{"--join", strings.Join(seeds, ",")}
}

// StartAgent starts `weir agent` in host h with AgentArgs plus extra, logging to
// the lab's "agent-<host>" log.
func (w *Weir) StartAgent(h *Host, extra ...string) (*Proc, error) {
	if err := w.ensureKey(); err != nil {
		return nil, err
	}
	args := append([]string{w.Bin}, w.AgentArgs(h)...)
	p, err := w.Lab.Start("agent-"+h.Name, h.NS, append(args, extra...))
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.agents == nil {
		w.agents = map[string]*Proc{}
	}
	w.agents[h.Name] = p
	return p, nil
}

// StartAgents starts an agent on every host of hosts with AgentArgs plus
// extra(h), and stops at the first that fails to start.
func (w *Weir) StartAgents(hosts []*Host, extra func(h *Host) []string) error {
	for _, h := range hosts {
		if _, err := w.StartAgent(h, extra(h)...); err != nil {
			return err
		}
	}
	return nil
}

// Agent returns the agent last started on the host called name; nil if none.
func (w *Weir) Agent(name string) *Proc {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.agents[name]
}

// StopAgents stops the agents on hosts (SIGTERM, SIGKILL after timeout) and
// closes the kept-alive API connections to them.
func (w *Weir) StopAgents(hosts []*Host, timeout time.Duration) {
	for _, h := range hosts {
		if p := w.Agent(h.Name); p != nil {
			_ = p.Stop(timeout)
		}
	}
	w.CloseIdleConnections()
}

// CheckRunning fails permanently (testsupport.Permanent) when the agent
// started on h has exited: waiting for it to converge cannot succeed.
func (w *Weir) CheckRunning(h *Host) error {
	if p := w.Agent(h.Name); p != nil && !p.Running() {
		return testsupport.Permanent(fmt.Errorf("agent on %s exited: %v (log %s)", h.Name, p.ExitErr(), p.Log))
	}
	return nil
}

// Run runs a weir subcommand inside host h and returns stdout and stderr.
func (w *Weir) Run(ctx context.Context, h *Host, args ...string) (string, string, error) {
	cmd := testsupport.NetnsCommand(ctx, h.NS, append([]string{w.Bin}, args...)...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("weir %s in %s: %w: %s", strings.Join(args, " "), h.Name, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), stderr.String(), err
}

// Names returns the names of hosts.
func Names(hosts []*Host) []string {
	names := make([]string, len(hosts))
	for i, h := range hosts {
		names[i] = h.Name
	}
	sort.Strings(names)
	return names
}
