package netfilter_test

import (
	"context"
	"slices"
	"testing"

	"weir/reconcile/netfilter"
)

// TestChainCounters reads the packet counters of an owned chain on both
// backends: rules in order, counters apart from the rule text, an error for
// a missing chain, and a refusal for a chain weir does not own.
func TestChainCounters(t *testing.T) {
	for _, backend := range []string{netfilter.BackendNFT, netfilter.BackendLegacy} {
		t.Run(backend, func(t *testing.T) {
			h := kernelHarness(t, backend)
			ctx := context.Background()
			text := "*nat\n:WEIR-SVC-A - [0:0]\n:WEIR-SEP-B - [0:0]\n" +
				"-A WEIR-SVC-A -p tcp -m comment --comment web -m statistic --mode random --probability 0.5 -j DNAT --to-destination 198.19.2.2:8080\n" +
				"-A WEIR-SVC-A -p tcp -m comment --comment web -j WEIR-SEP-B\nCOMMIT\n"
			if err := h.nf.Restore(ctx, []byte(text)); err != nil {
				t.Fatal(err)
			}
			nf := h.nf.(*netfilter.IPTables)
			got, err := nf.ChainCounters(ctx, "nat", "WEIR-SVC-A")
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 || got[0].Packets != 0 || got[1].Rule != "-p tcp -m comment --comment web -j WEIR-SEP-B" {
				t.Fatalf("ChainCounters = %+v; want two rules at 0, the second jumping to WEIR-SEP-B", got)
			}
			// iptables -c sets a rule's counters, as traffic would.
			if err := h.exec("nat", "-A", "WEIR-SVC-A", "-c", "7", "420", "-p", "udp", "-j", "DNAT", "--to-destination", "198.19.3.2:53"); err != nil {
				t.Fatal(err)
			}
			got, err = nf.ChainCounters(ctx, "nat", "WEIR-SVC-A")
			if err != nil || len(got) != 3 || got[2].Packets != 7 || got[2].Rule != "-p udp -j DNAT --to-destination 198.19.3.2:53" {
				t.Fatalf("ChainCounters after a rule with counters = %+v, %v; want its 7 packets", got, err)
			}
			if _, err := nf.ChainCounters(ctx, "nat", "WEIR-NONE"); err == nil {
				t.Error("ChainCounters of a missing chain: no error")
			}
			if _, err := nf.ChainCounters(ctx, "nat", "POSTROUTING"); err == nil {
				t.Error("ChainCounters of a built-in chain: no error")
			}
		})
	}
}

func TestParseCounters(t *testing.T) {
	text := "-N WEIR-SVC-A\n" +
		"-A WEIR-SVC-A -p tcp -m comment --comment web -c 12 720 -j DNAT --to-destination 198.19.2.2:8080\n" +
		"-A WEIR-SVC-A -c 3 180 -j WEIR-SEP-B\n" +
		"-A WEIR-OTHER -c 9 9 -j ACCEPT\n"
	got, err := netfilter.ParseCounters(text, "WEIR-SVC-A")
	want := []netfilter.RuleCount{
		{Rule: "-p tcp -m comment --comment web -j DNAT --to-destination 198.19.2.2:8080", Packets: 12},
		{Rule: "-j WEIR-SEP-B", Packets: 3},
	}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("parseCounters = %+v, %v; want %+v", got, err, want)
	}
	if _, err := netfilter.ParseCounters("-A WEIR-SVC-A -j ACCEPT\n", "WEIR-SVC-A"); err == nil {
		t.Error("parseCounters of a rule without counters: no error")
	}
}
