package render_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	ts "weir/internal/testsupport"
	"weir/reconcile/plan"
	"weir/reconcile/render"
	"weir/spec"
)

// iptablesNetns returns a fresh namespace for t in which the host's default
// iptables binaries run; it skips t when not root or when they are not
// installed.
func iptablesNetns(t testing.TB) *ts.Netns {
	t.Helper()
	ns := ts.NewNetns(t)
	for _, bin := range []string{"iptables-restore", "iptables-save", "iptables"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed", bin)
		}
	}
	return ns
}

// TestRenderCanonicalOnKernel proves the claim drift detection relies on:
// what Render writes is, rule for rule and after SaveForm, what iptables-save
// prints back, jumps included.
func TestRenderCanonicalOnKernel(t *testing.T) {
	ns := iptablesNetns(t)
	plans := []struct {
		name string
		rs   *render.Ruleset
	}{
		{"tree with dnat", render.Render(plan.Assign(treeSpec(), []string{"host-a", "host-b"}, nil), "host-a")},
		{"demo with hairpin and odd weights", render.Render(plan.Assign(weightedSpec(ts.Weights(map[string]int{"orders-1": 1, "orders-2": 2, "orders-3": 3})), []string{"host-a", "host-b", "host-c"}, nil), "host-a")},
		{"reject", render.Render(plan.Assign(ts.DemoSpec(), nil, nil), "host-a")},
	}
	for i, pl := range plans {
		t.Run(pl.name, func(t *testing.T) {
			ns.RunInput(pl.rs.Bytes(), "iptables-restore", "--noflush", "-w")
			if i == 0 {
				for _, tb := range pl.rs.Tables {
					for _, j := range tb.Jumps {
						ns.Run(append([]string{"iptables", "-w", "-t", tb.Name, "-A", j.Chain}, j.Rule...)...)
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
						want = append(want, "-A "+c.Name+" "+render.SaveForm(r))
					}
				}
				var got []string
				for _, line := range strings.Split(ns.Run("iptables-save", "-t", tb.Name), "\n") {
					if strings.HasPrefix(line, "-A ") {
						got = append(got, line)
					}
				}
				// iptables-save orders chains its own way; compare as sorted
				// lists of lines (rule order within a chain is kept by both).
				slices.Sort(want)
				slices.Sort(got)
				if n, g, w := ts.FirstDiff(got, want); n > 0 {
					t.Fatalf("table %s: iptables-save line differs:\n got: %s\nwant: %s", tb.Name, g, w)
				}
			}
			// Replace with an empty host, so the next plan starts from the top chains only.
			var empty render.Ruleset
			for _, tb := range pl.rs.Tables {
				et := render.Table{Name: tb.Name}
				for _, c := range tb.Chains {
					et.Chains = append(et.Chains, render.Chain{Name: c.Name})
				}
				empty.Tables = append(empty.Tables, et)
			}
			ns.RunInput(empty.Bytes(), "iptables-restore", "--noflush", "-w")
			var del bytes.Buffer
			for _, tb := range pl.rs.Tables {
				fmt.Fprintf(&del, "*%s\n", tb.Name)
				for _, c := range tb.Chains {
					if !slices.Contains([]string{render.ServicesChain, render.RejectChain, render.PostroutingChain}, c.Name) {
						fmt.Fprintf(&del, "-X %s\n", c.Name)
					}
				}
				fmt.Fprintf(&del, "COMMIT\n")
			}
			ns.RunInput(del.Bytes(), "iptables-restore", "--noflush", "-w")
		})
	}
}

// BenchmarkDispatchConnect measures what dispatch costs a new connection on
// the real kernel (the per-packet cost): TCP connect latency through
// nat OUTPUT from a "source guest" address to a frontend DNATed to a local
// listener, with 1 balancer and with 10,000 in tree and in linear dispatch.
// Source and target addresses live on the namespace's loopback, so the only
// thing that changes between the rows is the rules a SYN meets. Reports
// p50/p90 connect latency; needs root.
func BenchmarkDispatchConnect(b *testing.B) {
	for _, row := range []struct {
		name string
		n    int
		opts render.RenderOptions
	}{
		{"1", 1, render.RenderOptions{}},
		{"10k-tree", 10000, render.RenderOptions{}},
		{"10k-linear", 10000, render.RenderOptions{Dispatch: render.LinearDispatch}},
	} {
		b.Run(row.name, func(b *testing.B) { dispatchConnect(b, row.n, row.opts) })
	}
}

// BenchmarkDispatchConnect6 is BenchmarkDispatchConnect over ip6tables:
// IPv6 frontends with 22 random bits spread over fd00::/16, so the tree
// splits 128-bit addresses.
func BenchmarkDispatchConnect6(b *testing.B) {
	for _, row := range []struct {
		name string
		n    int
		opts render.RenderOptions
	}{
		{"1", 1, render.RenderOptions{Family: spec.IPv6}},
		{"10k-tree", 10000, render.RenderOptions{Family: spec.IPv6}},
		{"10k-linear", 10000, render.RenderOptions{Family: spec.IPv6, Dispatch: render.LinearDispatch}},
	} {
		b.Run(row.name, func(b *testing.B) { dispatchConnect(b, row.n, row.opts) })
	}
}

