package spec

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

func TestRuleHealthCheck(t *testing.T) {
	hc := func(lines ...string) string {
		return balancer("web-api", "198.20.0.10", append([]string{"healthCheck:"}, lines...)...)
	}
	runRuleCases(t, []ruleCase{
		{"every field wrong at once", map[string]string{"balancers.yaml": hc(
			"  protocol: http", "  port: 70000", "  path: healthz", "  interval: 10m", "  timeout: 10ms",
			"  healthyThreshold: 0", "  unhealthyThreshold: 11")},
			[]string{
				`balancers.yaml:13: spec.healthCheck.port: port 70000 is out of range 1-65535`,
				`balancers.yaml:14: spec.healthCheck.path: path "healthz" must start with "/"`,
				`balancers.yaml:15: spec.healthCheck.interval: 10m is out of range 1s-5m`,
				`balancers.yaml:16: spec.healthCheck.timeout: 10ms is below the minimum of 100ms`,
				`balancers.yaml:17: spec.healthCheck.healthyThreshold: 0 is out of range 1-10`,
				`balancers.yaml:18: spec.healthCheck.unhealthyThreshold: 11 is out of range 1-10`,
			}},
		{"a wrong protocol is not blamed on the path", map[string]string{"balancers.yaml": hc("  protocol: grpc", "  path: /healthz")},
			[]string{`balancers.yaml:12: spec.healthCheck.protocol: unknown protocol "grpc" (want tcp or http)`}},
		{"a wrong interval is not blamed on the timeout", map[string]string{"balancers.yaml": hc("  interval: 10m", "  timeout: 20s")},
			[]string{`balancers.yaml:12: spec.healthCheck.interval: 10m is out of range 1s-5m`}},
		{"timeout not below the interval", map[string]string{"balancers.yaml": hc("  interval: 1m", "  timeout: 60s")},
			[]string{`balancers.yaml:13: spec.healthCheck.timeout: 60s must be less than the interval (1m)`}},
		{"timeout above the default interval", map[string]string{"balancers.yaml": hc("  timeout: 2500ms")},
			[]string{`balancers.yaml:12: spec.healthCheck.timeout: 2500ms must be less than the interval (2s)`}},
		{"path on a tcp check", map[string]string{"balancers.yaml": hc("  path: /")},
			[]string{`balancers.yaml:12: spec.healthCheck.path: a path is only for protocol http (this check is tcp)`}},
		{"a bad escape", map[string]string{"balancers.yaml": hc("  protocol: http", "  path: /a%2")},
			[]string{`balancers.yaml:13: spec.healthCheck.path: path "/a%2" must be printable ASCII without spaces, with % only in escapes such as %20`}},
		{"not a mapping", map[string]string{"balancers.yaml": balancer("web-api", "198.20.0.10", "healthCheck: tcp")},
			[]string{`balancers.yaml:11: spec.healthCheck: must be a mapping, not string "tcp"`}},
		{"valid", map[string]string{"balancers.yaml": hc("  protocol: http", "  path: /healthz", "  interval: 1s")}, nil},
		{"empty", map[string]string{"balancers.yaml": balancer("web-api", "198.20.0.10", "healthCheck: {}")}, nil},
	})
}

