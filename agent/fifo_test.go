package agent

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"weir/agent/source"
)

// TestFIFOInWatchedDir: a FIFO named x.yaml appearing in a watched
// directory neither hangs the agent nor slips past validation: the
// revision is rejected as `weir validate` rejects it, the last good one
// stays applied, and the agent goes on.
func TestFIFOInWatchedDir(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "specs.yaml"), []byte(yamlHosts+yamlBalancer(80)), 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := source.NewDir(source.DirConfig{Dir: root, Debounce: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	sy := &fakeSyncer{}
	cl := newFakeCluster(true, "host-a", "host-b", "host-c")
	h := newHarnessDeps(t, Config{Node: "host-a"}, Deps{Source: src, Cluster: cl, Syncer: sy}).start()
	waitAdvancing(t, h.clk, 50*time.Millisecond, "the first revision applied", func() bool { return h.a.State().Revision != "" })
	good := h.a.State().Revision

	if err := syscall.Mkfifo(filepath.Join(root, "x.yaml"), 0o644); err != nil {
		t.Skipf("cannot make a FIFO here: %v", err)
	}
	waitAdvancing(t, h.clk, 50*time.Millisecond, "the revision with the FIFO rejected", func() bool {
		return strings.Contains(h.a.State().Error, "x.yaml:1: not a regular file (p---------)")
	})
	if st := h.a.State(); st.Revision != good {
		t.Errorf("after the FIFO, revision = %s; want the last good %s", st.Revision, good)
	}
	// Still alive: removing the FIFO brings the tree back.
	os.Remove(filepath.Join(root, "x.yaml"))
	waitAdvancing(t, h.clk, 50*time.Millisecond, "the error cleared", func() bool { return h.a.State().Error == "" })
}
