package testsupport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"weir/reconcile/netfilter"
)

// Netns is a network namespace created for one test (ip netns add) and
// removed when the test ends, also on failure. Tests program iptables in it,
// run commands in it and open sockets in it without touching the host.
type Netns struct {
	// Name is the namespace's name under /run/netns: NetnsPrefix(), then a
	// number.
	Name string

	t      testing.TB
	remove sync.Once
	err    error
}

// NetnsPrefix returns how the name of every namespace this test process
// creates starts. It holds the process id, so parallel test binaries never
// collide and a namespace left behind by a killed run can be told from a
// live run's.
func NetnsPrefix() string { return netnsPrefix }

var netnsPrefix = fmt.Sprintf("wt%d-", os.Getpid())

// netnsSeq numbers the namespaces of one test process.
var netnsSeq atomic.Int64

// sweepOnce runs sweepStaleNetns before the first namespace of a process.
var sweepOnce sync.Once

// staleNetns matches the names NewNetns gives, capturing the creator's pid.
var staleNetns = regexp.MustCompile(`^wt([0-9]+)-[0-9]+$`)

// sweepStaleNetns deletes the namespaces that test processes which no longer
// exist left behind (kill -9, a test timeout): a name holds its creator's
// pid, so a namespace whose pid is gone belongs to nobody. It is best effort:
// a namespace it cannot delete is left for the next run.
func sweepStaleNetns() {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		m := staleNetns.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		if _, err := os.Stat("/proc/" + m[1]); errors.Is(err, fs.ErrNotExist) {
			DelNetns(context.Background(), e.Name()) //nolint:errcheck // best effort, see above
		}
	}
}

// NewNetns creates a namespace for t and removes it when t ends. It skips t
// when not root or when iproute2's ip is not installed.
func NewNetns(t testing.TB) *Netns {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip to create network namespaces")
	}
	sweepOnce.Do(sweepStaleNetns)
	n := &Netns{Name: fmt.Sprintf("%s%d", netnsPrefix, netnsSeq.Add(1)), t: t}
	if err := AddNetns(context.Background(), n.Name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Remove(); err != nil {
			t.Error(err)
		}
	})
	return n
}

// Remove deletes the namespace now instead of when the test ends, for a
// benchmark that creates one per operation. Later calls only return the
// first one's error.
func (n *Netns) Remove() error {
	n.remove.Do(func() { n.err = DelNetns(context.Background(), n.Name) })
	return n.err
}

// Command returns a command that runs args[0] with the other args inside the
// namespace, through `ip netns exec`.
func (n *Netns) Command(args ...string) *exec.Cmd {
	return NetnsCommand(context.Background(), n.Name, args...)
}

// Output runs args inside the namespace and returns its standard output;
// its error includes the standard error.
func (n *Netns) Output(args ...string) (string, error) {
	return n.output(nil, args)
}

// Run is Output that fails the test on error: the test given to NewNetns,
// so call it from that test's goroutine.
func (n *Netns) Run(args ...string) string {
	n.t.Helper()
	out, err := n.output(nil, args)
	if err != nil {
		n.t.Fatal(err)
	}
	return out
}

// RunInput is Run with stdin as the command's standard input, e.g. for
// iptables-restore.
func (n *Netns) RunInput(stdin []byte, args ...string) string {
	n.t.Helper()
	out, err := n.output(stdin, args)
	if err != nil {
		n.t.Fatal(err)
	}
	return out
}

func (n *Netns) output(stdin []byte, args []string) (string, error) {
	cmd := n.Command(args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s in %s: %w: %s", strings.Join(args, " "), n.Name, err, stderr.String())
	}
	return string(out), nil
}

// Do runs fn on an OS thread switched into the namespace and back: sockets
// fn opens and processes it starts belong to the namespace. fn runs on the
// calling goroutine, so it may fail the test; it must not leave goroutines
// behind that expect to be in the namespace.
func (n *Netns) Do(fn func() error) error {
	return netfilter.InNetns(n.Name, fn)
}

// AddNetns creates the named network namespace (ip netns add). Every
// namespace of weir's tests, of the e2e lab, the bench and the demo is
// created here and deleted by DelNetns; netfilter.InNetns is how a thread
// enters one, NetnsCommand how a process runs in one.
func AddNetns(ctx context.Context, name string) error {
	return runIP(ctx, "netns", "add", name)
}

// DelNetns deletes the named network namespace (ip netns del). Processes
// still running in it keep it alive, unnamed, until they exit.
func DelNetns(ctx context.Context, name string) error {
	return runIP(ctx, "netns", "del", name)
}

// runIP runs iproute2's ip with args; its error holds ip's output.
func runIP(ctx context.Context, args ...string) error {
	if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// NetnsCommand returns a command that runs args[0] with the other args
// inside namespace ns, through `ip netns exec`, which execs the program in
// place: the command's pid is the program's.
func NetnsCommand(ctx context.Context, ns string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...)
}
