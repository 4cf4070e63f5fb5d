package render_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	ts "weir/internal/testsupport"
	"weir/reconcile/plan"
	"weir/reconcile/render"
	"weir/spec"
)

// dump renders everything in a Ruleset for golden files: the jumps and flows
// as comments, then the iptables-restore text.
func dump(rs *render.Ruleset) []byte {
	var b bytes.Buffer
	for _, t := range rs.Tables {
		for _, j := range t.Jumps {
			fmt.Fprintf(&b, "# jump -t %s -A %s %s\n", t.Name, j.Chain, strings.Join(j.Rule, " "))
		}
	}
	for _, f := range rs.Flows {
		var ts []string
		for _, t := range f.Targets {
			ts = append(ts, t.String())
		}
		fmt.Fprintf(&b, "# flow %s %s %s:%d -> [%s]\n", f.Balancer, f.Frontend.Protocol, f.Frontend.Address, f.Frontend.Port, strings.Join(ts, " "))
	}
	fmt.Fprintf(&b, "# %d balancers, %d rules\n", rs.Balancers(), rs.Rules())
	b.Write(rs.Bytes())
	return b.Bytes()
}

// treeSpec has frontends that exercise every kind of dispatch node: several
// addresses sharing prefixes, one address with several ports, one with
// several protocols, and a lone address elsewhere.
func treeSpec() *spec.Spec {
	hosts := []spec.Host{
		ts.Host("host-a", "198.18.0.1",
			ts.Guest("web-1", "198.19.1.2", "web"),
			ts.Guest("web-2", "198.19.1.4", "web"),
			ts.Guest("db-1", "198.19.1.3", "db")),
		ts.Host("host-b", "198.18.0.2",
			ts.Guest("api-1", "198.19.2.2", "api"),
			ts.Guest("api-2", "198.19.2.3", "api")),
	}
	var bs []spec.Balancer
	for i, fe := range []string{
		"198.20.0.10:80/tcp", "198.20.0.10:443/tcp", "198.20.0.10:8080/tcp", "198.20.0.10:8081/tcp",
		"198.20.0.10:53/udp", "198.20.0.10:53/tcp", "198.20.0.10:9000/sctp",
		"198.20.0.11:80/tcp", "198.20.0.12:80/tcp", "198.20.0.130:80/tcp", "198.20.0.200:5353/udp",
		"100.64.7.1:80/tcp",
	} {
		bs = append(bs, ts.Balancer(fmt.Sprintf("b%02d", i), "web", "api", fe))
	}
	bs = append(bs, ts.Balancer("db", "web", "db", "198.20.0.20:5432/tcp"))
	return ts.Spec(hosts, bs...)
}

func TestRenderGolden(t *testing.T) {
	all := []string{"host-a", "host-b", "host-c"}
	tests := []struct {
		name  string
		spec  *spec.Spec
		alive []string
		node  string
		opts  render.RenderOptions
	}{
		{"demo-host-a", ts.DemoSpec(), all, "host-a", render.RenderOptions{}},
		{"demo-host-b", ts.DemoSpec(), all, "host-b", render.RenderOptions{}},
		{"demo-host-c-sets-nothing", ts.DemoSpec(), all, "host-c", render.RenderOptions{}},
		{"demo-host-a-dns-dead", ts.DemoSpec(), []string{"host-a", "host-b"}, "host-a", render.RenderOptions{}},
		{"demo-host-a-none-alive", ts.DemoSpec(), nil, "host-a", render.RenderOptions{}},
		{"unknown-host", ts.DemoSpec(), all, "host-x", render.RenderOptions{}},
		{"tree", treeSpec(), []string{"host-a", "host-b"}, "host-a", render.RenderOptions{}},
		{"tree-linear", treeSpec(), []string{"host-a", "host-b"}, "host-a", render.RenderOptions{Dispatch: render.LinearDispatch}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := render.RenderWith(plan.Assign(tt.spec, tt.alive, nil), tt.node, tt.opts)
			newTracer(t, rs) // structural checks: names, jumps to existing chains, parseable rules
			got := dump(rs)
			ts.Golden(t, ""+tt.name+".rules", got)
			if again := dump(render.RenderWith(plan.Assign(tt.spec, tt.alive, nil), tt.node, tt.opts)); !bytes.Equal(again, got) {
				t.Errorf("rendering twice gave different bytes")
			}
			// The whole plan and the host's part of it render the same.
			if fh := dump(render.RenderWith(plan.Assign(tt.spec, tt.alive, nil).ForHost(tt.node), tt.node, tt.opts)); !bytes.Equal(fh, got) {
				t.Errorf("rendering ForHost(%s) differs from rendering the whole plan", tt.node)
			}
		})
	}
}

