package lab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"weir/internal/testsupport"
)

func TestMain(m *testing.M) {
	MainSetup()
	os.Exit(m.Run())
}

// TestTopology checks the wiring: guest to guest across hosts and on the same
// host, TCP and UDP, and that a frontend without rules fails at once.
func TestTopology(t *testing.T) {
	l := ForTest(t, Options{Hosts: 2, Guests: []int{2, 1}})
	ctx := t.Context()
	nss, err := l.Namespaces()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(nss)
	want := []string{l.Prefix + "h1", l.Prefix + "h1g1", l.Prefix + "h1g2", l.Prefix + "h2", l.Prefix + "h2g1", l.Prefix + "sw"}
	if !slices.Equal(nss, want) {
		t.Fatalf("namespaces = %v; want %v", nss, want)
	}
	if got := l.Guest(2, 1).Addr; got != "198.19.2.2" {
		t.Errorf("guest 1 of host 2 address = %s; want 198.19.2.2", got)
	}
	for _, s := range []struct {
		g    *Guest
		name string
	}{{l.Guest(2, 1), "orders-1"}, {l.Guest(1, 2), "local-1"}} {
		if _, err := l.Serve(ctx, s.g, s.name, "tcp:8080", "udp:8053"); err != nil {
			t.Fatal(err)
		}
	}
	src := l.Guest(1, 1)
	tests := []struct {
		network, addr, want string
	}{
		{"tcp", "198.19.2.2:8080", "orders-1"}, // across the bridge
		{"udp", "198.19.2.2:8053", "orders-1"},
		{"tcp", "198.19.1.3:8080", "local-1"}, // through the own host only
		{"udp", "198.19.1.3:8053", "local-1"},
	}
	for _, tt := range tests {
		r, err := l.Dial(ctx, src, tt.network, tt.addr, 5)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Counts()[tt.want]; got != 5 || r.Failures() != 0 {
			t.Errorf("Dial(%s %s) = %v; want %s=5 failed=0", tt.network, tt.addr, r, tt.want)
		}
	}
	start := time.Now()
	r, err := l.Dial(ctx, src, "tcp", "198.20.0.10:80", 3)
	if err != nil {
		t.Fatal(err)
	}
	if r.Failures() != 3 {
		t.Errorf("Dial(frontend without rules) = %v; want 3 failures", r)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("3 attempts to an unrouted frontend took %v; want an immediate unreachable", d)
	}
	if len(r.Errors) > 0 && !strings.Contains(r.Errors[0], "unreachable") && !strings.Contains(r.Errors[0], "no route") {
		t.Errorf("frontend error = %q; want host/network unreachable", r.Errors[0])
	}
}

// TestDialer checks that a continuous dialer reports attempts in order.
func TestDialer(t *testing.T) {
	l := ForTest(t, Options{Hosts: 2, GuestsPerHost: 1})
	ctx := t.Context()
	if _, err := l.Serve(ctx, l.Guest(2, 1), "b", "tcp:8080"); err != nil {
		t.Fatal(err)
	}
	d, err := l.StartDialer(ctx, l.Guest(1, 1), "tcp", "198.19.2.2:8080", DialOptions{Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := testsupport.Eventually(ctx, 20*time.Second, 20*time.Millisecond, func() error {
		if n := len(d.Result().Replies); n < 20 {
			return fmt.Errorf("%d attempts so far", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	r, err := d.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if r.Failures() != 0 || r.Counts()["b"] != len(r.Replies) {
		t.Errorf("dialer = %v; want only b", r)
	}
}

// TestGit pushes over git:// to the real daemon and clones back from a host.
func TestGit(t *testing.T) {
	l := ForTest(t, Options{Hosts: 1, Git: true})
	ctx := t.Context()
	c1, err := l.Git.PushFiles(ctx, "first", map[string]string{"hosts/a.yaml": "one\n", "b.yaml": "two\n"})
	if err != nil {
		t.Fatal(err)
	}
	c2, err := l.Git.PushFiles(ctx, "second", map[string]string{"hosts/a.yaml": "three\n"})
	if err != nil {
		t.Fatal(err)
	}
	if c1 == c2 || len(c2) != 40 {
		t.Fatalf("commits %q, %q; want two different hashes", c1, c2)
	}
	out, err := l.Exec(ctx, l.Hosts[0].NS, "git", "ls-remote", l.Git.URL(), "refs/heads/main")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(out); len(got) == 0 || got[0] != c2 {
		t.Errorf("ls-remote from host = %q; want %s", out, c2)
	}
	dir := filepath.Join(t.TempDir(), "clone")
	if err := l.Git.Clone(ctx, l.Hosts[0].NS, dir); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "hosts", "a.yaml"))
	if err != nil || string(got) != "three\n" {
		t.Errorf("cloned hosts/a.yaml = %q, %v; want %q", got, err, "three\n")
	}
	if _, err := os.Stat(filepath.Join(dir, "b.yaml")); !os.IsNotExist(err) {
		t.Errorf("b.yaml after PushFiles without it: stat err = %v; want not exist", err)
	}
}

// TestClose checks that Close leaves no namespace, process or marker behind.
func TestClose(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to create network namespaces")
	}
	markers := t.TempDir()
	l, err := New(t.Context(), Options{Hosts: 2, GuestsPerHost: 1, Git: true, MarkerDir: markers, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	p, err := l.Serve(t.Context(), l.Guest(1, 1), "x", "tcp:8080")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(markers, l.Prefix+".pid")); err != nil {
		t.Errorf("marker while running: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if nss, err := l.Namespaces(); err != nil || len(nss) != 0 {
		t.Errorf("namespaces after Close = %v, %v; want none", nss, err)
	}
	if p.Running() || l.Git.Daemon.Running() {
		t.Errorf("processes still running after Close")
	}
	if _, err := os.Stat(filepath.Join(markers, l.Prefix+".pid")); !os.IsNotExist(err) {
		t.Errorf("marker after Close: stat err = %v; want not exist", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close = %v; want nil", err)
	}
}

// TestSweep checks that Sweep removes a lab whose owner died, with the
// processes running in it, and leaves a live owner's lab alone.
func TestSweep(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to create network namespaces")
	}
	markers := t.TempDir()
	live := ForTest(t, Options{Hosts: 1, GuestsPerHost: 1, MarkerDir: markers})
	stale, err := New(t.Context(), Options{Hosts: 1, GuestsPerHost: 1, MarkerDir: markers, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stale.Close() })
	// A process left running in the stale lab, as after a kill -9 of its owner
	// (started without the lab so that only Sweep can find it).
	orphan := testsupport.NetnsCommand(t.Context(), stale.Hosts[0].NS, "sleep", "300")
	if err := orphan.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- orphan.Wait() }()
	// Pretend the owner died: a pid that exited.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(markers, stale.Prefix+".pid")
	if err := os.WriteFile(marker, fmt.Appendf(nil, "%d 1\n", dead.Process.Pid), 0o644); err != nil {
		t.Fatal(err)
	}
	removed, err := Sweep(markers)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(removed, []string{stale.Prefix}) {
		t.Errorf("Sweep removed %v; want [%s]", removed, stale.Prefix)
	}
	if nss, _ := stale.Namespaces(); len(nss) != 0 {
		t.Errorf("stale namespaces after Sweep: %v", nss)
	}
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Errorf("process in the stale lab survived Sweep")
	}
	if nss, _ := live.Namespaces(); len(nss) != 3 {
		t.Errorf("live lab namespaces after Sweep = %v; want its 3", nss)
	}
}
