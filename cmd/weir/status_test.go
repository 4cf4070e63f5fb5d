package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"weir/cluster"
	"weir/internal/testsupport"
)

const (
	stRev    = "1a2b3c4d5e6f708192a3b4c5d6e7f80912345678"
	stRev2   = "0f0e0d0c0b0a09080706050403020100ffeeddcc"
	stDigest = "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0"
)

func agreeing(rev string) cluster.Status {
	return cluster.BuildStatus(rev, []cluster.Member{
		{Name: "host-a", Address: "198.18.0.1:7946", State: cluster.StateAlive, NodeState: cluster.NodeState{Revision: rev, Digest: stDigest, Balancers: 1, Rules: 2}},
		{Name: "host-b", Address: "198.18.0.2:7946", State: cluster.StateAlive, NodeState: cluster.NodeState{Revision: rev, Digest: stDigest}},
	})
}

func disagreeing() cluster.Status {
	return cluster.BuildStatus(stRev, []cluster.Member{
		{Name: "host-a", Address: "198.18.0.1:7946", State: cluster.StateAlive, NodeState: cluster.NodeState{Revision: stRev, Digest: stDigest}},
		{Name: "host-b", Address: "198.18.0.2:7946", State: cluster.StateAlive, NodeState: cluster.NodeState{Revision: stRev2, Digest: stDigest}},
	})
}

// fakeAgent serves the statuses in turn on /status (repeating the last) and
// counts requests.
func fakeAgent(t *testing.T, statuses ...cluster.Status) (addr string, hits *atomic.Int32) {
	t.Helper()
	hits = &atomic.Int32{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/status" || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		i := int(hits.Add(1)) - 1
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(statuses[min(i, len(statuses)-1)])
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), hits
}

func runCLI(t *testing.T, fn func(context.Context, []string, io.Writer, io.Writer) int, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := fn(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestStatusFromAgent(t *testing.T) {
	tests := []struct {
		name       string
		serve      []cluster.Status
		args       []string
		wantCode   int
		wantOut    string // substring of stdout
		wantErr    string // substring of stderr
		wantMinHit int32
	}{
		{"table converged", []cluster.Status{agreeing(stRev)}, nil, exitOK, "converged: 2/2 alive on 1a2b3c4, digest 9f8e7d6c…", "", 1},
		{"table header", []cluster.Status{agreeing(stRev)}, nil, exitOK, "NAME    ADDRESS          STATE  REVISION  DIGEST    BALANCERS  RULES  ERROR\nhost-a  198.18.0.1:7946  alive  1a2b3c4   9f8e7d6c  1          2\n", "", 1},
		{"not converged exits 1", []cluster.Status{disagreeing()}, nil, exitFail, "not converged: 2/2 alive; host-b on 0f0e0d0, not 1a2b3c4", "", 1},
		{"wait until converged", []cluster.Status{disagreeing(), disagreeing(), agreeing(stRev)}, []string{"--wait", "10s"}, exitOK, "converged: 2/2", "", 3},
		{"wait times out", []cluster.Status{disagreeing()}, []string{"--wait", "1200ms"}, exitFail, "not converged", "not converged after 1.2s: host-b on 0f0e0d0", 2},
		{"wait for the newest revision", []cluster.Status{withLatest(agreeing(stRev), stRev2), withLatest(agreeing(stRev2), stRev2)}, []string{"--wait", "10s"}, exitOK, "on 0f0e0d0", "", 2},
		{"newest revision never applied", []cluster.Status{withLatest(agreeing(stRev), stRev2)}, []string{"--wait", "700ms"}, exitFail, "newest fetched 0f0e0d0 not applied", "newest fetched revision 0f0e0d0 is not applied", 1},
		{"wait for a pinned revision", []cluster.Status{agreeing(stRev), disagreeing(), agreeing(stRev2)}, []string{"--wait", "10s", "--revision", "0F0E0D0"}, exitOK, "on 0f0e0d0", "", 3},
		{"pinned by its full id", []cluster.Status{agreeing(stRev2)}, []string{"--revision", stRev2}, exitOK, "on 0f0e0d0", "", 1},
		{"converged on another revision", []cluster.Status{agreeing(stRev)}, []string{"--wait", "700ms", "--revision", "0f0e0d0c"}, exitFail, "converged: 2/2", "converged on 1a2b3c4, not 0f0e0d0c", 1},
		{"dir revision", []cluster.Status{agreeing("dir:" + stDigest)}, []string{"--revision", "dir:9f8e7d6"}, exitOK, "on dir:9f8e7d6", "", 1},
		{"bad revision", []cluster.Status{agreeing(stRev)}, []string{"--revision", "HEAD"}, exitUsage, "", "--revision \"HEAD\"", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, hits := fakeAgent(t, tt.serve...)
			code, out, errOut := runCLI(t, runStatus, append([]string{"--api", addr}, tt.args...)...)
			if code != tt.wantCode {
				t.Errorf("weir status %v = %d; want %d (stderr %q)", tt.args, code, tt.wantCode, errOut)
			}
			if !strings.Contains(out, tt.wantOut) {
				t.Errorf("stdout = %q; want it to contain %q", out, tt.wantOut)
			}
			if !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("stderr = %q; want it to contain %q", errOut, tt.wantErr)
			}
			if got := hits.Load(); got < tt.wantMinHit {
				t.Errorf("agent asked %d times; want at least %d", got, tt.wantMinHit)
			}
		})
	}
}