func TestHealthCheckDefaults(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		want  *HealthCheck
	}{
		{"none", nil, nil},
		{"empty", []string{"healthCheck: {}"},
			&HealthCheck{Protocol: CheckTCP, Port: 8080, Interval: 2 * time.Second, Timeout: time.Second, HealthyThreshold: 2, UnhealthyThreshold: 2}},
		{"http", []string{"healthCheck: {protocol: http}"},
			&HealthCheck{Protocol: CheckHTTP, Port: 8080, Path: "/", Interval: 2 * time.Second, Timeout: time.Second, HealthyThreshold: 2, UnhealthyThreshold: 2}},
		{"short interval halves the default timeout", []string{"healthCheck: {interval: 1s}"},
			&HealthCheck{Protocol: CheckTCP, Port: 8080, Interval: time.Second, Timeout: 500 * time.Millisecond, HealthyThreshold: 2, UnhealthyThreshold: 2}},
		{"everything given", []string{"healthCheck:", "  protocol: http", "  port: 9000", "  path: /ready?x=1", "  interval: 1m30s",
			"  timeout: 1.5s", "  healthyThreshold: 1", "  unhealthyThreshold: 10"},
			&HealthCheck{Protocol: CheckHTTP, Port: 9000, Path: "/ready?x=1", Interval: 90 * time.Second, Timeout: 1500 * time.Millisecond, HealthyThreshold: 1, UnhealthyThreshold: 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := balancer("web-api", "198.20.0.10", append([]string{"targetPort: 8080"}, tt.lines...)...)
			s, err := Load(baseTree(t, map[string]string{"balancers.yaml": doc}))
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Balancers[0].HealthCheck; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("HealthCheck = %+v; want %+v", got, tt.want)
			}
		})
	}
}

func TestCheckID(t *testing.T) {
	base := EndpointCheck{Address: netip.MustParseAddr("198.19.2.2"), HealthCheck: HealthCheck{
		Protocol: CheckHTTP, Port: 8080, Path: "/healthz", Interval: 2 * time.Second, Timeout: time.Second,
		HealthyThreshold: 2, UnhealthyThreshold: 2}}
	if got, want := string(base.AppendCanonical(nil)), `weir-check/1 http 198.19.2.2 8080 "/healthz" 2000000000 1000000000 2 2`; got != want {
		t.Errorf("AppendCanonical = %s; want %s", got, want)
	}
	// The ID is part of what agents exchange: it must not change by accident.
	if got, want := base.ID().String(), "a75d3e0240cdadf5"; got != want {
		t.Errorf("ID() = %s; want %s (change checkEncodingVersion if the form changed on purpose)", got, want)
	}
	mapped := base
	mapped.Address = netip.MustParseAddr("::ffff:198.19.2.2")
	if mapped.ID() != base.ID() {
		t.Errorf("an IPv4-mapped address has another ID than the IPv4 address")
	}
	mutations := map[string]func(c *EndpointCheck){
		"address":   func(c *EndpointCheck) { c.Address = netip.MustParseAddr("198.19.2.3") },
		"protocol":  func(c *EndpointCheck) { c.Protocol = CheckTCP },
		"port":      func(c *EndpointCheck) { c.Port = 8081 },
		"path":      func(c *EndpointCheck) { c.Path = "/health" },
		"interval":  func(c *EndpointCheck) { c.Interval = 3 * time.Second },
		"timeout":   func(c *EndpointCheck) { c.Timeout = 2 * time.Second },
		"healthy":   func(c *EndpointCheck) { c.HealthyThreshold = 3 },
		"unhealthy": func(c *EndpointCheck) { c.UnhealthyThreshold = 3 },
	}
	seen := map[CheckID]string{base.ID(): "base"}
	for name, m := range mutations {
		c := base
		m(&c)
		if prev, dup := seen[c.ID()]; dup {
			t.Errorf("changing the %s gives the ID of %s", name, prev)
		}
		seen[c.ID()] = name
	}
}

func TestCheckIDText(t *testing.T) {
	id := CheckID{0xb2, 0xc8, 0xce, 0x41, 0xd2, 0x9b, 0x6d, 0x33}
	data, err := json.Marshal(map[string]CheckID{"id": id})
	if err != nil || string(data) != `{"id":"b2c8ce41d29b6d33"}` {
		t.Fatalf("json.Marshal = %s, %v", data, err)
	}
	var back map[string]CheckID
	if err := json.Unmarshal(data, &back); err != nil || back["id"] != id {
		t.Fatalf("json.Unmarshal = %v, %v; want %v", back, err, id)
	}
	for _, bad := range []string{"", "b2c8", "b2c8ce41d29b6d3z", "b2c8ce41d29b6d3300"} {
		if _, err := ParseCheckID(bad); err == nil {
			t.Errorf("ParseCheckID(%q) succeeded", bad)
		}
	}
}
