package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"weir/cluster"
	"weir/internal/testsupport"
)

func TestAgentFlagErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want []string // substrings of stderr
	}{
		{"nothing", nil, nil, []string{"--node is required", "--bind is required", "one of --repo or --dir is required", "--gossip-key-file is required"}},
		{"both sources", []string{"--node", "a", "--bind", "127.0.0.1:7946", "--dir", dir, "--repo", "file:///x"}, nil, []string{"--repo and --dir exclude each other"}},
		{"git flag with dir", []string{"--node", "a", "--bind", "127.0.0.1:7946", "--dir", dir, "--verify-keys", "k.asc"}, nil, []string{"--verify-keys needs --repo"}},
		{"public api without secret", []string{"--node", "a", "--bind", "127.0.0.1:7946", "--dir", dir, "--api", "0.0.0.0:7947"}, nil, []string{"not loopback requires --webhook-secret-file"}},
		{"bad profile", []string{"--node", "a", "--bind", "127.0.0.1:7946", "--dir", dir, "--gossip-profile", "moon"}, nil, []string{"gossip profile \"moon\""}},
		{"bad backend", []string{"--node", "a", "--bind", "127.0.0.1:7946", "--dir", dir, "--backend", "ebpf"}, nil, []string{"--backend \"ebpf\""}},
		{"bad log level", []string{"--node", "a", "--bind", "127.0.0.1:7946", "--dir", dir, "--log-level", "loud"}, nil, []string{"--log-level \"loud\""}},
		{"bad duration", []string{"--node", "a", "--bind", "127.0.0.1:7946", "--dir", dir, "--resync", "0s"}, nil, []string{"--resync must be positive"}},
		{"extra argument", []string{"--node", "a", "--bind", "127.0.0.1:7946", "--dir", dir, "specs"}, nil, []string{"unexpected arguments"}},
		{"env stands for flags", []string{"--bind", "127.0.0.1:7946", "--dir", dir, "--insecure-gossip"}, map[string]string{"WEIR_NODE": "a", "WEIR_API": "198.18.0.1:7947"}, []string{"--api 198.18.0.1:7947"}},
		{"missing secret file", []string{"--node", "a", "--bind", "127.0.0.1:7946", "--dir", dir, "--insecure-gossip", "--webhook-secret-file", filepath.Join(dir, "nope")}, nil, []string{"reading webhook secret"}},
		{"no gossip key", []string{"--node", "a", "--bind", "127.0.0.1:7946", "--dir", dir}, nil, []string{"--gossip-key-file is required", "weir keygen > key; chmod 600 key", "--insecure-gossip"}},
		{"key and insecure", []string{"--node", "a", "--bind", "127.0.0.1:7946", "--dir", dir, "--insecure-gossip", "--gossip-key-file", agentKeyFile(t, 0o600)}, nil, []string{"exclude each other"}},
		{"bad key file", []string{"--node", "a", "--bind", "127.0.0.1:7946", "--dir", dir, "--state-dir", dir, "--gossip-key-file", agentWriteTemp(t, "not base64!\n")}, nil, []string{"gossip key file", "not base64"}},
		{"world-readable key file", []string{"--node", "a", "--bind", "127.0.0.1:7946", "--dir", dir, "--state-dir", dir, "--gossip-key-file", agentKeyFile(t, 0o644)}, nil, []string{"has mode 0644", "chmod 600"}},
		{"group-writable keyring", []string{"--node", "a", "--bind", "127.0.0.1:7946", "--dir", dir, "--state-dir", agentStateWithKeyring(t, 0o660), "--gossip-key-file", agentKeyFile(t, 0o600)}, nil, []string{"keyring has mode 0660", "chmod 600"}},
		{"public api without token", []string{"--node", "a", "--bind", "127.0.0.1:7946", "--dir", dir, "--api", "0.0.0.0:7947", "--webhook-secret-file", filepath.Join(dir, "nope")}, nil, []string{"not loopback requires --webhook-secret-file and --api-token-file"}},
		{"missing token file", []string{"--node", "a", "--bind", "127.0.0.1:7946", "--dir", dir, "--insecure-gossip", "--api-token-file", filepath.Join(dir, "nope")}, nil, []string{"reading API token"}},
		{"fetch timeout", []string{"--node", "a", "--bind", "127.0.0.1:7946", "--dir", dir, "--fetch-timeout", "0s"}, nil, []string{"--fetch-timeout must be positive"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var stderr bytes.Buffer
			if got := runAgent(context.Background(), tt.args, io.Discard, &stderr); got != exitUsage {
				t.Errorf("weir agent %v = exit %d; want %d (stderr %q)", tt.args, got, exitUsage, stderr.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("weir agent %v: stderr %q lacks %q", tt.args, stderr.String(), w)
				}
			}
		})
	}
}