func TestRenderDeterministicUnderShuffle(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	s := ts.RandomSpec(rng, ts.RandomSpecConfig{Balancers: 300, Hosts: 8, GuestsPerHost: 5, Targets: 3})
	alive := []string{"host-000", "host-002", "host-003", "host-005"}
	want := render.Render(plan.Assign(s, alive, nil), "host-002").Bytes()
	for i := range 5 {
		if got := render.Render(plan.Assign(ts.Shuffled(rng, s), alive, nil), "host-002").Bytes(); !bytes.Equal(got, want) {
			t.Fatalf("shuffle %d: rendered bytes differ", i)
		}
	}
}

func TestRenderShape(t *testing.T) {
	rs := render.Render(plan.Assign(ts.DemoSpec(), nil, nil), "host-c")
	// A host that sets nothing still has every top chain, so its jumps are valid.
	want := map[string][]string{
		"filter": {render.RejectChain},
		"nat":    {render.PostroutingChain, render.ServicesChain},
	}
	if len(rs.Tables) != 2 || rs.Tables[0].Name != "filter" || rs.Tables[1].Name != "nat" {
		t.Fatalf("tables = %v; want filter, nat", rs.Tables)
	}
	for _, tb := range rs.Tables {
		var got []string
		for _, c := range tb.Chains {
			got = append(got, c.Name)
		}
		if strings.Join(got, " ") != strings.Join(want[tb.Name], " ") {
			t.Errorf("table %s chains = %v; want %v", tb.Name, got, want[tb.Name])
		}
		for _, j := range tb.Jumps {
			if got := strings.Join(j.Rule, " "); !strings.Contains(got, "-m comment --comment weir") {
				t.Errorf("jump %s %s has no weir comment", j.Chain, got)
			}
		}
	}
	if rs.Balancers() != 0 || len(rs.Flows) != 0 {
		t.Errorf("Balancers() = %d; want 0", rs.Balancers())
	}
	if got := rs.Rules(); got != 1 {
		t.Errorf("Rules() = %d; want 1 (masquerade)", got)
	}
}

func TestRenderComments(t *testing.T) {
	rs := render.Render(plan.Assign(treeSpec(), []string{"host-b"}, nil), "host-a")
	for _, tb := range rs.Tables {
		for _, c := range tb.Chains {
			for _, r := range c.Rules {
				if !strings.Contains(r, "-m comment --comment ") {
					t.Errorf("%s %s: rule without comment: %s", tb.Name, c.Name, r)
				}
				perBalancer := !strings.HasPrefix(c.Name, "WEIR-DST-") && !strings.HasPrefix(c.Name, "WEIR-PRT-") &&
					!strings.HasPrefix(c.Name, "WEIR-PRO-") && !strings.HasPrefix(c.Name, "WEIR-SEP-") &&
					c.Name != render.ServicesChain && c.Name != render.RejectChain && c.Name != render.PostroutingChain
				if perBalancer && strings.Contains(r, "--comment weir ") {
					t.Errorf("%s %s: balancer rule with the generic comment: %s", tb.Name, c.Name, r)
				}
			}
		}
	}
}

func TestChainName(t *testing.T) {
	seen := map[string]string{}
	for i := range 20000 {
		key := fmt.Sprintf("balancer-%d", i)
		n := render.ChainName(render.KindSVC, key)
		if len(n) != 25 || !strings.HasPrefix(n, "WEIR-SVC-") || strings.Trim(n[9:], "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") != "" {
			t.Fatalf("ChainName(SVC, %s) = %q; want WEIR-SVC- and 16 base32 characters", key, n)
		}
		if prev, ok := seen[n]; ok {
			t.Fatalf("chainName collision: %s and %s → %s", prev, key, n)
		}
		seen[n] = key
	}
	// kube-proxy's scheme: the first 16 characters of base32(sha256(key)).
	if got, want := render.ChainName(render.KindSVC, "frontend-orders"), render.ChainName(render.KindSVC, "frontend-orders"); got != want {
		t.Errorf("chainName not stable: %s, %s", got, want)
	}
}

