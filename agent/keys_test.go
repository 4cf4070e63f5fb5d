package agent

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"weir/cluster"
)

// fakeKeys records the key operations the API asked for.
type fakeKeys struct {
	mu  sync.Mutex
	ops []string
	err error
}

func (k *fakeKeys) KeyOperation(_ context.Context, op cluster.KeyOp, key []byte) (cluster.KeyReport, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.ops = append(k.ops, string(op)+":"+string(key))
	if k.err != nil {
		return cluster.KeyReport{}, k.err
	}
	return cluster.KeyReport{Op: op, Members: []cluster.KeyMember{{Name: "h1", OK: true}}}, nil
}

func keysServer(t *testing.T, keys KeyManager) *httptest.Server {
	t.Helper()
	h := newHarnessDeps(t, Config{}, Deps{Source: newFakeSource(specA), Load: fakeLoad, Cluster: newFakeCluster(true), Syncer: &fakeSyncer{}, Keys: keys})
	srv := httptest.NewServer(h.a.Handler())
	t.Cleanup(srv.Close)
	return srv
}

func send(t *testing.T, srv *httptest.Server, method, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestKeysAPI(t *testing.T) {
	keys := &fakeKeys{}
	srv := keysServer(t, keys)
	tests := []struct {
		method, path, body string
		want               int
	}{
		{"GET", "/keys", "", 200},
		{"POST", "/keys/install", `{"key":"a2V5"}`, 200},
		{"POST", "/keys/use", `{"key":"a2V5"}`, 200},
		{"POST", "/keys/remove", `{"key":"a2V5"}`, 200},
		{"POST", "/keys/rotate", `{"key":"a2V5"}`, 404},
		{"POST", "/keys/install", `{"key":"not base64!"}`, 400},
		{"POST", "/keys/install", `key`, 400},
		{"POST", "/keys/install", `{"key":"` + strings.Repeat("A", maxKeysBody) + `"}`, 400},
	}
	for _, tt := range tests {
		if code, body := send(t, srv, tt.method, tt.path, tt.body); code != tt.want {
			t.Errorf("%s %s = %d %q; want %d", tt.method, tt.path, code, body, tt.want)
		}
	}
	if want := []string{"list:", "install:key", "use:key", "remove:key"}; !slices.Equal(keys.ops, want) {
		t.Errorf("operations = %q; want %q", keys.ops, want)
	}
	_, body := send(t, srv, "GET", "/keys", "")
	var rep cluster.KeyReport
	if err := json.Unmarshal([]byte(body), &rep); err != nil || rep.Op != cluster.KeyList || len(rep.Members) != 1 {
		t.Errorf("GET /keys = %q (%v); want a list report", body, err)
	}
	keys.err = errors.New("not using key: host-c lack it")
	if code, body := send(t, srv, "POST", "/keys/use", `{"key":"a2V5"}`); code != http.StatusConflict || !strings.Contains(body, "lack it") {
		t.Errorf("refused operation = %d %q; want 409 with the reason", code, body)
	}
}

func TestKeysAPINeedsTheToken(t *testing.T) {
	keys := &fakeKeys{}
	h := newHarnessDeps(t, Config{API: APIConfig{Token: []byte("s3cret")}}, Deps{Source: newFakeSource(specA), Load: fakeLoad, Cluster: newFakeCluster(true), Syncer: &fakeSyncer{}, Keys: keys})
	srv := httptest.NewServer(h.a.Handler())
	defer srv.Close()
	if code, _ := send(t, srv, "POST", "/keys/install", `{"key":"a2V5"}`); code != http.StatusUnauthorized || len(keys.ops) != 0 {
		t.Errorf("POST /keys/install without the token = %d, ops %v; want 401 and nothing done", code, keys.ops)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/keys", nil)
	req.Header.Set("Authorization", "Bearer s3cret")
	resp, err := srv.Client().Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("GET /keys with the token = %v, %v; want 200", resp.Status, err)
	}
}

func TestKeysAPIOnlyForLoopbackAndWhenManaged(t *testing.T) {
	if code, _ := send(t, keysServer(t, nil), "GET", "/keys", ""); code != http.StatusNotImplemented {
		t.Errorf("GET /keys without a key manager = %d; want 501", code)
	}
	keys := &fakeKeys{}
	h := newHarnessDeps(t, Config{}, Deps{Source: newFakeSource(specA), Load: fakeLoad, Cluster: newFakeCluster(true), Syncer: &fakeSyncer{}, Keys: keys})
	req := httptest.NewRequest("POST", "/keys/install", strings.NewReader(`{"key":"a2V5"}`))
	req.RemoteAddr = "198.18.0.7:40000"
	rec := httptest.NewRecorder()
	h.a.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden || len(keys.ops) != 0 {
		t.Errorf("POST /keys/install from 198.18.0.7 = %d, ops %v; want 403 and nothing done", rec.Code, keys.ops)
	}
}