// agentKeyFile writes a new gossip key file with mode perm.
func agentKeyFile(t *testing.T, perm os.FileMode) string {
	t.Helper()
	key, err := cluster.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	p := agentWriteTemp(t, key+"\n")
	if err := os.Chmod(p, perm); err != nil {
		t.Fatal(err)
	}
	return p
}

// agentStateWithKeyring returns a state directory holding a persisted
// keyring with mode perm.
func agentStateWithKeyring(t *testing.T, perm os.FileMode) string {
	t.Helper()
	dir := t.TempDir()
	key, _ := cluster.GenerateKey()
	if err := os.WriteFile(keyringFile(dir), []byte(key+"\n"), perm); err != nil {
		t.Fatal(err)
	}
	os.Chmod(keyringFile(dir), perm)
	return dir
}

// TestPersistedKeyringTakesPrecedence checks which keys an agent gossips
// with: the keyring that key operations persisted, else --gossip-key-file.
func TestPersistedKeyringTakesPrecedence(t *testing.T) {
	stateDir := t.TempDir()
	o := agentOptions{gossipKeyFile: agentKeyFile(t, 0o600), stateDir: stateDir}
	fromFile, err := cluster.ReadKeyFile(o.gossipKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := agentLogger("text", "info", &logs)
	keys, err := gossipKeys(o, log)
	if err != nil || len(keys) != 1 || cluster.Fingerprint(keys[0]) != cluster.Fingerprint(fromFile[0]) {
		t.Fatalf("gossipKeys without a keyring = %d keys, %v; want the key file's", len(keys), err)
	}
	ring, _ := cluster.GenerateKey()
	if err := os.WriteFile(keyringFile(stateDir), []byte(ring+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err = gossipKeys(o, log)
	want, _ := cluster.ParseKeys([]byte(ring))
	if err != nil || len(keys) != 1 || cluster.Fingerprint(keys[0]) != cluster.Fingerprint(want[0]) {
		t.Fatalf("gossipKeys with a keyring = %d keys, %v; want the keyring's", len(keys), err)
	}
	if !strings.Contains(logs.String(), "takes precedence over --gossip-key-file") {
		t.Errorf("log does not say the keyring was used:\n%s", logs.String())
	}
	if keys, err := gossipKeys(agentOptions{insecureGossip: true, stateDir: stateDir}, log); keys != nil || err != nil {
		t.Errorf("gossipKeys(--insecure-gossip) = %d keys, %v; want none", len(keys), err)
	}
}

func agentWriteTemp(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAgentHelperProcess is not a test: TestAgentInNetns runs the test binary
// inside a network namespace with this test selected, and it runs the CLI
// in-process there until SIGTERM, as main would.
func TestAgentHelperProcess(t *testing.T) {
	if os.Getenv("WEIR_TEST_AGENT_HELPER") != "1" {
		t.Skip("helper process for TestAgentInNetns")
	}
	var args []string
	if err := json.Unmarshal([]byte(os.Getenv("WEIR_TEST_AGENT_ARGS")), &args); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(3)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func agentNetnsBalancer(targetPort int) string {
	return fmt.Sprintf(`apiVersion: weir/v1
kind: Balancer
metadata: {name: frontend-orders}
spec:
  source: frontend
  target: orders
  frontend: {address: 198.20.0.10, port: 80}
  targetPort: %d
`, targetPort)
}

// agentLogLines collects the agent's JSON log lines as they arrive.
type agentLogLines struct {
	mu    sync.Mutex
	lines []map[string]any
	raw   bytes.Buffer
}

func (l *agentLogLines) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		l.mu.Lock()
		l.raw.WriteString(sc.Text() + "\n")
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			l.lines = append(l.lines, m)
		}
		l.mu.Unlock()
	}
}

// applied returns the times of the "applied rules" lines so far.
func (l *agentLogLines) applied() []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []time.Time
	for _, m := range l.lines {
		if m["msg"] != "applied rules" {
			continue
		}
		if ts, err := time.Parse(time.RFC3339Nano, fmt.Sprint(m["time"])); err == nil {
			out = append(out, ts)
		}
	}
	return out
}

func (l *agentLogLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.raw.String()
}

// TestAgentInNetns runs `weir agent --dir` in a fresh network namespace:
// editing a spec file changes the rules, and SIGTERM leaves them in place.
func TestAgentInNetns(t *testing.T) {
	ns := testsupport.NewNetns(t)
	if _, err := exec.LookPath("iptables-save"); err != nil {
		t.Skipf("needs iptables-save: %v", err)
	}
	ns.Run("ip", "link", "set", "lo", "up")

	specDir, stateDir := t.TempDir(), t.TempDir()
	agentWriteSpec(t, specDir, "hosts.yaml", basicHosts(t))
	agentWriteSpec(t, specDir, "balancers.yaml", agentNetnsBalancer(8080))

	args := []string{"agent", "--node", "host-a", "--bind", "127.0.0.1:7946", "--dir", specDir,
		"--state-dir", stateDir, "--api", "127.0.0.1:7947", "--log-format", "json",
		"--gossip-key-file", agentKeyFile(t, 0o600),
		// Alone in its namespace: a long settle time keeps the unseen hosts
		// alive for planning, so their targets are programmed.
		"--settle-time", "1h"}
	enc, _ := json.Marshal(args)
	cmd := ns.Command(os.Args[0], "-test.run=^TestAgentHelperProcess$")
	cmd.Env = append(os.Environ(), "WEIR_TEST_AGENT_HELPER=1", "WEIR_TEST_AGENT_ARGS="+string(enc))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	logs := &agentLogLines{}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the agent: %v", err)
	}
	readDone := make(chan struct{})
	go func() { logs.read(stderr); close(readDone) }()
	exited := make(chan error, 1)
	go func() { <-readDone; exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() || os.Getenv("WEIR_TEST_AGENT_LOG") != "" {
			t.Logf("agent log:\n%s", logs)
		}
	})

	agentWaitNat(t, ns, "both targets at 8080", []string{"198.19.2.2:8080", "198.19.3.2:8080"})

	// Each edit: write, then wait for the rules; the agent's log says when it
	// applied. Alone in its namespace, the agent applies once at start and once
	// per edit.
	var lat []time.Duration
	for i, port := range []int{9090, 9091, 9092, 9093, 9094} {
		agentWaitUntil(t, "the previous apply logged", func() bool { return len(logs.applied()) == i+1 })
		// Let the agent's minimum interval between applies pass, so the figure
		// is the path from a write to the rules, not the rate limit.
		last := logs.applied()[i]
		agentWaitUntil(t, "the minimum interval", func() bool { return time.Since(last) > 300*time.Millisecond })
		writeAt := time.Now()
		agentWriteSpec(t, specDir, "balancers.yaml", agentNetnsBalancer(port))
		want := []string{fmt.Sprintf("198.19.2.2:%d", port), fmt.Sprintf("198.19.3.2:%d", port)}
		agentWaitNat(t, ns, fmt.Sprintf("edit %d: targets at %d", i, port), want)
		agentWaitUntil(t, "the apply logged", func() bool { return len(logs.applied()) >= i+2 })
		lat = append(lat, logs.applied()[i+1].Sub(writeAt))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	t.Logf("file write to rules applied (dir mode, %d edits): min %v, median %v, max %v",
		len(lat), lat[0].Round(time.Millisecond), lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))

	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)); err == nil {
		if m := regexp.MustCompile(`VmRSS:\s+(\d+ kB)`).FindSubmatch(b); m != nil {
			t.Logf("agent resident memory after the edits (test binary): %s", m[1])
		}
	}

	before := agentNatSave(t, ns)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("agent exit after SIGTERM: %v; want status 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("agent did not exit within 30s of SIGTERM")
	}
	if after := agentNatSave(t, ns); after != before {
		t.Errorf("rules changed at shutdown:\n%s\nwant them kept:\n%s", after, before)
	}
	if got := agentNatTargets(agentNatSave(t, ns)); !slices.Equal(got, []string{"198.19.2.2:9094", "198.19.3.2:9094"}) {
		t.Errorf("after SIGTERM the targets are %v; want them in place", got)
	}
	if _, err := os.Stat(filepath.Join(stateDir, "last-good", "revision")); err != nil {
		t.Errorf("no last good revision persisted: %v", err)
	}
}

