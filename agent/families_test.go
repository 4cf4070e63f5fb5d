package agent

import (
	"context"
	"errors"
	"strings"
	"testing"

	"weir/internal/testsupport"
	"weir/reconcile/netfilter"
	"weir/spec"
)

// The reconcile planner renders both families of DualSpec, and the Syncer
// adapter hands each family's ruleset to its own netfilter: IPv4 rules to
// the iptables fake, IPv6 ones to the ip6tables fake, which refuse the
// other family's addresses.
func TestSyncersPerFamily(t *testing.T) {
	ctx := context.Background()
	d := ReconcilePlanner().Plan(testsupport.DualSpec(), []string{"host-a", "host-b", "host-c"}, nil, "host-a")
	if d.Balancers != 3 || d.Rulesets[spec.IPv6].Balancers() != 1 {
		t.Fatalf("planned %d balancers, %d IPv6; want 3, 1", d.Balancers, d.Rulesets[spec.IPv6].Balancers())
	}
	v4, v6 := testsupport.NewFake(), testsupport.NewFakeFamily(spec.IPv6)
	sy := NewSyncers(netfilter.NewSyncer(v4, netfilter.SyncerOptions{}), netfilter.NewSyncer(v6, netfilter.SyncerOptions{}), nil, nil)
	if err := sy.Apply(ctx, d.Rulesets); err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]*testsupport.Fake{"iptables": v4, "ip6tables": v6} {
		text, err := f.Save(ctx, "nat")
		if err != nil {
			t.Fatal(err)
		}
		if v6rule := strings.Contains(string(text), "fd00:20::10/128"); v6rule != (name == "ip6tables") {
			t.Errorf("%s nat holds the IPv6 frontend: %v; want %v:\n%s", name, v6rule, name == "ip6tables", text)
		}
	}
	if err := v6.Run("nat", "-F", "PREROUTING"); err != nil {
		t.Fatal(err)
	}
	if repaired, err := sy.Reconcile(ctx); err != nil || !repaired {
		t.Errorf("Reconcile after a flush of ip6tables PREROUTING = %v, %v; want repaired", repaired, err)
	}
}

// Without ip6tables, a host applies its IPv4 balancers and fails only
// when it has IPv6 ones to set, naming why.
func TestSyncersWithoutIPv6(t *testing.T) {
	ctx := context.Background()
	sy := NewSyncers(netfilter.NewSyncer(testsupport.NewFake(), netfilter.SyncerOptions{}), nil, nil, errors.New("ip6tables: not found"))
	p := ReconcilePlanner()
	if err := sy.Apply(ctx, p.Plan(testsupport.DemoSpec(), []string{"host-a", "host-b", "host-c"}, nil, "host-a").Rulesets); err != nil {
		t.Errorf("Apply of an IPv4-only plan without ip6tables: %v; want nil", err)
	}
	err := sy.Apply(ctx, p.Plan(testsupport.DualSpec(), []string{"host-a", "host-b", "host-c"}, nil, "host-a").Rulesets)
	if err == nil || !strings.Contains(err.Error(), "IPv6 balancers to set (1), but ip6tables is unavailable: ip6tables: not found") {
		t.Errorf("Apply of a dual-stack plan without ip6tables = %v; want the reason", err)
	}
	if _, err := sy.Reconcile(ctx); err != nil {
		t.Errorf("Reconcile without ip6tables: %v", err)
	}
}