func TestSaveForm(t *testing.T) {
	// Right-hand sides were printed by iptables-save v1.8.9 (nf_tables) after
	// restoring the left-hand sides.
	tests := []struct{ rendered, saved string }{
		{"-m comment --comment x -m statistic --mode random --probability 0.2500000000 -j WEIR-SEP-B",
			"-m comment --comment x -m statistic --mode random --probability 0.25000000000 -j WEIR-SEP-B"},
		{"-m comment --comment x -m statistic --mode random --probability 0.3333333333 -j WEIR-SEP-B",
			"-m comment --comment x -m statistic --mode random --probability 0.33333333349 -j WEIR-SEP-B"},
		{"-m comment --comment x -m statistic --mode random --probability 0.2857142857 -j WEIR-SEP-B",
			"-m comment --comment x -m statistic --mode random --probability 0.28571428591 -j WEIR-SEP-B"},
		{"-m comment --comment x -m statistic --mode nth --every 3 --packet 0 -j WEIR-SEP-B",
			"-m comment --comment x -m statistic --mode nth --every 3 --packet 0 -j WEIR-SEP-B"},
		{"-s 198.19.1.2/32 -m comment --comment x -j WEIR-SVC-A", "-s 198.19.1.2/32 -m comment --comment x -j WEIR-SVC-A"},
	}
	for _, tt := range tests {
		if got := render.SaveForm(tt.rendered); got != tt.saved {
			t.Errorf("render.SaveForm(%q) =\n %q; want\n %q", tt.rendered, got, tt.saved)
		}
		if !render.SavedAs(tt.rendered, tt.saved) {
			t.Errorf("render.SavedAs(%q, %q) = false; want true", tt.rendered, tt.saved)
		}
		for _, other := range []string{
			tt.saved + " ", tt.saved[:len(tt.saved)-1], strings.Replace(tt.saved, "x", "y", 1),
			strings.Replace(tt.saved, "0.2", "0.3", 1), strings.Replace(tt.saved, "-j", "-g", 1), "",
		} {
			if other != tt.saved && render.SavedAs(tt.rendered, other) {
				t.Errorf("render.SavedAs(%q, %q) = true; want false", tt.rendered, other)
			}
		}
	}
}

func TestProbabilities(t *testing.T) {
	// Rule i of a random balancer has probability wi/(wi+…+wn) with ten
	// decimals, and the last rule none.
	s := ts.DemoSpec()
	s.Balancers[1].Weights = map[string]int{"orders-1": 1, "orders-2": 2, "orders-3": 5}
	rs := render.Render(plan.Assign(s, []string{"host-a", "host-b", "host-c"}, nil), "host-b")
	svc := render.ChainName(render.KindSVC, "frontend-orders")
	var got []string
	for _, c := range rs.Tables[1].Chains {
		if c.Name == svc {
			for _, r := range c.Rules {
				_, p, _ := strings.Cut(r, "--probability ")
				p, _, _ = strings.Cut(p, " ")
				got = append(got, p)
			}
		}
	}
	want := []string{"0.1250000000", "0.2857142857", ""}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("probabilities = %v; want %v", got, want)
	}
}

func TestServiceChainNamesTheSVCChain(t *testing.T) {
	s := ts.DemoSpec()
	rs := render.Render(plan.Assign(s, []string{"host-a", "host-b", "host-c"}, nil), "host-a")
	want := render.ServiceChain("frontend-orders")
	for _, tb := range rs.Tables {
		for _, c := range tb.Chains {
			if c.Name == want {
				if len(c.Rules) != 3 {
					t.Errorf("%s has %d rules; want one per target (3)", want, len(c.Rules))
				}
				return
			}
		}
	}
	t.Errorf("no chain %s in host-a's ruleset", want)
}
