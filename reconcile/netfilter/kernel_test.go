package netfilter_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"testing"

	ts "weir/internal/testsupport"
	"weir/reconcile/netfilter"
	"weir/reconcile/render"
	"weir/spec"
)

// Real-kernel tests run every iptables operation inside a fresh network
// namespace per test: IPTables gets Options.Netns and switches a locked OS
// thread into it (see InNetns), while the test's own "admin" commands and
// reads go through `ip netns exec`, an independent path.

// kernelHarness returns a harness over a real backend in a fresh namespace.
func kernelHarness(t testing.TB, backend string) *harness {
	return familyHarness(t, backend, spec.IPv4)
}

// familyHarness is kernelHarness over the binaries of family (iptables or
// ip6tables); the harness is named after its backend, prefixed with the
// command for IPv6.
func familyHarness(t testing.TB, backend string, family spec.Family) *harness {
	nf, ns := ts.NewIPTablesWith(t, netfilter.IPTablesOptions{Backend: backend, Family: family})
	bin := netfilter.Command(family) + "-" + backend
	name := backend
	if family == spec.IPv6 {
		name = bin
	}
	return &harness{
		name: name,
		nf:   nf,
		exec: func(table string, args ...string) error {
			_, err := ns.Output(append([]string{bin, "-w", "-t", table}, args...)...)
			return err
		},
		save: func(table string) (string, error) {
			return ns.Output(bin+"-save", "-t", table)
		},
		ns: ns,
	}
}

func TestSyncerKernel(t *testing.T) {
	for _, backend := range []string{netfilter.BackendNFT, netfilter.BackendLegacy} {
		t.Run(backend, func(t *testing.T) {
			behaviourSuite(t, kernelHarness(t, backend))
		})
	}
}

// TestIPTablesListRules checks ListRules on both backends: rules in the
// kernel's form, built-in chains, and an error for a missing chain.
func TestIPTablesListRules(t *testing.T) {
	for _, backend := range []string{netfilter.BackendNFT, netfilter.BackendLegacy} {
		t.Run(backend, func(t *testing.T) {
			h := kernelHarness(t, backend)
			ctx := context.Background()
			text := "*nat\n:WEIR-A - [0:0]\n-A WEIR-A -p udp -d 198.20.0.9 --dport 53 -j DNAT --to-destination 198.19.1.2:53\nCOMMIT\n"
			if err := h.nf.Restore(ctx, []byte(text)); err != nil {
				t.Fatal(err)
			}
			if _, err := h.nf.EnsureJump(ctx, "nat", "OUTPUT", []string{"-j", "WEIR-A"}); err != nil {
				t.Fatal(err)
			}
			got, err := h.nf.ListRules(ctx, "nat", []string{"WEIR-A", "OUTPUT"})
			if err != nil {
				t.Fatal(err)
			}
			want := map[string][]string{
				"WEIR-A": {"-d 198.20.0.9/32 -p udp -m udp --dport 53 -j DNAT --to-destination 198.19.1.2:53"},
				"OUTPUT": {"-j WEIR-A"},
			}
			for c, w := range want {
				if fmt.Sprint(got[c]) != fmt.Sprint(w) {
					t.Errorf("ListRules(nat, %s) = %q; want %q", c, got[c], w)
				}
			}
			if _, err := h.nf.ListRules(ctx, "nat", []string{"WEIR-NONE"}); err == nil {
				t.Errorf("ListRules(nat, WEIR-NONE) succeeded; want an error")
			}
		})
	}
}

// TestIPTablesRestoreFrom: the text a restore writes as it goes reaches
// iptables-restore whole; a line it refuses fails the restore with its
// message, and so does a writer that fails, without applying anything.
func TestIPTablesRestoreFrom(t *testing.T) {
	for _, backend := range []string{netfilter.BackendNFT, netfilter.BackendLegacy} {
		t.Run(backend, func(t *testing.T) {
			h := kernelHarness(t, backend)
			nf := h.nf.(*netfilter.IPTables)
			ctx := context.Background()
			lines := func(body ...string) func(io.Writer) error {
				return func(w io.Writer) error {
					for _, l := range body {
						if _, err := io.WriteString(w, l+"\n"); err != nil {
							return err
						}
					}
					return nil
				}
			}
			var big []string
			for i := range 5000 {
				big = append(big, fmt.Sprintf("-A WEIR-A -d 198.20.%d.%d/32 -j RETURN", i/250, i%250+1))
			}
			ok := append(append([]string{"*nat", ":WEIR-A - [0:0]"}, big...), "COMMIT")
			if err := nf.RestoreFrom(ctx, lines(ok...)); err != nil {
				t.Fatal(err)
			}
			if got, err := h.nf.ListRules(ctx, "nat", []string{"WEIR-A"}); err != nil || len(got["WEIR-A"]) != len(big) {
				t.Fatalf("after RestoreFrom: %d rules, %v; want %d", len(got["WEIR-A"]), err, len(big))
			}
			err := nf.RestoreFrom(ctx, lines("*nat", ":WEIR-B - [0:0]", "-A WEIR-B -j NO-SUCH-TARGET", "COMMIT"))
			if err == nil || !strings.Contains(err.Error(), "iptables") {
				t.Errorf("RestoreFrom of a bad rule = %v; want the command's error", err)
			}
			boom := errors.New("boom")
			err = nf.RestoreFrom(ctx, func(w io.Writer) error {
				io.WriteString(w, "*nat\n:WEIR-C - [0:0]\n")
				return boom
			})
			if !errors.Is(err, boom) {
				t.Errorf("RestoreFrom with a failing writer = %v; want it", err)
			}
			if _, err := h.nf.ListRules(ctx, "nat", []string{"WEIR-C"}); err == nil {
				t.Errorf("a restore whose writer failed created WEIR-C")
			}
		})
	}
}

