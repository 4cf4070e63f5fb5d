package testsupport

import "weir/spec"

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
