package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"weir/reconcile/plan"
	"weir/reconcile/render"
	"weir/spec"
)

// TestPlanDualStack: on examples/dualstack, `weir plan` prints each family
// under its header, the IPv6 text being what ip6tables-restore takes, and
// -o json lists the IPv6 balancer with its targets' IPv6 addresses.
func TestPlanDualStack(t *testing.T) {
	dir := filepath.Join("..", "..", "examples", "dualstack")
	code, out, errs := planCmd(t, dir, "--node", "host-a")
	if code != exitOK || errs != "" {
		t.Fatalf("weir plan = %d, stderr %q; want 0 and nothing", code, errs)
	}
	s, err := spec.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	rss := render.RenderAll(plan.Assign(s, []string{"host-a", "host-b", "host-c"}, nil), "host-a", render.RenderOptions{})
	v4, v6, ok := strings.Cut(out, "# IPv6 (ip6tables-restore): 1 balancer, 4 rules\n")
	if !ok {
		t.Fatalf("no IPv6 header in:\n%s", out)
	}
	if !strings.Contains(v4, "# 2 balancers, 8 rules\n# IPv4 (iptables-restore): 1 balancer, 4 rules\n") {
		t.Errorf("IPv4 part lacks the totals and its header:\n%s", v4)
	}
	if !strings.HasSuffix(v4, string(rss[spec.IPv4].Bytes())) {
		t.Errorf("IPv4 part does not end in the IPv4 restore text:\n%s", v4)
	}
	if !strings.HasSuffix(v6, string(rss[spec.IPv6].Bytes())) || !strings.Contains(v6, "#   -t nat -A PREROUTING -m comment --comment weir -j WEIR-SERVICES\n") {
		t.Errorf("IPv6 part is not its jumps and the ip6tables restore text:\n%s", v6)
	}
	if !strings.Contains(v6, "-j DNAT --to-destination [fd00:19:2::2]:8080\n") {
		t.Errorf("IPv6 part has no DNAT to orders-1's IPv6 address:\n%s", v6)
	}

	code, out, _ = planCmd(t, dir, "--node", "host-a", "-o", "json")
	var got struct {
		Balancers []struct {
			Name     string `json:"name"`
			Frontend struct {
				Address string `json:"address"`
			} `json:"frontend"`
			Targets []struct {
				Address string  `json:"address"`
				Share   float64 `json:"share"`
			} `json:"targets"`
		} `json:"balancers"`
	}
	if err := json.Unmarshal([]byte(out), &got); code != exitOK || err != nil {
		t.Fatalf("weir plan -o json = %d, %v:\n%s", code, err, out)
	}
	want := map[string]string{"frontend-orders": "198.20.0.10 198.19.2.2 198.19.3.2", "frontend-orders-v6": "fd00:20::10 fd00:19:2::2 fd00:19:3::2"}
	for _, b := range got.Balancers {
		line := b.Frontend.Address
		for _, tg := range b.Targets {
			line += " " + tg.Address
		}
		if line != want[b.Name] {
			t.Errorf("%s: frontend and targets %q; want %q", b.Name, line, want[b.Name])
		}
		delete(want, b.Name)
	}
	if len(want) != 0 {
		t.Errorf("balancers missing from -o json: %v", want)
	}
}