// TestConntrackKernel sends real UDP datagrams through a balancer in a
// namespace, removes one target and checks that exactly the conntrack entries
// DNATed to it are gone, in IPv4 and in IPv6.
func TestConntrackKernel(t *testing.T) {
	t.Run("ipv4", func(t *testing.T) {
		conntrackSuite(t, kernelHarness(t, netfilter.BackendNFT), "198.20.0.10", "198.19.2.2", "198.19.2.3")
	})
	t.Run("ipv6", func(t *testing.T) {
		conntrackSuite(t, kernelHarness6(t, netfilter.BackendNFT), "fd00:20::10", "fd00:19:2::2", "fd00:19:2::3")
	})
}

// conntrackSuite is TestConntrackKernel in h's family: frontend fe:5353
// balanced over a:5353 and b:5353, then b removed.
func conntrackSuite(t *testing.T, h *harness, feAddr, aAddr, bAddr string) {
	ctx := context.Background()
	fam := spec.FamilyOf(netip.MustParseAddr(feAddr))
	h.ns.Run("ip", "link", "set", "lo", "up")
	for _, addr := range []string{feAddr, aAddr, bAddr} {
		ip := netip.MustParseAddr(addr)
		h.ns.Run("ip", "addr", "add", netip.PrefixFrom(ip, ip.BitLen()).String(), "dev", "lo", "nodad")
	}
	fe := spec.Frontend{Address: netip.MustParseAddr(feAddr), Port: 5353, Protocol: spec.UDP}
	a, b := netip.AddrPortFrom(netip.MustParseAddr(aAddr), 5353), netip.AddrPortFrom(netip.MustParseAddr(bAddr), 5353)
	// Round-robin (nth) makes the spread deterministic: datagrams of four
	// flows alternate between the two targets.
	ruleset := func(targets ...netip.AddrPort) *render.Ruleset {
		c := render.Chain{Name: "WEIR-SVC-UDP"}
		dst := netip.PrefixFrom(fe.Address, fe.Address.BitLen()).String()
		for i, to := range targets {
			stat := ""
			if left := len(targets) - i; left > 1 {
				stat = fmt.Sprintf("-m statistic --mode nth --every %d --packet 0 ", left)
			}
			c.Rules = append(c.Rules, fmt.Sprintf("-d %s -p udp -m udp --dport 5353 %s-j DNAT --to-destination %s", dst, stat, to))
		}
		return &render.Ruleset{Family: fam,
			Tables: []render.Table{{Name: "nat", Chains: []render.Chain{c},
				Jumps: []render.Jump{{Chain: "OUTPUT", Rule: []string{"-j", "WEIR-SVC-UDP"}}}}},
			Flows: []render.Flow{{Balancer: "udp", Frontend: fe, Targets: targets}},
		}
	}
	s := netfilter.NewSyncer(h.nf, netfilter.SyncerOptions{})
	if _, err := s.Apply(ctx, ruleset(a, b)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		// Each bash opens a UDP socket on a new ephemeral port: a new flow.
		h.ns.Run("bash", "-c", "echo hi >/dev/udp/"+feAddr+"/5353")
	}
	entries := func() map[string]int {
		out := h.ns.Run("conntrack", "-L", "-f", fam.Name(), "-p", "udp", "--orig-dst", feAddr)
		got := map[string]int{}
		for _, l := range strings.Split(out, "\n") {
			for _, to := range []netip.AddrPort{a, b} {
				if strings.Contains(l, "src="+to.Addr().String()+" ") {
					got[to.Addr().String()]++
				}
			}
		}
		return got
	}
	before := entries()
	if before[a.Addr().String()] != 2 || before[b.Addr().String()] != 2 {
		t.Fatalf("conntrack entries per target before = %v; want 2 each", before)
	}
	res, err := s.Apply(ctx, ruleset(a))
	if err != nil {
		t.Fatal(err)
	}
	if res.ConntrackDeleted != 2 {
		t.Errorf("Apply(without %s).ConntrackDeleted = %d; want 2", b, res.ConntrackDeleted)
	}
	after := entries()
	if after[a.Addr().String()] != 2 || after[b.Addr().String()] != 0 {
		t.Errorf("conntrack entries per target after = %v; want 2 for %s, none for %s", after, a.Addr(), b.Addr())
	}
}