// connectLab is the address plan of dispatchConnect in one family.
type connectLab struct {
	cmd          string // iptables or ip6tables
	src, dst     string // source guest and target, on loopback
	frontendNet  string // routed to loopback: frontends are drawn from it
	randFrontend func(rng *rand.Rand) netip.Addr
}

var connectLabs = [2]connectLab{
	spec.IPv4: {"iptables", "198.19.1.2", "198.19.2.2", "100.64.0.0/10", func(rng *rand.Rand) netip.Addr {
		return render.BitsAddr(100<<24 | 64<<16 | rng.Uint32N(1<<22))
	}},
	spec.IPv6: {"ip6tables", "fd00:19:1::2", "fd00:19:2::2", "fd00::/16", func(rng *rand.Rand) netip.Addr {
		v := rng.Uint32N(1 << 22)
		return netip.AddrFrom16([16]byte{0xfd, 0, byte(v >> 14), 9: byte(v >> 6), 15: byte(v<<2) | 1})
	}},
}

// dispatchConnect is one row of BenchmarkDispatchConnect(6): n balancers
// rendered with opts into a fresh namespace, then connects.
func dispatchConnect(b *testing.B, n int, opts render.RenderOptions) {
	cl := connectLabs[opts.Family]
	ns := iptablesNetns(b)
	ns.Run("ip", "link", "set", "lo", "up")
	for _, a := range []string{cl.src, cl.dst} {
		if opts.Family == spec.IPv6 {
			ns.Run("ip", "addr", "add", a+"/128", "dev", "lo", "nodad")
		} else {
			ns.Run("ip", "addr", "add", a+"/32", "dev", "lo")
		}
	}
	// The route lookup precedes nat OUTPUT, so the frontends need one;
	// after DNAT the packet is rerouted to the local target.
	ns.Run("ip", "route", "add", cl.frontendNet, "dev", "lo")

	hosts := []spec.Host{
		ts.Host("host-a", "198.18.0.1", ts.Guest("web-1", cl.src, "client")),
		ts.Host("host-b", "198.18.0.2", ts.Guest("orders-1", cl.dst, "orders")),
	}
	rng := rand.New(rand.NewPCG(5, 6))
	seen := map[spec.Frontend]bool{}
	var bals []spec.Balancer
	for i := range n {
		var fe spec.Frontend
		for fe.Port == 0 || seen[fe] {
			fe = spec.Frontend{Address: cl.randFrontend(rng), Port: uint16(1 + rng.IntN(65535)), Protocol: spec.TCP}
		}
		seen[fe] = true
		bals = append(bals, spec.Balancer{Name: fmt.Sprintf("b%05d", i), Source: "client", Target: "orders",
			Frontend: fe, TargetPort: 8080, Strategy: spec.Random})
	}
	rs := render.RenderWith(plan.Assign(ts.Spec(hosts, bals...), []string{"host-a", "host-b"}, nil), "host-a", opts)
	ns.RunInput(rs.Bytes(), cl.cmd+"-restore", "--noflush", "-w")
	for _, tb := range rs.Tables {
		for _, j := range tb.Jumps {
			ns.Run(append([]string{cl.cmd, "-w", "-t", tb.Name, "-A", j.Chain}, j.Rule...)...)
		}
	}
	// Probe frontends spread over the sorted order, so linear
	// dispatch is measured at its average, not its best.
	var probes []string
	for k := range 16 {
		fe := bals[k*len(bals)/16].Frontend
		probes = append(probes, netip.AddrPortFrom(fe.Address, fe.Port).String())
	}
	lat := connectLatencies(b, ns, cl, probes)
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*9/10].Nanoseconds())/1e3, "p90-µs")
}

// connectLatencies connects from cl.src to the probes in turn, b.N times,
// to a listener on cl.dst, and returns each connect's latency. Sockets
// belong to the namespace of the thread that creates them, so the listener
// and every connection are made in ns.
func connectLatencies(b *testing.B, ns *ts.Netns, cl connectLab, probes []string) []time.Duration {
	var lat []time.Duration
	err := ns.Do(func() error {
		ln, err := net.Listen("tcp", net.JoinHostPort(cl.dst, "8080"))
		if err != nil {
			return err
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
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(cl.src)}, Timeout: 2 * time.Second}
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			start := time.Now()
			c, err := d.Dial("tcp", probes[i%len(probes)])
			if err != nil {
				return fmt.Errorf("connect %s: %w", probes[i%len(probes)], err)
			}
			lat = append(lat, time.Since(start))
			c.Close()
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	return lat
}
