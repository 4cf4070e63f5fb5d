package netfilter_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	ts "weir/internal/testsupport"
	"weir/reconcile/netfilter"
	"weir/reconcile/plan"
	"weir/reconcile/render"
	"weir/spec"
)

// kernelHarness6 is kernelHarness over ip6tables.
func kernelHarness6(t testing.TB, backend string) *harness {
	return familyHarness(t, backend, spec.IPv6)
}

// fakeHarness6 is fakeHarness over an IPv6 Fake.
func fakeHarness6() *harness {
	h := fakeHarness()
	f := ts.NewFakeFamily(spec.IPv6)
	h.name, h.nf, h.exec = "fake6", f, f.Run
	h.save = func(table string) (string, error) {
		b, err := f.Save(context.Background(), table)
		return string(b), err
	}
	return h
}

// ipv6Rulesets renders two IPv6 rulesets of 200 random balancers for one
// host that differ in one balancer's target port and in which targets of a
// few others are alive.
func ipv6Rulesets() (a, b *render.Ruleset) {
	s := ts.RandomSpec(rand.New(rand.NewPCG(71, 72)), ts.RandomSpecConfig{Balancers: 200, Hosts: 6, GuestsPerHost: 6, Targets: 3, Family: spec.IPv6})
	all := ts.HostNames(s)
	a = render.RenderWith(plan.Assign(s, all, nil), "host-001", render.RenderOptions{Family: spec.IPv6})
	changed := *s
	changed.Balancers = slices.Clone(s.Balancers)
	changed.Balancers[100].TargetPort++
	b = render.RenderWith(plan.Assign(&changed, all[:5], nil), "host-001", render.RenderOptions{Family: spec.IPv6})
	return a, b
}

// ipv6Suite applies rendered IPv6 rulesets through a Syncer and checks the
// contract in ip6tables: full apply, idempotent re-apply, partial sync,
// drift repair of a rule and of a jump, foreign rules untouched by all of
// it and by Cleanup.
func ipv6Suite(t *testing.T, h *harness) {
	ctx := context.Background()
	h.mustExec(t, "nat", "-A", "PREROUTING", "-s", "fd00:99::/64", "-j", "RETURN")
	h.mustExec(t, "filter", "-A", "FORWARD", "-s", "fd00:98::/64", "-j", "ACCEPT")
	before := foreign(h.snapshot(t))
	rsA, rsB := ipv6Rulesets()
	s := netfilter.NewSyncer(h.nf, netfilter.SyncerOptions{FullCheckEvery: 2})
	res, err := s.Apply(ctx, rsA)
	if err != nil || !res.Full {
		t.Fatalf("first Apply = full %v, %v; want a full apply", res.Full, err)
	}
	h.checkOwned(t, rsA)
	if res, err := s.Apply(ctx, rsA); err != nil || res.ChainsWritten+res.ChainsDeleted+res.JumpsAdded != 0 {
		t.Errorf("second Apply of the same ruleset = %+v, %v; want nothing done", res, err)
	}
	res, err = s.Apply(ctx, rsB)
	if err != nil || res.Full || res.ChainsWritten == 0 {
		t.Fatalf("Apply(changed) = full %v, %d chains, %v; want a partial apply", res.Full, res.ChainsWritten, err)
	}
	h.checkOwned(t, rsB)

	svc, first := "", ""
	for _, c := range tableOf(rsB, "nat").Chains {
		if strings.HasPrefix(c.Name, "WEIR-SVC-") && len(c.Rules) > 1 {
			svc, first = c.Name, c.Rules[0]
			break
		}
	}
	h.mustExec(t, "nat", append([]string{"-D", svc}, netfilter.SplitRule(first)...)...)
	reconcileUntil(t, s, 4, "rule deleted from "+svc)
	h.checkOwned(t, rsB)
	h.mustExec(t, "nat", "-D", "PREROUTING", "-m", "comment", "--comment", "weir", "-j", render.ServicesChain)
	reconcileUntil(t, s, 4, "jump deleted from PREROUTING")
	h.checkOwned(t, rsB)
	if got := foreign(h.snapshot(t)); !slices.Equal(got, before) {
		t.Errorf("foreign rules changed:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(before, "\n"))
	}

	if _, err := netfilter.Cleanup(ctx, h.nf); err != nil {
		t.Fatal(err)
	}
	after := h.snapshot(t)
	if strings.Contains(after, netfilter.OwnedPrefix) {
		t.Errorf("owned chains left after Cleanup:\n%s", after)
	}
	if got := foreign(after); !slices.Equal(got, before) {
		t.Errorf("Cleanup changed foreign rules:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(before, "\n"))
	}
}

func TestSyncerIPv6(t *testing.T) {
	t.Run("fake", func(t *testing.T) { ipv6Suite(t, fakeHarness6()) })
	for _, backend := range []string{netfilter.BackendNFT, netfilter.BackendLegacy} {
		t.Run(backend, func(t *testing.T) { ipv6Suite(t, kernelHarness6(t, backend)) })
	}
}

// An IPv4 ruleset handed to ip6tables fails, in the kernel as in the IPv6
// Fake, and its nat table (the one with IPv4 addresses) is not applied:
// each table is one transaction.
func TestIPv4RulesetRefusedByIPv6(t *testing.T) {
	rs := render.Render(plan.Assign(ts.DemoSpec(), []string{"host-a", "host-b", "host-c"}, nil), "host-a")
	for _, h := range []*harness{fakeHarness6(), kernelHarness6(t, netfilter.BackendNFT)} {
		if _, err := netfilter.NewSyncer(h.nf, netfilter.SyncerOptions{}).Apply(context.Background(), rs); err == nil {
			t.Errorf("%s: applying IPv4 rules succeeded; want an error", h.name)
		}
		if nat, _ := h.save("nat"); strings.Contains(nat, netfilter.OwnedPrefix) {
			t.Errorf("%s: a refused nat transaction left owned chains:\n%s", h.name, nat)
		}
	}
}

// With the backend left to detection, ip6tables' own --version decides it,
// and the restore and save binaries are ip6tables'.
func TestIPv6BackendDetected(t *testing.T) {
	ns := ts.NewNetns(t)
	auto, err := netfilter.NewIPTables(netfilter.IPTablesOptions{Family: spec.IPv6, Netns: ns.Name})
	if err != nil {
		t.Skipf("ip6tables: %v", err)
	}
	if b := auto.Backend(); b != netfilter.BackendNFT && b != netfilter.BackendLegacy {
		t.Errorf("detected backend %q", b)
	}
	// A restore through the detected binaries lands in ip6tables.
	text := "*nat\n:WEIR-T - [0:0]\n-A WEIR-T -d fd00:20::1/128 -j RETURN\nCOMMIT\n"
	if err := auto.Restore(context.Background(), []byte(text)); err != nil {
		t.Fatal(err)
	}
	if saved, err := auto.Save(context.Background(), "nat"); err != nil || !strings.Contains(string(saved), "-A WEIR-T -d fd00:20::1/128 -j RETURN") {
		t.Errorf("ip6tables-save after the restore = %q, %v", saved, err)
	}
}
