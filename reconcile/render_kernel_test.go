package reconcile

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"weir/spec"
)

// renderNetns creates a network namespace for this test and removes it at
// the end, also on failure. It skips when not root or without iproute2.
func renderNetns(t testing.TB) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	for _, bin := range []string{"ip", "iptables-restore", "iptables-save", "iptables"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed", bin)
		}
	}
	name := fmt.Sprintf("wrr%d-%d", os.Getpid(), netnsSeq.Add(1))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	return name
}

// netnsSeq numbers the namespaces of one test process.
var netnsSeq atomic.Int64

func inNetns(t testing.TB, ns string, stdin []byte, args ...string) string {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestRenderCanonicalOnKernel proves the claim drift detection relies on:
// what Render writes is, rule for rule and after SaveForm, what iptables-save
// prints back, jumps included.
func TestRenderCanonicalOnKernel(t *testing.T) {
	ns := renderNetns(t)
	plans := []struct {
		name string
		rs   *Ruleset
	}{
		{"tree with dnat", Render(Assign(treeSpec(), []string{"host-a", "host-b"}), "host-a")},
		{"demo with hairpin and odd weights", Render(Assign(weightedSpec(fxWeights(map[string]int{"orders-1": 1, "orders-2": 2, "orders-3": 3})), []string{"host-a", "host-b", "host-c"}), "host-a")},
		{"reject", Render(Assign(demoSpec(), nil), "host-a")},
	}
	for i, pl := range plans {
		t.Run(pl.name, func(t *testing.T) {
			inNetns(t, ns, pl.rs.Bytes(), "iptables-restore", "--noflush", "-w")
			if i == 0 {
				for _, tb := range pl.rs.Tables {
					for _, j := range tb.Jumps {
						inNetns(t, ns, nil, append([]string{"iptables", "-w", "-t", tb.Name, "-A", j.Chain}, j.Rule...)...)
					}
				}
			}
			for _, tb := range pl.rs.Tables {
				var want []string
				for _, j := range tb.Jumps {
					want = append(want, "-A "+j.Chain+" "+strings.Join(j.Rule, " "))
				}
				for _, c := range tb.Chains {
					for _, r := range c.Rules {
						want = append(want, "-A "+c.Name+" "+SaveForm(r))
					}
				}
				var got []string
				for _, line := range strings.Split(inNetns(t, ns, nil, "iptables-save", "-t", tb.Name), "\n") {
					if strings.HasPrefix(line, "-A ") {
						got = append(got, line)
					}
				}
				// iptables-save orders chains its own way; compare as sorted
				// lists of lines (rule order within a chain is kept by both).
				slices.Sort(want)
				slices.Sort(got)
				for k := 0; k < len(want) || k < len(got); k++ {
					var g, w string
					if k < len(got) {
						g = got[k]
					}
					if k < len(want) {
						w = want[k]
					}
					if g != w {
						t.Fatalf("table %s: iptables-save line differs:\n got: %s\nwant: %s", tb.Name, g, w)
					}
				}
			}
			// Replace with an empty host, so the next plan starts from the top chains only.
			var empty Ruleset
			for _, tb := range pl.rs.Tables {
				et := Table{Name: tb.Name}
				for _, c := range tb.Chains {
					et.Chains = append(et.Chains, Chain{Name: c.Name})
				}
				empty.Tables = append(empty.Tables, et)
			}
			inNetns(t, ns, empty.Bytes(), "iptables-restore", "--noflush", "-w")
			var del bytes.Buffer
			for _, tb := range pl.rs.Tables {
				fmt.Fprintf(&del, "*%s\n", tb.Name)
				for _, c := range tb.Chains {
					if !slices.Contains([]string{ServicesChain, RejectChain, PostroutingChain, MarkMasqChain}, c.Name) {
						fmt.Fprintf(&del, "-X %s\n", c.Name)
					}
				}
				fmt.Fprintf(&del, "COMMIT\n")
			}
			inNetns(t, ns, del.Bytes(), "iptables-restore", "--noflush", "-w")
		})
	}
}

// BenchmarkDispatchConnect measures what dispatch costs a new connection on
// the real kernel (issue 7, per-packet cost): TCP connect latency through
// nat OUTPUT from a "source guest" address to a frontend DNATed to a local
// listener, with 1 balancer and with 10,000 in tree and in linear dispatch.
// Source and target addresses live on the namespace's loopback, so the only
// thing that changes between the rows is the rules a SYN meets. Reports
// p50/p90 connect latency; needs root.
func BenchmarkDispatchConnect(b *testing.B) {
	for _, row := range []struct {
		name string
		n    int
		opts RenderOptions
	}{
		{"1", 1, RenderOptions{}},
		{"10k-tree", 10000, RenderOptions{}},
		{"10k-linear", 10000, RenderOptions{Dispatch: LinearDispatch}},
	} {
		b.Run(row.name, func(b *testing.B) {
			ns := renderNetns(b)
			inNetns(b, ns, nil, "ip", "link", "set", "lo", "up")
			inNetns(b, ns, nil, "ip", "addr", "add", "198.19.1.2/32", "dev", "lo")
			inNetns(b, ns, nil, "ip", "addr", "add", "198.19.2.2/32", "dev", "lo")
			// The route lookup precedes nat OUTPUT, so the frontends need one;
			// after DNAT the packet is rerouted to the local target.
			inNetns(b, ns, nil, "ip", "route", "add", "100.64.0.0/10", "dev", "lo")

			hosts := []spec.Host{
				fxHost("host-a", "198.18.0.1", fxGuest("web-1", "198.19.1.2", "client")),
				fxHost("host-b", "198.18.0.2", fxGuest("orders-1", "198.19.2.2", "orders")),
			}
			rng := rand.New(rand.NewPCG(5, 6))
			seen := map[spec.Frontend]bool{}
			var bals []spec.Balancer
			for i := range row.n {
				var fe spec.Frontend
				for fe.Port == 0 || seen[fe] {
					v := 100<<24 | 64<<16 | rng.Uint32N(1<<22)
					fe = spec.Frontend{Address: bitsAddr(v), Port: uint16(1 + rng.IntN(65535)), Protocol: spec.TCP}
				}
				seen[fe] = true
				bals = append(bals, spec.Balancer{Name: fmt.Sprintf("b%05d", i), Source: "client", Target: "orders",
					Frontend: fe, TargetPort: 8080, Strategy: spec.Random})
			}
			rs := RenderWith(Assign(fxSpec(hosts, bals...), []string{"host-a", "host-b"}), "host-a", row.opts)
			inNetns(b, ns, rs.Bytes(), "iptables-restore", "--noflush", "-w")
			for _, tb := range rs.Tables {
				for _, j := range tb.Jumps {
					inNetns(b, ns, nil, append([]string{"iptables", "-w", "-t", tb.Name, "-A", j.Chain}, j.Rule...)...)
				}
			}
			// Probe frontends spread over the sorted order, so linear
			// dispatch is measured at its average, not its best.
			var probes []string
			for k := range 16 {
				fe := bals[k*len(bals)/16].Frontend
				probes = append(probes, netip.AddrPortFrom(fe.Address, fe.Port).String())
			}

			// Sockets belong to the namespace of the thread that creates
			// them: lock this goroutine to a thread and move it there.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			self, err := os.Open("/proc/thread-self/ns/net")
			if err != nil {
				b.Fatal(err)
			}
			defer self.Close()
			target, err := os.Open("/var/run/netns/" + ns)
			if err != nil {
				b.Fatal(err)
			}
			defer target.Close()
			if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
				b.Fatalf("setns: %v", err)
			}
			defer func() {
				if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
					panic(fmt.Sprintf("cannot return to the original network namespace: %v", err))
				}
			}()
			ln, err := net.Listen("tcp", "198.19.2.2:8080")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("198.19.1.2")}, Timeout: 2 * time.Second}
			var lat []time.Duration
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				start := time.Now()
				c, err := d.Dial("tcp", probes[i%len(probes)])
				if err != nil {
					b.Fatalf("connect %s: %v", probes[i%len(probes)], err)
				}
				lat = append(lat, time.Since(start))
				c.Close()
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*9/10].Nanoseconds())/1e3, "p90-µs")
		})
	}
}
