package agent

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"weir/cluster"
)

// metricFamily returns the metrics named name from the agent's registry.
func metricFamily(t *testing.T, a *Agent, name string) []*dto.Metric {
	t.Helper()
	mfs, err := a.metrics.registry.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()
		}
	}
	t.Fatalf("metric %s not found", name)
	return nil
}

// counterValue reads a counter or gauge without labels from the agent's registry.
func counterValue(t *testing.T, a *Agent, name string) float64 {
	t.Helper()
	m := metricFamily(t, a, name)[0]
	if m.GetCounter() != nil {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

// labelledValue returns the value of the counter name whose label is
// value.
func labelledValue(t *testing.T, a *Agent, name, label, value string) float64 {
	t.Helper()
	for _, m := range metricFamily(t, a, name) {
		for _, l := range m.GetLabel() {
			if l.GetName() == label && l.GetValue() == value {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("metric %s{%s=%q} not found", name, label, value)
	return 0
}

func get(t *testing.T, srv *httptest.Server, path string) (int, string) {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestStatusHealthzAndMetrics(t *testing.T) {
	cl := newFakeCluster(true, "h1", "h2", "h3")
	cl.members = []cluster.Member{
		{Name: "h1", Address: "198.18.0.1:7946", State: cluster.StateAlive},
		{Name: "h2", Address: "198.18.0.2:7946", State: cluster.StateAlive},
		{Name: "h3", Address: "198.18.0.3:7946", State: cluster.StateDead},
		{Name: "ops", Address: "198.18.0.9:7946", State: cluster.StateAlive, Observer: true},
	}
	h := newHarness(t, Config{}, newFakeSource(specA), cl, &fakeSyncer{})
	srv := httptest.NewServer(h.a.Handler())
	defer srv.Close()

	if code, _ := get(t, srv, "/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("GET /healthz before Run = %d; want 503", code)
	}
	h.start()
	h.waitRules("WEIR-fo", "orders-1", "orders-2")
	if code, body := get(t, srv, "/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("GET /healthz = %d %q; want 200 \"ok\\n\"", code, body)
	}

	code, body := get(t, srv, "/status")
	if code != http.StatusOK {
		t.Fatalf("GET /status = %d; want 200", code)
	}
	var st struct {
		Revision  string           `json:"revision"`
		Converged *bool            `json:"converged"`
		Members   []cluster.Member `json:"members"`
		Node      string           `json:"node"`
		Latest    string           `json:"latest"`
		Error     *string          `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("GET /status: %v in %s", err, body)
	}
	if st.Revision != revisionOf(specA) || st.Latest != revisionOf(specA) || st.Node != "h1" || st.Converged == nil || st.Error == nil || len(st.Members) != 4 {
		t.Errorf("GET /status = %s; want revision and latest %s, node h1, converged, error and 4 members", body, revisionOf(specA))
	}

	code, body = get(t, srv, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics = %d", code)
	}
	for _, want := range []string{
		`weir_applied_revision_info{revision="` + revisionOf(specA) + `"} 1`,
		"weir_rules 2",
		"weir_balancers 1",
		`weir_members{state="alive"} 2`,
		`weir_members{state="dead"} 1`,
		`weir_members{state="left"} 0`,
		`weir_source_fetches_total{result="error",source="other"} 0`,
		`weir_source_fetches_total{result="success",source="other"} 1`,
		"weir_drift_repairs_total 0",
		`weir_drift_checks_total{result="error"} 0`,
		`weir_applies_total{result="error"} 0`,
		`weir_applies_total{result="success"} 1`,
		`weir_build_info{commit="",goversion="",version=""} 1`,
		"weir_reconcile_duration_seconds_count",
		"weir_last_apply_timestamp_seconds",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("GET /metrics lacks %q", want)
		}
	}
}

func TestLastApplyTimestamp(t *testing.T) {
	h := newHarness(t, Config{}, newFakeSource(specA), newFakeCluster(true, "h1", "h2", "h3"), &fakeSyncer{}).start()
	h.waitRules("WEIR-fo", "orders-1", "orders-2")
	want := float64(h.a.State().LastAppliedTime.UnixNano()) / 1e9
	if got := counterValue(t, h.a, "weir_last_apply_timestamp_seconds"); got != want || got < 1.7e9 {
		t.Errorf("weir_last_apply_timestamp_seconds = %v; want %v", got, want)
	}
}

func TestRefreshAuth(t *testing.T) {
	const secret = "s3cret"
	body := `{"ref":"refs/heads/main"}`
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(body))
	goodSig := "sha256=" + hex.EncodeToString(mac.Sum(nil))

	tests := []struct {
		name    string
		secret  string
		headers map[string]string
		want    int
	}{
		{"no secret configured", "", nil, http.StatusAccepted},
		{"secret, no credentials", secret, nil, http.StatusUnauthorized},
		{"good signature", secret, map[string]string{"X-Hub-Signature-256": goodSig}, http.StatusAccepted},
		{"signature of another body", secret, map[string]string{"X-Hub-Signature-256": "sha256=" + strings.Repeat("ab", 32)}, http.StatusUnauthorized},
		{"signature not hex", secret, map[string]string{"X-Hub-Signature-256": "sha256=zz"}, http.StatusUnauthorized},
		{"good bearer", secret, map[string]string{"Authorization": "Bearer " + secret}, http.StatusAccepted},
		{"wrong bearer", secret, map[string]string{"Authorization": "Bearer nope"}, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{API: APIConfig{WebhookSecret: []byte(tt.secret)}}, newFakeSource(specA), newFakeCluster(true), &fakeSyncer{})
			srv := httptest.NewServer(h.a.Handler())
			defer srv.Close()
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/refresh", strings.NewReader(body))
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatalf("POST /refresh: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("POST /refresh = %d; want %d", resp.StatusCode, tt.want)
			}
			if got, want := len(h.a.refresh) == 1, tt.want == http.StatusAccepted; got != want {
				t.Errorf("refresh queued = %v; want %v", got, want)
			}
		})
	}
}

func TestRefreshTriggersFetch(t *testing.T) {
	h := newHarness(t, Config{}, newFakeSource(specA), newFakeCluster(true, "h1", "h2", "h3"), &fakeSyncer{}).start()
	h.waitRules("WEIR-fo", "orders-1", "orders-2")
	srv := httptest.NewServer(h.a.Handler())
	defer srv.Close()
	h.src.set(specB) // no watch event: only /refresh finds it
	resp, err := srv.Client().Post(srv.URL+"/refresh", "application/json", nil)
	if err != nil {
		t.Fatalf("POST /refresh: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("POST /refresh = %d; want 202", resp.StatusCode)
	}
	h.waitRules("WEIR-fo", "orders-1")
}

func TestCheckAPIAddr(t *testing.T) {
	tests := []struct {
		addr          string
		secret, token bool
		wantErr       error
	}{
		{"127.0.0.1:7947", false, false, nil},
		{"[::1]:7947", false, false, nil},
		{"localhost:7947", false, false, nil},
		{"127.0.0.2:7947", false, false, nil},
		{"198.18.0.1:7947", false, false, ErrInsecureAPI},
		{"198.18.0.1:7947", true, false, ErrInsecureAPI},
		{"198.18.0.1:7947", false, true, ErrInsecureAPI},
		{"198.18.0.1:7947", true, true, nil},
		{":7947", false, false, ErrInsecureAPI},
		{"0.0.0.0:7947", true, true, nil},
	}
	for _, tt := range tests {
		err := CheckAPIAddr(tt.addr, tt.secret, tt.token)
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("CheckAPIAddr(%q, %v, %v) = %v; want %v", tt.addr, tt.secret, tt.token, err, tt.wantErr)
		}
	}
	if err := CheckAPIAddr("nonsense", true, true); err == nil {
		t.Errorf("CheckAPIAddr(\"nonsense\") = nil; want an error")
	}
}

func TestServeStopsWithContext(t *testing.T) {
	h := newHarness(t, Config{}, newFakeSource(specA), newFakeCluster(true), &fakeSyncer{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- h.a.Serve(ctx2, ln) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	resp.Body.Close()
	cancel2()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve = %v; want nil after cancel", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}

func TestReadSecretFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		content string
		want    string
		wantErr bool
	}{
		{"s3cret\n", "s3cret", false},
		{"  tok en \r\n", "tok en", false},
		{"\n\n", "", true},
	}
	for i, tt := range tests {
		p := filepath.Join(dir, fmt.Sprint(i))
		if err := os.WriteFile(p, []byte(tt.content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := ReadSecretFile("webhook secret", p)
		if (err != nil) != tt.wantErr || string(got) != tt.want {
			t.Errorf("ReadSecretFile(%q) = %q, %v; want %q, error %v", tt.content, got, err, tt.want, tt.wantErr)
		}
	}
	if _, err := ReadSecretFile("webhook secret", filepath.Join(dir, "missing")); err == nil {
		t.Errorf("ReadSecretFile(missing) = nil error")
	}
}

// TestStatusJSONShape pins the fields of GET /status with the real
// cluster.BuildStatus: the cluster status object (README.md, `weir status -o
// json`) plus the agent's node, latest, settled and error.
func TestStatusJSONShape(t *testing.T) {
	cl := newFakeCluster(true, "h1", "h2")
	cl.members = []cluster.Member{
		{Name: "h1", Address: "198.18.0.1:7946", State: cluster.StateAlive},
		{Name: "h2", Address: "198.18.0.2:7946", State: cluster.StateAlive},
	}
	h := newHarnessDeps(t, Config{GossipEncrypted: true}, Deps{Source: newFakeSource(specA), Load: fakeLoad, Cluster: cl, Planner: PlannerFunc(fakePlan), Syncer: &fakeSyncer{}})
	srv := httptest.NewServer(h.a.Handler())
	defer srv.Close()

	code, body := get(t, srv, "/status")
	if code != http.StatusOK {
		t.Fatalf("GET /status = %d; want 200", code)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &obj); err != nil {
		t.Fatalf("GET /status: %v in %s", err, body)
	}
	got := slices.Sorted(maps.Keys(obj))
	want := []string{"converged", "error", "gossipEncrypted", "healthReason", "healthy", "latest", "members", "node", "reason", "revision", "settled"}
	if !slices.Equal(got, want) {
		t.Errorf("GET /status fields = %v; want %v\n%s", got, want, body)
	}
	for k, v := range map[string]string{"node": `"h1"`, "latest": `""`, "revision": `""`, "settled": "false", "error": `""`, "converged": "false", "gossipEncrypted": "true"} {
		if string(obj[k]) != v {
			t.Errorf("GET /status %s = %s; want %s", k, obj[k], v)
		}
	}
	var members []map[string]json.RawMessage
	if err := json.Unmarshal(obj["members"], &members); err != nil || len(members) != 2 {
		t.Fatalf("GET /status members = %s, %v; want 2", obj["members"], err)
	}
	wantMember := []string{"address", "balancers", "digest", "error", "name", "revision", "rules", "state", "unhealthyChecks"}
	if got := slices.Sorted(maps.Keys(members[0])); !slices.Equal(got, wantMember) {
		t.Errorf("GET /status member fields = %v; want %v", got, wantMember)
	}
}
