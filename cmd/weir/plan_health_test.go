package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// planChecked is planBalancers with an http health check on port 8081.
const planChecked = planBalancers + `  healthCheck:
    protocol: http
    port: 8081
    path: /healthz
`

// planTarget is a target as `weir plan -o json` prints it.
type planTarget struct {
	Guest string  `json:"guest"`
	State string  `json:"state"`
	Share float64 `json:"share"`
}

// planJSONBalancer runs `weir plan -o json` with args and returns its only balancer.
func planJSONBalancer(t *testing.T, args ...string) (failOpen bool, targets, excluded []planTarget, stderr string) {
	t.Helper()
	code, out, errs := planCmd(t, append(args, "-o", "json")...)
	if code != exitOK {
		t.Fatalf("weir plan %v = %d: %s", args, code, errs)
	}
	var got struct {
		Balancers []struct {
			FailOpen *bool        `json:"failOpen"`
			Targets  []planTarget `json:"targets"`
			Excluded []planTarget `json:"excluded"`
		} `json:"balancers"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got.Balancers) != 1 || got.Balancers[0].FailOpen == nil || got.Balancers[0].Excluded == nil {
		t.Fatalf("weir plan %v: %v; want one balancer with failOpen and excluded:\n%s", args, err, out)
	}
	b := got.Balancers[0]
	return *b.FailOpen, b.Targets, b.Excluded, errs
}

func TestPlanUnhealthy(t *testing.T) {
	dir := planDir(t, map[string]string{"hosts.yaml": basicHosts(t), "balancers.yaml": planChecked})
	base := []string{"--specs", dir, "--node", "host-a"}
	tests := []struct {
		name, unhealthy string
		failOpen        bool
		targets, out    []planTarget
		warning         string
	}{
		{"none", "", false, []planTarget{{"orders-1", "healthy", 0.25}, {"orders-2", "healthy", 0.75}}, []planTarget{}, ""},
		{"orders-2", "orders-2", false, []planTarget{{"orders-1", "healthy", 1}}, []planTarget{{"orders-2", "unhealthy", 0}}, ""},
		{"orders-2 on the checked port", "orders-2:8081", false, []planTarget{{"orders-1", "healthy", 1}}, []planTarget{{"orders-2", "unhealthy", 0}}, ""},
		{"both: fail open", "orders-1, orders-2", true, []planTarget{{"orders-1", "unhealthy", 0.25}, {"orders-2", "unhealthy", 0.75}}, []planTarget{}, ""},
		{"another port", "orders-2:8080", false, []planTarget{{"orders-1", "healthy", 0.25}, {"orders-2", "healthy", 0.75}}, []planTarget{},
			`--unhealthy names "orders-2" on port 8080, which no balancer's health check probes; ignored`},
		{"a guest nobody checks", "web-1", false, []planTarget{{"orders-1", "healthy", 0.25}, {"orders-2", "healthy", 0.75}}, []planTarget{},
			`--unhealthy names "web-1", which no balancer's health check probes; ignored`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := base
			if tt.unhealthy != "" {
				args = append(args[:len(args):len(args)], "--unhealthy", tt.unhealthy)
			}
			failOpen, targets, out, errs := planJSONBalancer(t, args...)
			if failOpen != tt.failOpen || !equalTargets(targets, tt.targets) || !equalTargets(out, tt.out) {
				t.Errorf("failOpen %v, targets %v, excluded %v; want %v, %v, %v", failOpen, targets, out, tt.failOpen, tt.targets, tt.out)
			}
			if !strings.Contains(errs, tt.warning) || (tt.warning == "" && errs != "") {
				t.Errorf("stderr = %q; want %q", errs, tt.warning)
			}
		})
	}
}

func equalTargets(a, b []planTarget) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Guest != b[i].Guest || a[i].State != b[i].State || a[i].Share-b[i].Share > 1e-12 || b[i].Share-a[i].Share > 1e-12 {
			return false
		}
	}
	return true
}

func TestPlanUnhealthyRules(t *testing.T) {
	dir := planDir(t, map[string]string{"hosts.yaml": basicHosts(t), "balancers.yaml": planChecked})
	tests := []struct {
		unhealthy string
		want      []string
		dnat      []string // targets with a DNAT rule
	}{
		{"orders-2", []string{"# not taking part: frontend-orders/orders-2 unhealthy\n"}, []string{"198.19.2.2:8080"}},
		{"orders-1,orders-2", []string{"# failing open (no target healthy): frontend-orders\n"}, []string{"198.19.2.2:8080", "198.19.3.2:8080"}},
	}
	for _, tt := range tests {
		code, out, errs := planCmd(t, "--specs", dir, "--node", "host-a", "--unhealthy", tt.unhealthy)
		if code != exitOK || errs != "" {
			t.Fatalf("weir plan --unhealthy %s = %d, %q", tt.unhealthy, code, errs)
		}
		header, body, _ := strings.Cut(out, "*filter\n")
		for _, w := range tt.want {
			if !strings.Contains(header, w) {
				t.Errorf("--unhealthy %s: header lacks %q:\n%s", tt.unhealthy, w, header)
			}
		}
		if got := strings.Count(body, "-j DNAT"); got != len(tt.dnat) {
			t.Errorf("--unhealthy %s: %d DNAT rules; want %d (%v):\n%s", tt.unhealthy, got, len(tt.dnat), tt.dnat, body)
		}
		for _, d := range tt.dnat {
			if !strings.Contains(body, "--to-destination "+d+"\n") {
				t.Errorf("--unhealthy %s: no DNAT to %s:\n%s", tt.unhealthy, d, body)
			}
		}
	}
}

func TestPlanUnhealthyUsage(t *testing.T) {
	dir := planDir(t, map[string]string{"hosts.yaml": basicHosts(t), "balancers.yaml": planChecked})
	for _, tt := range []struct{ value, want string }{
		{"orders-1:0", `--unhealthy "orders-1:0": the port must be 1-65535`},
		{"orders-1:http", `--unhealthy "orders-1:http": the port must be 1-65535`},
		{"orders-9", `--unhealthy names "orders-9", which is not a guest in the specs`},
	} {
		code, out, errs := planCmd(t, "--specs", dir, "--node", "host-a", "--unhealthy", tt.value)
		if code != exitUsage || out != "" || !strings.Contains(errs, tt.want) {
			t.Errorf("weir plan --unhealthy %s = %d, %q, %q; want %d and %q", tt.value, code, out, errs, exitUsage, tt.want)
		}
	}
}
