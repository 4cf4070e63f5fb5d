package netfilter_test

import (
	"context"
	"strings"
	"testing"

	"weir/reconcile/netfilter"
)

// TestOwnedText: after an apply, the owned rules read back from the kernel
// (LiveText) are exactly DesiredText of the applied Ruleset, though the
// fixture writes some rules in forms iptables-save prints differently;
// foreign rules never show; a rule deleted by hand and a stale owned chain
// do. This is what `weir diff` compares.
func TestOwnedText(t *testing.T) {
	for name, newHarness := range map[string]func(*testing.T) *harness{
		"fake":                  func(*testing.T) *harness { return fakeHarness() },
		netfilter.BackendNFT:    func(t *testing.T) *harness { return kernelHarness(t, netfilter.BackendNFT) },
		netfilter.BackendLegacy: func(t *testing.T) *harness { return kernelHarness(t, netfilter.BackendLegacy) },
	} {
		t.Run(name, func(t *testing.T) { ownedTextSuite(t, newHarness(t)) })
	}
}

func ownedTextSuite(t *testing.T, h *harness) {
	ctx := context.Background()
	rs := fixture{n: 6, targets: 3, empty: map[int]bool{2: true}, udp: map[int]bool{3: true}}.build()
	if _, err := netfilter.NewSyncer(h.nf, netfilter.SyncerOptions{}).Apply(ctx, rs); err != nil {
		t.Fatal(err)
	}
	h.mustExec(t, "nat", "-N", "FOREIGN")
	h.mustExec(t, "nat", "-A", "PREROUTING", "-s", "10.99.0.0/16", "-j", "FOREIGN")
	want := string(netfilter.DesiredText(rs))
	if got := liveText(t, h); got != want {
		t.Fatalf("%s: LiveText after the apply =\n%s\nwant DesiredText =\n%s", h.name, got, want)
	}
	for _, l := range []string{"*filter\n", "*nat\n", ":WEIR-SERVICES - [0:0]\n", "-A PREROUTING -m comment --comment weir -j WEIR-SERVICES\n", "--probability 0.33333333349 "} {
		if !strings.Contains(want, l) {
			t.Errorf("DesiredText lacks %q:\n%s", l, want)
		}
	}

	deleted := ""
	for _, l := range strings.Split(want, "\n") {
		if strings.HasPrefix(l, "-A WEIR-SVC-00001 ") {
			deleted = l
			break
		}
	}
	h.mustExec(t, "nat", append([]string{"-D", "WEIR-SVC-00001"}, netfilter.SplitRule(strings.TrimPrefix(deleted, "-A WEIR-SVC-00001 "))...)...)
	if got, w := liveText(t, h), strings.Replace(want, deleted+"\n", "", 1); got != w {
		t.Errorf("%s: LiveText after deleting %q =\n%s\nwant\n%s", h.name, deleted, got, w)
	}
	h.mustExec(t, "mangle", "-N", "WEIR-STALE")
	if got := liveText(t, h); !strings.Contains(got, "*mangle\n:WEIR-STALE - [0:0]\nCOMMIT\n") {
		t.Errorf("%s: LiveText does not show the stale owned chain in mangle:\n%s", h.name, got)
	}
}

func liveText(t *testing.T, h *harness) string {
	t.Helper()
	b, err := netfilter.LiveText(context.Background(), h.nf)
	if err != nil {
		t.Fatalf("%s: LiveText: %v", h.name, err)
	}
	return string(b)
}