// agentWriteSpec replaces a spec file the way editors do: a temporary file renamed over it.
func agentWriteSpec(t *testing.T, dir, name, content string) {
	t.Helper()
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

func agentNatSave(t *testing.T, ns *testsupport.Netns) string {
	t.Helper()
	out := ns.Run("iptables-save", "-t", "nat")
	// Counters and the generation comment change between calls.
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(l, "#") {
			keep = append(keep, regexp.MustCompile(`\[\d+:\d+\]`).ReplaceAllString(l, "[0:0]"))
		}
	}
	return strings.Join(keep, "\n")
}

var agentToDestination = regexp.MustCompile(`--to-destination (\S+)`)

func agentNatTargets(save string) []string {
	var out []string
	for _, m := range agentToDestination.FindAllStringSubmatch(save, -1) {
		out = append(out, m[1])
	}
	sort.Strings(out)
	return out
}

func agentWaitNat(t *testing.T, ns *testsupport.Netns, what string, want []string) {
	t.Helper()
	agentWaitUntil(t, what, func() bool { return slices.Equal(agentNatTargets(agentNatSave(t, ns)), want) })
}

// agentWaitUntil fails the test with what unless cond holds within 30 s.
func agentWaitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testsupport.WaitFor(t, 30*time.Second, 5*time.Millisecond, what, testsupport.Until(cond))
}
