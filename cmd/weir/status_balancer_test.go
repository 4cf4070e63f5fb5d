package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"weir/agent"
	"weir/internal/testsupport"
	"weir/reconcile/plan"
)

func count(n uint64) *uint64 { return &n }

// balancerFixtures are rendered to golden files as table and JSON.
func balancerFixtures() map[string]agent.BalancerStatus {
	setting := agent.BalancerStatus{Name: "frontend-orders", Revision: stRev, Frontend: "198.20.0.10:80/tcp", Strategy: "random",
		SettingHosts: []string{"host-a"}, Targets: []agent.TargetStatus{
			{Guest: "orders-1", Host: "host-b", Address: "198.19.2.2:8080", Weight: 3, State: plan.Healthy, Share: 0.75, Connections: count(1200)},
			{Guest: "orders-2", Host: "host-c", Address: "198.19.3.2:8080", Weight: 1, State: plan.Healthy, Share: 0.25, Connections: count(397)},
			{Guest: "orders-3", Host: "host-c", Address: "198.19.3.3:8080", Weight: 1, State: plan.Unhealthy, Connections: count(14)},
			{Guest: "orders-4", Host: "host-d", Address: "198.19.4.2:8080", Weight: 0, State: plan.Drained, Connections: count(0)},
			{Guest: "orders-5", Host: "host-e", Address: "198.19.5.2:8080", Weight: 2, State: plan.Down, Connections: count(0)},
		}}
	elsewhere := agent.BalancerStatus{Name: "frontend-cache", Revision: "dir:" + stDigest, Frontend: "[fd00:20::11]:6379/tcp", Strategy: "roundrobin",
		FailOpen: true, SettingHosts: []string{"host-b", "host-c"}, Targets: []agent.TargetStatus{
			{Guest: "cache-1", Host: "host-c", Address: "[fd00:19:3::2]:6379", Weight: 1, State: plan.Unhealthy, Share: 0.5},
			{Guest: "cache-2", Host: "host-d", Address: "[fd00:19:4::2]:6379", Weight: 1, State: plan.Unhealthy, Share: 0.5},
		}}
	return map[string]agent.BalancerStatus{"balancer_setting": setting, "balancer_fail_open": elsewhere}
}

// TestBalancerGolden renders each fixture as `weir status --balancer`
// prints it, as a table and with -o json, twice, against the golden files.
func TestBalancerGolden(t *testing.T) {
	for name, st := range balancerFixtures() {
		t.Run(name, func(t *testing.T) {
			for _, output := range []string{"table", "json"} {
				var a, b bytes.Buffer
				if err := printBalancer(&a, output, st); err != nil {
					t.Fatal(err)
				}
				printBalancer(&b, output, st)
				if !bytes.Equal(a.Bytes(), b.Bytes()) {
					t.Errorf("the %s output is not deterministic", output)
				}
				ext := map[string]string{"table": ".txt", "json": ".json"}[output]
				testsupport.Golden(t, name+ext, a.Bytes())
			}
		})
	}
}

// fakeBalancerAgent serves GET /balancers/frontend-orders and 404 for
// any other name, requiring the bearer token "s3cret".
func fakeBalancerAgent(t *testing.T) string {
	t.Helper()
	st := balancerFixtures()["balancer_setting"]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if r.URL.Path != "/balancers/frontend-orders" {
			http.Error(w, "balancer: no balancer of that name in the applied revision", http.StatusNotFound)
			return
		}
		_ = json.NewEncoder(w).Encode(st)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestStatusBalancer(t *testing.T) {
	addr := fakeBalancerAgent(t)
	tokenFile := writeTokenFile(t, "s3cret")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{"table", []string{"--balancer", "frontend-orders"}, exitOK, "orders-1  host-b  198.19.2.2:8080  3       healthy    75.0%  1200", ""},
		{"json", []string{"--balancer", "frontend-orders", "-o", "json"}, exitOK, `"connections": 1200`, ""},
		{"unknown balancer", []string{"--balancer", "nope"}, exitFail, "", "no such balancer"},
		{"with --wait", []string{"--balancer", "frontend-orders", "--wait", "5s"}, exitUsage, "", "--wait does not go with --balancer"},
		{"bad output", []string{"--balancer", "frontend-orders", "-o", "yaml"}, exitUsage, "", "(want table or json)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, runStatus, append([]string{"--api", addr, "--api-token-file", tokenFile}, tt.args...)...)
			if code != tt.wantCode || !strings.Contains(out, tt.wantOut) || !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("weir status %v = %d\nstdout %q\nstderr %q\nwant %d, %q, %q", tt.args, code, out, errOut, tt.wantCode, tt.wantOut, tt.wantErr)
			}
		})
	}
	if code, _, errOut := runCLI(t, runStatus, "--api", addr, "--balancer", "frontend-orders"); code != exitUsage || !strings.Contains(errOut, "401") {
		t.Errorf("weir status --balancer without the token = %d, %q; want %d and 401", code, errOut, exitUsage)
	}
}

// writeTokenFile writes an API token file, mode 0600.
func writeTokenFile(t *testing.T, token string) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(name, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}
