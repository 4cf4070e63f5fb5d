package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"weir/internal/testsupport"
	"weir/reconcile/netfilter"
	"weir/reconcile/plan"
	"weir/reconcile/render"
	"weir/spec"
)

// fakeRulesAgent serves GET /rules?family=F as an agent that wants rss,
// behind a token; status, when set, is answered instead.
func fakeRulesAgent(t *testing.T, rss render.Rulesets, status *atomic.Int32) string {
	return fakeRulesAgentOn(t, rss, status, "")
}

// fakeRulesAgentOn is fakeRulesAgent naming backend in Weir-Backend (none
// when empty).
func fakeRulesAgentOn(t *testing.T, rss render.Rulesets, status *atomic.Int32, backend string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t0ken" {
			http.Error(w, "missing or bad bearer token", http.StatusUnauthorized)
			return
		}
		if code := status.Load(); code != 0 {
			http.Error(w, "no ruleset planned yet", int(code))
			return
		}
		fam := map[string]spec.Family{"ipv4": spec.IPv4, "ipv6": spec.IPv6}
		f, ok := fam[r.URL.Query().Get("family")]
		if r.URL.Path != "/rules" || !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Weir-Revision", stRev)
		w.Header().Set("Weir-Digest", stDigest)
		if backend != "" {
			w.Header().Set("Weir-Backend", backend)
		}
		w.Write(netfilter.DesiredText(rss[f]))
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// applyBasic applies examples/basic's IPv4 rules for host-a through
// backend in a namespace of its own, and returns what it rendered.
func applyBasic(t *testing.T, backend string) (render.Rulesets, *testsupport.Netns) {
	t.Helper()
	nf, ns := testsupport.NewIPTables(t, backend)
	s, err := spec.LoadDir(planDir(t, map[string]string{"hosts.yaml": basicHosts(t), "balancers.yaml": planBalancers}))
	if err != nil {
		t.Fatal(err)
	}
	rss := render.RenderAll(plan.Assign(s, []string{"host-a", "host-b", "host-c"}, nil), "host-a", render.RenderOptions{})
	if _, err := netfilter.NewSyncer(nf, netfilter.SyncerOptions{}).Apply(context.Background(), rss[spec.IPv4]); err != nil {
		t.Fatal(err)
	}
	return rss, ns
}

// TestDiffNetns: `weir diff` in a namespace holding examples/basic's rules
// for host-a exits 0 with nothing printed; after a rule is deleted by hand
// it prints the unified diff and exits 1; without an answer it exits 2.
func TestDiffNetns(t *testing.T) {
	rss, ns := applyBasic(t, netfilter.BackendNFT)
	rs := rss[spec.IPv4]
	var status atomic.Int32
	api := fakeRulesAgent(t, rss, &status)
	token := agentWriteTemp(t, "t0ken\n")
	diff := func() (int, string, string) {
		return runCLI(t, runDiff, "--api", api, "--api-token-file", token, "--backend", "nft", "--netns", ns.Name)
	}
	if code, out, errs := diff(); code != exitOK || out != "" {
		t.Fatalf("weir diff after the apply = %d, %q, %q; want 0 and nothing", code, out, errs)
	}

	svc := svcChain(rs)
	ns.Run("iptables-nft", "-t", "nat", "-D", svc, "1")
	code, out, errs := diff()
	want := "--- live iptables (nft backend)\n+++ agent wants (revision 1a2b3c4, digest 9f8e7d6c)\n"
	if code != exitFail || !strings.HasPrefix(out, want) || !strings.Contains(out, "\n+-A "+svc+" -p tcp -m comment --comment frontend-orders -m statistic --mode random --probability 0.25000000000 -j DNAT --to-destination 198.19.2.2:8080\n") || !strings.HasSuffix(out, "\n COMMIT\n") {
		t.Errorf("weir diff after deleting the first rule of %s = %d, stderr %q:\n%s\nwant 1 and the rule as one the agent wants", svc, code, errs, out)
	}

	status.Store(http.StatusServiceUnavailable)
	if code, _, errs := diff(); code != exitUsage || !strings.Contains(errs, "no ruleset planned yet") {
		t.Errorf("weir diff while the agent has no plan = %d, %q; want 2", code, errs)
	}
	if code, _, errs := runCLI(t, runDiff, "--api", testsupport.FreeAddr(t), "--netns", ns.Name); code != exitUsage || !strings.Contains(errs, "is `weir agent` running") {
		t.Errorf("weir diff without an agent = %d, %q; want 2", code, errs)
	}
}

