package health_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"weir/agent/health"
	ts "weir/internal/testsupport"
	"weir/reconcile/plan"
	"weir/spec"
)

// checksSpec: host-b runs orders-1, orders-2 (an IPv6 guest) and cache-1;
// host-c runs orders-3. Two balancers check the orders guests alike on 8080
// (one of them drains orders-1), one checks them over http, one checks the
// cache, one has no check, and one has an IPv6 frontend.
func checksSpec() *spec.Spec {
	return ts.Spec([]spec.Host{
		ts.Host("host-a", "198.18.0.1", ts.Guest("web-1", "198.19.1.2", "frontend")),
		ts.Host("host-b", "198.18.0.2",
			ts.Guest("orders-1", "198.19.2.2", "orders"),
			ts.Guest("orders-2", "fd00:19:2::2", "orders"),
			ts.Guest("cache-1", "198.19.2.4", "cache")),
		ts.Host("host-c", "198.18.0.3", ts.Guest("orders-3", "198.19.3.2", "orders")),
	},
		ts.Balancer("orders-a", "frontend", "orders", "198.20.0.10:80/tcp", ts.TargetPort(8080), ts.Check(spec.CheckTCP)),
		ts.Balancer("orders-b", "frontend", "orders", "198.20.0.11:80/tcp", ts.TargetPort(8080),
			ts.Weights(map[string]int{"orders-1": 0}), ts.Check(spec.CheckTCP)),
		ts.Balancer("orders-http", "frontend", "orders", "198.20.0.12:80/tcp", ts.TargetPort(8080), ts.Check(spec.CheckHTTP)),
		ts.Balancer("cache", "frontend", "cache", "198.20.0.13:6379/tcp", ts.Check(spec.CheckTCP)),
		ts.Balancer("unchecked", "frontend", "orders", "198.20.0.14:80/tcp"),
		ts.Balancer("orders-v6", "frontend", "orders", "[fd00:20::10]:80/tcp", ts.TargetPort(8080), ts.Check(spec.CheckTCP)),
	)
}

func TestChecksFor(t *testing.T) {
	s := checksSpec()
	tests := []struct {
		node string
		want []string
	}{
		// orders-a and orders-b share one check of orders-1; orders-v6 checks
		// the IPv6 guest, the others cannot reach it.
		{"host-b", []string{"http 198.19.2.2:8080/", "tcp 198.19.2.2:8080", "tcp 198.19.2.4:6379", "tcp [fd00:19:2::2]:8080"}},
		{"host-c", []string{"http 198.19.3.2:8080/", "tcp 198.19.3.2:8080"}},
		{"host-a", nil},
		{"host-x", nil},
	}
	for _, tt := range tests {
		checks := health.ChecksFor(s, tt.node)
		var got []string
		for _, c := range checks {
			got = append(got, c.String())
			if c.ID != c.EndpointCheck.ID() {
				t.Errorf("%s: check %s has ID %s; want %s", tt.node, c, c.ID, c.EndpointCheck.ID())
			}
		}
		if !slices.IsSortedFunc(checks, func(a, b health.Check) int { return bytes.Compare(a.ID[:], b.ID[:]) }) {
			t.Errorf("ChecksFor(%s) not sorted by ID", tt.node)
		}
		slices.Sort(got)
		if strings.Join(got, ", ") != strings.Join(tt.want, ", ") {
			t.Errorf("ChecksFor(%s) = %v; want %v", tt.node, got, tt.want)
		}
	}
}

// TestChecksForMatchPlan: the IDs a host probes are the IDs the plan looks
// up, so a report of each makes every target of that host unhealthy.
func TestChecksForMatchPlan(t *testing.T) {
	s := checksSpec()
	set := plan.UnhealthySet{}
	for _, c := range health.ChecksFor(s, "host-b") {
		set.Add("host-b", c.ID)
	}
	p := plan.Assign(s, []string{"host-a", "host-b", "host-c"}, set)
	for _, bp := range p.Balancers {
		if bp.Name == "unchecked" {
			continue
		}
		for _, tg := range append(slices.Clone(bp.Targets), bp.Excluded...) {
			want := plan.Healthy
			if tg.Host == "host-b" {
				want = plan.Unhealthy
				if bp.Name == "orders-b" && tg.Guest == "orders-1" {
					want = plan.Drained
				}
			}
			if tg.State != want {
				t.Errorf("%s: %s is %v; want %v", bp.Name, tg.Guest, tg.State, want)
			}
		}
	}
}
