package testsupport

import (
	"testing"

	"weir/reconcile/plan"
	"weir/spec"
)

// DefaultCheck returns a health check of protocol proto on port with the
// loader's defaults (every 2s, timeout 1s, thresholds 2; path / for http).
func DefaultCheck(proto spec.CheckProtocol, port uint16) spec.HealthCheck {
	hc := spec.HealthCheck{Protocol: proto, Port: port, Interval: spec.DefaultCheckInterval,
		Timeout: spec.DefaultCheckTimeout, HealthyThreshold: spec.DefaultCheckThreshold, UnhealthyThreshold: spec.DefaultCheckThreshold}
	if proto == spec.CheckHTTP {
		hc.Path = spec.DefaultCheckPath
	}
	return hc
}

// Check gives the balancer a health check of protocol proto on its target
// port, with the loader's defaults. Apply it after TargetPort.
func Check(proto spec.CheckProtocol) BalancerOpt {
	return func(b *spec.Balancer) {
		port := b.TargetPort
		if port == 0 {
			port = b.Frontend.Port
		}
		hc := DefaultCheck(proto, port)
		b.HealthCheck = &hc
	}
}

// Unhealthy is the health view in which the checks of the named guests fail
// (plan.UnhealthyGuests); a name that no balancer's check probes fails t.
func Unhealthy(t testing.TB, s *spec.Spec, guests ...string) plan.UnhealthySet {
	t.Helper()
	var gps []plan.GuestPort
	for _, g := range guests {
		gps = append(gps, plan.GuestPort{Guest: g})
	}
	set, unmatched := plan.UnhealthyGuests(s, gps)
	if len(unmatched) > 0 {
		t.Fatalf("UnhealthyGuests: %v name no checked target", unmatched)
	}
	return set
}