// TestDiffNetnsIPv6: with examples/dualstack applied in both families,
// `weir diff` agrees; a rule deleted from ip6tables shows up as a diff of
// "live ip6tables".
func TestDiffNetnsIPv6(t *testing.T) {
	nf, ns := testsupport.NewIPTables(t, netfilter.BackendNFT)
	nf6, err := netfilter.NewIPTables(netfilter.IPTablesOptions{Family: spec.IPv6, Backend: netfilter.BackendNFT, Netns: ns.Name})
	if err != nil {
		t.Skipf("ip6tables-nft: %v", err)
	}
	s, err := spec.LoadDir(filepath.Join("..", "..", "examples", "dualstack"))
	if err != nil {
		t.Fatal(err)
	}
	rss := render.RenderAll(plan.Assign(s, []string{"host-a", "host-b", "host-c"}, nil), "host-a", render.RenderOptions{})
	for f, x := range map[spec.Family]*netfilter.IPTables{spec.IPv4: nf, spec.IPv6: nf6} {
		if _, err := netfilter.NewSyncer(x, netfilter.SyncerOptions{}).Apply(context.Background(), rss[f]); err != nil {
			t.Fatal(err)
		}
	}
	var status atomic.Int32
	api := fakeRulesAgent(t, rss, &status)
	token := agentWriteTemp(t, "t0ken\n")
	diff := func() (int, string, string) {
		return runCLI(t, runDiff, "--api", api, "--api-token-file", token, "--backend", "nft", "--netns", ns.Name)
	}
	if code, out, errs := diff(); code != exitOK || out != "" {
		t.Fatalf("weir diff after the apply = %d, %q, %q; want 0 and nothing", code, out, errs)
	}
	svc := svcChain(rss[spec.IPv6])
	ns.Run("ip6tables-nft", "-t", "nat", "-D", svc, "1")
	code, out, _ := diff()
	if code != exitFail || !strings.HasPrefix(out, "--- live ip6tables (nft backend)\n") ||
		!strings.Contains(out, "\n+-A "+svc+" -p tcp -m comment --comment frontend-orders-v6 -m statistic --mode random --probability 0.25000000000 -j DNAT --to-destination [fd00:19:2::2]:8080\n") {
		t.Errorf("weir diff after deleting the first rule of %s = %d:\n%s\nwant 1 and the IPv6 rule as one the agent wants", svc, code, out)
	}
}

// svcChain is the last WEIR-SVC chain of rs's nat table.
func svcChain(rs *render.Ruleset) string {
	svc := ""
	for _, c := range rs.Tables[1].Chains {
		if strings.HasPrefix(c.Name, "WEIR-SVC-") {
			svc = c.Name
		}
	}
	return svc
}

// TestDiffUsesTheAgentsBackend: with rules applied through iptables-legacy
// and an agent that says so (Weir-Backend: legacy), `weir diff` without
// --backend reads the legacy tables and agrees, although this host's
// iptables defaults to nf_tables; --backend nft still overrides.
func TestDiffUsesTheAgentsBackend(t *testing.T) {
	rss, ns := applyBasic(t, netfilter.BackendLegacy)
	var status atomic.Int32
	api := fakeRulesAgentOn(t, rss, &status, netfilter.BackendLegacy)
	token := agentWriteTemp(t, "t0ken\n")
	if code, out, errs := runCLI(t, runDiff, "--api", api, "--api-token-file", token, "--netns", ns.Name); code != exitOK || out != "" {
		t.Errorf("weir diff against an agent on legacy = %d, %q, %q; want 0 and nothing", code, out, errs)
	}
	code, out, _ := runCLI(t, runDiff, "--api", api, "--api-token-file", token, "--netns", ns.Name, "--backend", "nft")
	if code != exitFail || !strings.HasPrefix(out, "--- live iptables (nft backend)") {
		t.Errorf("weir diff --backend nft against rules in legacy = %d:\n%s\nwant 1, nft's empty tables against the agent's rules", code, out)
	}
}
