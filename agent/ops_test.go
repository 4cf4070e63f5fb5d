package agent

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	gometrics "github.com/hashicorp/go-metrics"
	"github.com/prometheus/client_golang/prometheus"

	"weir/reconcile/netfilter"
	"weir/spec"
)

// TestRulesEndpoint: GET /rules serves what the agent wants applied, in
// the saved form `weir diff` compares, behind the API token; 503 before a
// plan, 400 for a family weir does not program.
func TestRulesEndpoint(t *testing.T) {
	h := newHarness(t, Config{API: APIConfig{Token: []byte("t0ken")}}, newFakeSource(specA), newFakeCluster(true, "h1", "h2", "h3"), &fakeSyncer{})
	h.a.deps.Live[spec.IPv4] = fakeCounters{backend: netfilter.BackendLegacy}
	srv := httptest.NewServer(h.a.Handler())
	defer srv.Close()
	ask := func(path, token string) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	if code, body, _ := ask("/rules", "t0ken"); code != http.StatusServiceUnavailable || !strings.Contains(body, "no ruleset planned yet") {
		t.Errorf("GET /rules before a plan = %d %q; want 503", code, body)
	}
	h.start()
	h.waitRules("WEIR-fo", "orders-1", "orders-2")
	if code, _, _ := ask("/rules", ""); code != http.StatusUnauthorized {
		t.Errorf("GET /rules without the token = %d; want 401", code)
	}
	code, body, hdr := ask("/rules", "t0ken")
	st := h.a.State()
	if want := string(netfilter.DesiredText(h.sy.live)); code != http.StatusOK || body != want {
		t.Errorf("GET /rules = %d\n%s\nwant 200 and\n%s", code, body, want)
	}
	if hdr.Get("Weir-Revision") != st.Revision || hdr.Get("Weir-Digest") == "" || hdr.Get("Weir-Backend") != netfilter.BackendLegacy {
		t.Errorf("GET /rules headers: revision %q digest %q backend %q; want %q, the digest and legacy", hdr.Get("Weir-Revision"), hdr.Get("Weir-Digest"), hdr.Get("Weir-Backend"), st.Revision)
	}
	if code, again, _ := ask("/rules?family=ipv4", "t0ken"); code != http.StatusOK || again != body {
		t.Errorf("GET /rules?family=ipv4 = %d, differs from GET /rules", code)
	}
	if code, body, _ := ask("/rules?family=ipx", "t0ken"); code != http.StatusBadRequest || !strings.Contains(body, `unknown family "ipx"`) {
		t.Errorf("GET /rules?family=ipx = %d %q; want 400", code, body)
	}
}

// TestReadyAndLive: Ready closes after the first pass; Live stays OK while
// the source fails (Health does not), so the systemd watchdog never
// restarts an agent that waits for Git.
func TestReadyAndLive(t *testing.T) {
	src := newFakeSource(specA)
	h := newHarness(t, Config{}, src, newFakeCluster(false, "h1"), &fakeSyncer{})
	select {
	case <-h.a.Ready():
		t.Fatal("ready before Run")
	default:
	}
	if l := h.a.Live(); l.OK {
		t.Errorf("Live() before Run = %+v; want not OK", l)
	}
	h.start()
	waitAdvancing(t, h.clk, 50*time.Millisecond, "ready", func() bool {
		select {
		case <-h.a.Ready():
			return true
		default:
			return false
		}
	})
	src.fail(errors.New("git server down"))
	h.a.Refresh()
	waitAdvancing(t, h.clk, 50*time.Millisecond, "the failed fetch", func() bool { return !h.a.Health().OK })
	if l := h.a.Live(); !l.OK {
		t.Errorf("Live() while the source fails = %+v; want OK (the loop makes progress)", l)
	}
}

// TestFetchAndDriftMetrics: fetches count by result, drift checks by
// outcome, and never in the apply counters.
func TestFetchAndDriftMetrics(t *testing.T) {
	src, sy := newFakeSource(specA), &fakeSyncer{}
	h := newHarness(t, Config{Resync: time.Second}, src, newFakeCluster(true, "h1", "h2", "h3"), sy).start()
	h.waitRules("WEIR-fo", "orders-1", "orders-2")
	applied := labelledValue(t, h.a, "weir_applies_total", "result", "success")
	src.fail(errors.New("unreachable"))
	h.a.Refresh()
	waitAdvancing(t, h.clk, 50*time.Millisecond, "a failed fetch counted", func() bool {
		return labelledValue(t, h.a, "weir_source_fetches_total", "result", "error") == 1
	})
	if got := labelledValue(t, h.a, "weir_source_fetches_total", "result", "success"); got < 1 {
		t.Errorf("successful fetches = %v; want at least 1", got)
	}
	sy.mu.Lock()
	sy.drifted = true
	sy.mu.Unlock()
	waitAdvancing(t, h.clk, 100*time.Millisecond, "a repaired drift counted", func() bool {
		return labelledValue(t, h.a, "weir_drift_checks_total", "result", "repaired") == 1
	})
	waitAdvancing(t, h.clk, 100*time.Millisecond, "an in-sync drift check counted", func() bool {
		return labelledValue(t, h.a, "weir_drift_checks_total", "result", "in_sync") >= 1
	})
	if got := labelledValue(t, h.a, "weir_applies_total", "result", "success"); got != applied {
		t.Errorf("applies went from %v to %v over a failed fetch and a drift repair; want no change", applied, got)
	}
}

// TestGossipMetrics: memberlist's go-metrics reach the agent's registry
// with Prometheus names, and never the process-wide default registry.
func TestGossipMetrics(t *testing.T) {
	h := newHarness(t, Config{Build: Build{Version: "v1.2.3", Commit: "abc", GoVersion: "go1.26"}}, newFakeSource(specA), newFakeCluster(true), &fakeSyncer{})
	if err := InstallGossipMetrics(h.a.GossipMetrics()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = gometrics.NewGlobal(gometrics.DefaultConfig(""), &gometrics.BlackholeSink{}) })
	gometrics.IncrCounterWithLabels([]string{"memberlist", "udp", "sent"}, 42, nil)
	gometrics.MeasureSince([]string{"memberlist", "gossip"}, time.Now().Add(-3*time.Millisecond))

	srv := httptest.NewServer(h.a.Handler())
	defer srv.Close()
	_, body := get(t, srv, "/metrics")
	for _, want := range []string{
		"weir_memberlist_udp_sent_total 42",
		`weir_memberlist_gossip{quantile="0.5"}`,
		`weir_build_info{commit="abc",goversion="go1.26",version="v1.2.3"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("GET /metrics lacks %q", want)
		}
	}
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "weir_") {
			t.Errorf("%s is on Prometheus' default registry; want the agent's only", mf.GetName())
		}
	}
}
