package lab

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Weir runs the real weir binary in a lab's host namespaces.
type Weir struct {
	Bin string // path of bin/weir
	Lab *Lab
	// StatusFromAPI makes Status read GET /status from the agent's API
	// instead of running `weir status -o json` (both give DESIGN.md's JSON).
	StatusFromAPI bool
	// InsecureGossip starts agents with --insecure-gossip instead of the
	// lab's gossip key (KeyFile).
	InsecureGossip bool

	mu     sync.Mutex
	agents map[string]*Proc // by host name, as started by StartAgent
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

// checkRunning fails permanently when the agent started on h has exited:
// waiting for it to converge cannot succeed.
func (w *Weir) checkRunning(h *Host) error {
	w.mu.Lock()
	p := w.agents[h.Name]
	w.mu.Unlock()
	if p != nil && !p.Running() {
		return Permanent(fmt.Errorf("agent on %s exited: %v (log %s)", h.Name, p.ExitErr(), p.Log))
	}
	return nil
}

// Run runs a weir subcommand inside host h and returns stdout and stderr.
func (w *Weir) Run(ctx context.Context, h *Host, args ...string) (string, string, error) {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.NS, w.Bin}, args...)...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("weir %s in %s: %w: %s", strings.Join(args, " "), h.Name, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), stderr.String(), err
}

// Status is `weir status -o json` (DESIGN.md).
type Status struct {
	Revision        string         `json:"revision"`
	Converged       bool           `json:"converged"`
	Members         []MemberStatus `json:"members"`
	GossipEncrypted bool           `json:"gossipEncrypted"`
}

// MemberStatus is one member in Status.
type MemberStatus struct {
	Name      string `json:"name"`
	Address   string `json:"address"`
	State     string `json:"state"`
	Revision  string `json:"revision"`
	Digest    string `json:"digest"`
	Balancers int    `json:"balancers"`
	Rules     int    `json:"rules"`
	Error     string `json:"error"`
	Stranger  string `json:"stranger"` // why it does not count as a host; "" when it does
}

// Member returns the member called name, if listed.
func (s Status) Member(name string) (MemberStatus, bool) {
	for _, m := range s.Members {
		if m.Name == name {
			return m, true
		}
	}
	return MemberStatus{}, false
}

// Alive returns the sorted names of the alive members that count as hosts
// (strangers never do).
func (s Status) Alive() []string {
	var names []string
	for _, m := range s.Members {
		if m.State == "alive" && m.Stranger == "" {
			names = append(names, m.Name)
		}
	}
	sort.Strings(names)
	return names
}

// Status asks the agent on host h for the cluster status.
func (w *Weir) Status(ctx context.Context, h *Host) (Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second) // an agent that hangs must not hang the poll
	defer cancel()
	var out string
	var err error
	if w.StatusFromAPI {
		var code int
		code, out, err = w.Lab.HTTP(ctx, h.NS, "GET", "http://"+APIAddr+"/status")
		if err == nil && code != 200 {
			return Status{}, fmt.Errorf("GET /status on %s: %d %s", h.Name, code, out)
		}
	} else {
		out, _, err = w.Run(ctx, h, "status", "--api", APIAddr, "-o", "json")
	}
	var st Status
	if out != "" {
		// `weir status` may exit 1 when not converged and still print the object.
		if jerr := json.Unmarshal([]byte(out), &st); jerr != nil {
			return st, fmt.Errorf("parsing status of %s: %w: %q", h.Name, jerr, out)
		}
		return st, nil
	}
	return st, err
}

// ConvergedOn checks, from every host in hosts, that the cluster is converged
// on revision (any revision when empty) with exactly the members alive; it
// returns the status seen from the first host.
func (w *Weir) ConvergedOn(ctx context.Context, hosts []*Host, revision string, alive []string) (Status, error) {
	var first Status
	want := strings.Join(alive, ",")
	for i, h := range hosts {
		if err := w.checkRunning(h); err != nil {
			return first, err
		}
		st, err := w.Status(ctx, h)
		if err != nil {
			return st, err
		}
		if i == 0 {
			first = st
		}
		if got := strings.Join(st.Alive(), ","); got != want {
			return first, fmt.Errorf("%s sees alive [%s]; want [%s]", h.Name, got, want)
		}
		if !st.Converged {
			return first, fmt.Errorf("%s: not converged: %s", h.Name, st.Brief())
		}
		for _, m := range st.Members {
			if m.State == "alive" && revision != "" && m.Revision != revision {
				return first, fmt.Errorf("%s sees %s on revision %.12s; want %.12s", h.Name, m.Name, m.Revision, revision)
			}
		}
	}
	return first, nil
}

// WaitConverged polls ConvergedOn until it holds and returns how long it took.
func (w *Weir) WaitConverged(ctx context.Context, timeout time.Duration, hosts []*Host, revision string, alive []string) (time.Duration, error) {
	start := time.Now()
	err := Eventually(ctx, timeout, 100*time.Millisecond, func() error {
		_, err := w.ConvergedOn(ctx, hosts, revision, alive)
		return err
	})
	return time.Since(start), err
}

// Brief is a one-line summary of a status for test messages.
func (s Status) Brief() string {
	var b strings.Builder
	fmt.Fprintf(&b, "revision=%.12s converged=%v", s.Revision, s.Converged)
	for _, m := range s.Members {
		fmt.Fprintf(&b, " [%s %s rev=%.12s digest=%.8s rules=%d", m.Name, m.State, m.Revision, m.Digest, m.Rules)
		if m.Stranger != "" {
			fmt.Fprintf(&b, " stranger=%q", m.Stranger)
		}
		if m.Error != "" {
			fmt.Fprintf(&b, " error=%q", m.Error)
		}
		b.WriteString("]")
	}
	return b.String()
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

// Rules returns the lines of `iptables-save` for table in namespace ns with
// counters removed, so two snapshots compare equal when the rules are equal.
func (l *Lab) Rules(ctx context.Context, ns, table string) ([]string, error) {
	out, err := l.Exec(ctx, ns, "iptables-save", "-t", table)
	if err != nil {
		return nil, err
	}
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue // generation timestamps
		}
		if strings.HasPrefix(line, ":") {
			// ":CHAIN POLICY [packets:bytes]" — drop the counters.
			if i := strings.LastIndex(line, " ["); i > 0 {
				line = line[:i]
			}
		}
		lines = append(lines, line)
	}
	return lines, nil
}
