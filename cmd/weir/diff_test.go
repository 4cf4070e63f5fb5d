package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"weir/internal/testsupport"
	"weir/reconcile/netfilter"
	"weir/reconcile/plan"
	"weir/reconcile/render"
	"weir/spec"
)

// fakeRulesAgent serves GET /rules as an agent that wants rs, behind a
// token; status, when set, is answered instead.
func fakeRulesAgent(t *testing.T, rs *render.Ruleset, status *atomic.Int32) string {
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
		if r.URL.Path != "/rules" || r.URL.Query().Get("family") != "ipv4" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Weir-Revision", stRev)
		w.Header().Set("Weir-Digest", stDigest)
		w.Write(netfilter.DesiredText(rs))
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestDiffNetns: `weir diff` in a namespace holding examples/basic's rules
// for host-a exits 0 with nothing printed; after a rule is deleted by hand
// it prints the unified diff and exits 1; without an answer it exits 2.
func TestDiffNetns(t *testing.T) {
	nf, ns := testsupport.NewIPTables(t, netfilter.BackendNFT)
	dir := planDir(t, map[string]string{"hosts.yaml": basicHosts(t), "balancers.yaml": planBalancers})
	s, err := spec.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	rs := render.Render(plan.Assign(s, []string{"host-a", "host-b", "host-c"}, nil), "host-a")
	if _, err := netfilter.NewSyncer(nf, netfilter.SyncerOptions{}).Apply(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	var status atomic.Int32
	api := fakeRulesAgent(t, rs, &status)
	token := agentWriteTemp(t, "t0ken\n")
	diff := func() (int, string, string) {
		return runCLI(t, runDiff, "--api", api, "--api-token-file", token, "--backend", "nft", "--netns", ns.Name)
	}
	if code, out, errs := diff(); code != exitOK || out != "" {
		t.Fatalf("weir diff after the apply = %d, %q, %q; want 0 and nothing", code, out, errs)
	}

	svc := ""
	for _, c := range rs.Tables[1].Chains {
		if strings.HasPrefix(c.Name, "WEIR-SVC-") {
			svc = c.Name
		}
	}
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
	if code, _, errs := runCLI(t, runDiff, "--api", freeAddr(t), "--netns", ns.Name); code != exitUsage || !strings.Contains(errs, "is `weir agent` running") {
		t.Errorf("weir diff without an agent = %d, %q; want 2", code, errs)
	}
}
