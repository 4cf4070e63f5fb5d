package plan_test

import (
	"net/netip"
	"strings"
	"testing"

	ts "weir/internal/testsupport"
	"weir/reconcile/plan"
	"weir/spec"
)

// DualSpec's balancers of each family reach the same guests at their
// addresses of that family, and share sources only within a family.
func TestAssignDualStack(t *testing.T) {
	p := plan.Assign(ts.DualSpec(), []string{"host-a", "host-b", "host-c"}, nil)
	want := map[string]struct{ sources, targets string }{
		"frontend-orders":    {"198.19.1.2", "198.19.1.3:8080 198.19.2.3:8080 198.19.3.3:8080"},
		"frontend-orders-v6": {"fd00:19:1::2", "[fd00:19:1::3]:8080 [fd00:19:2::3]:8080 [fd00:19:3::3]:8080"},
	}
	for _, bp := range p.Balancers {
		w, ok := want[bp.Name]
		if !ok {
			continue
		}
		var srcs, tgts []string
		for _, e := range bp.Sources {
			if e.Host == "host-a" {
				srcs = append(srcs, e.Address.String())
			}
		}
		for _, tg := range bp.Targets {
			tgts = append(tgts, netipPort(tg))
		}
		if got := join(srcs); got != w.sources {
			t.Errorf("%s: host-a sources = %s; want %s", bp.Name, got, w.sources)
		}
		if got := join(tgts); got != w.targets {
			t.Errorf("%s: targets = %s; want %s", bp.Name, got, w.targets)
		}
		if fam := spec.FamilyOf(bp.Frontend.Address); (fam == spec.IPv6) != (bp.Name == "frontend-orders-v6") {
			t.Errorf("%s: family %s", bp.Name, fam)
		}
	}
}

func netipPort(t plan.Target) string {
	return netip.AddrPortFrom(t.Address, t.Port).String()
}

func join(s []string) string { return strings.Join(s, " ") }
