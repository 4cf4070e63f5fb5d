package main

import (
	"testing"

	ts "weir/internal/testsupport"
	"weir/spec"
)

func TestClusterSpecIsValidAndChanges(t *testing.T) {
	s0, err := spec.Load(ts.MapFS(clusterSpec(10, 0)))
	if err != nil {
		t.Fatalf("clusterSpec(10, 0) does not load: %v", err)
	}
	if len(s0.Hosts) != 10 || len(s0.Balancers) != 10 {
		t.Errorf("clusterSpec: %d hosts, %d balancers; want 10, 10", len(s0.Hosts), len(s0.Balancers))
	}
	for i, h := range s0.Hosts {
		if want := hostName(i + 1); h.Name != want {
			t.Errorf("host %d = %s; want the lab's name %s", i, h.Name, want)
		}
	}
	s1, err := spec.Load(ts.MapFS(clusterSpec(10, 1)))
	if err != nil {
		t.Fatalf("clusterSpec(10, 1) does not load: %v", err)
	}
	if a, b := s0.Balancer("orders-0").Weights["orders-1"], s1.Balancer("orders-0").Weights["orders-1"]; a == b {
		t.Errorf("generations 0 and 1 have the same weight %d: no change to converge on", a)
	}
}