func withLatest(s cluster.Status, latest string) cluster.Status {
	s.Latest = latest
	return s
}

func TestStatusJSON(t *testing.T) {
	want := agreeing(stRev)
	addr, _ := fakeAgent(t, want)
	code, out, errOut := runCLI(t, runStatus, "--api", "http://"+addr, "-o", "json")
	if code != exitOK {
		t.Fatalf("weir status -o json = %d; stderr %s", code, errOut)
	}
	var got cluster.Status
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out)
	}
	if got.Revision != want.Revision || !got.Converged || len(got.Members) != 2 || got.Members[0] != want.Members[0] {
		t.Errorf("weir status -o json = %+v; want %+v", got, want)
	}
}

func TestStatusErrors(t *testing.T) {
	closed := testsupport.FreeAddr(t)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"agent down", []string{"--api", closed, "--timeout", "1s"}, exitUsage, "is `weir agent` running"},
		{"agent down with wait", []string{"--api", closed, "--wait", "600ms"}, exitFail, "is `weir agent` running"},
		{"bad output", []string{"-o", "yaml"}, exitUsage, "want table or json"},
		{"extra argument", []string{"now"}, exitUsage, "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runCLI(t, runStatus, tt.args...)
			if code != tt.wantCode || !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("weir status %v = %d, stderr %q; want %d and %q", tt.args, code, errOut, tt.wantCode, tt.wantErr)
			}
		})
	}
}

func startAgentNode(t *testing.T, name string, keys [][]byte, st cluster.NodeState, join ...string) *cluster.Cluster {
	t.Helper()
	c, err := cluster.New(cluster.Config{
		Node: name, Bind: "127.0.0.1:0", Join: join, Keys: keys, Label: "status-test",
		Profile: "local", SettleTime: -1, JoinBackoff: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Shutdown() })
	if err := c.SetLocal(st); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestStatusObserver(t *testing.T) {
	key, _ := cluster.GenerateKey()
	keys, _ := cluster.ParseKeys([]byte(key))
	keyFile := filepath.Join(t.TempDir(), "gossip.key")
	if err := os.WriteFile(keyFile, []byte("# test key\n"+key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	st := cluster.NodeState{Revision: stRev, Digest: stDigest, Balancers: 1, Rules: 3}
	a := startAgentNode(t, "host-a", keys, st)
	b := startAgentNode(t, "host-b", keys, st, a.LocalAddr())
	deadline := time.Now().Add(5 * time.Second)
	for len(a.AliveHosts()) != 2 || len(b.AliveHosts()) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("agents did not form a cluster: %v %v", a.AliveHosts(), b.AliveHosts())
		}
		time.Sleep(10 * time.Millisecond)
	}

	observe := func(extra ...string) []string {
		return append([]string{"--join", a.LocalAddr(), "--cluster", "status-test", "--bind", "127.0.0.1:0",
			"--gossip-profile", "local", "--settle", "200ms", "--timeout", "2s", "--observer-name", "laptop"}, extra...)
	}
	code, out, errOut := runCLI(t, runStatus, observe("--gossip-key-file", keyFile, "-o", "json", "--wait", "5s")...)
	if code != exitOK {
		t.Fatalf("weir status --join = %d; stderr %s; stdout %s", code, errOut, out)
	}
	var s cluster.Status
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("observer output: %v\n%s", err, out)
	}
	if !s.Converged || s.Revision != stRev || len(s.Members) != 2 || s.Members[0].Name != "host-a" || s.Members[1].Rules != 3 {
		t.Errorf("observer status = %+v; want host-a and host-b converged on %s", s, stRev)
	}
	// It left on the way out, and was never a host.
	for _, n := range []*cluster.Cluster{a, b} {
		if got := n.AliveHosts(); len(got) != 2 {
			t.Errorf("%v plans with %v; the observer must never be a host", n.LocalAddr(), got)
		}
	}

	// Without the key the observer never gets in.
	code, _, errOut = runCLI(t, runStatus, observe("--timeout", "700ms")...)
	if code != exitUsage || !strings.Contains(errOut, "could not join") {
		t.Errorf("weir status --join without key = %d, stderr %q; want %d and 'could not join'", code, errOut, exitUsage)
	}
}
