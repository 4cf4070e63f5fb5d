package main

import (
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"weir/spec"
)

func TestWithWeight(t *testing.T) {
	files, _, err := specFiles()
	if err != nil {
		t.Fatal(err)
	}
	bal := files["balancers.yaml"]
	tests := []struct {
		name, in, want string
	}{
		{"adds a weights block", bal, "\n  weights:\n    orders-2: 3\n"},
		{"rewrites an existing weight", bal + "  weights:\n    orders-1: 2\n    orders-2: 7\n", "    orders-1: 2\n    orders-2: 3\n"},
		{"adds to an existing block", bal + "  weights:\n    orders-1: 2\n", "  weights:\n    orders-2: 3\n    orders-1: 2\n"},
		{"second document", "apiVersion: weir/v1\nkind: Host\nmetadata:\n  name: x\n---\n" + bal, "name: x\n---\n# yaml-language-server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := withWeight(map[string]string{"b.yaml": tt.in}, "orders-2", 3)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(got["b.yaml"], tt.want) || strings.Count(got["b.yaml"], "orders-2:") != 1 {
				t.Errorf("withWeight(%s) =\n%s\nwant it to contain\n%s", tt.name, got["b.yaml"], tt.want)
			}
		})
	}
	if _, err := withWeight(map[string]string{"h.yaml": "kind: Host\n"}, "orders-2", 3); err == nil {
		t.Errorf("withWeight without the balancer = nil error; want one")
	}
}

func TestWithHealthCheck(t *testing.T) {
	files, _, err := specFiles()
	if err != nil {
		t.Fatal(err)
	}
	weighted, err := withWeight(files, "orders-2", 3)
	if err != nil {
		t.Fatal(err)
	}
	got, err := withHealthCheck(weighted)
	if err != nil {
		t.Fatal(err)
	}
	if b := got["balancers.yaml"]; !strings.HasSuffix(b, "    orders-2: 3\n"+healthCheck) {
		t.Errorf("withHealthCheck =\n%s\nwant it to end with the weights, then\n%s", b, healthCheck)
	}
	fsys := fstest.MapFS{}
	for name, text := range got {
		fsys[name] = &fstest.MapFile{Data: []byte(text)}
	}
	s, err := spec.Load(fsys)
	if err != nil {
		t.Fatalf("the demo's specs with the health check do not load: %v", err)
	}
	if hc := s.Balancers[0].HealthCheck; hc == nil || hc.Interval != time.Second || hc.Port != 8080 {
		t.Errorf("frontend-orders' health check = %+v; want tcp on 8080 every second", hc)
	}
}
