package agent

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// serveAPI serves h's API on a loopback port with cfg's limits, as the
// agent does (Serve, not httptest, so the server's timeouts apply), and
// returns its address.
func serveAPI(t *testing.T, h *harness) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.a.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

// rawRequest writes head (request line and headers, without the blank line)
// to addr and returns the connection and a reader of the answer.
func rawRequest(t *testing.T, addr, head string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, strings.ReplaceAll(head, "\n", "\r\n")+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	return c, bufio.NewReader(c)
}

// trickle writes one byte every interval to c until it fails or stop closes.
func trickle(c net.Conn, interval time.Duration, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-time.After(interval):
		}
		if _, err := c.Write([]byte("x")); err != nil {
			return
		}
	}
}

const fakeSig = "sha256=0000000000000000000000000000000000000000000000000000000000000000"

// TestAPIBigBodyRefusedUnread: a big body with a wrong token is answered
// 401 (undeclared length) or 413 (declared length) at once, and the agent
// reads none of it beyond the cap.
func TestAPIBigBodyRefusedUnread(t *testing.T) {
	h := newHarness(t, Config{API: APIConfig{WebhookSecret: []byte("s3cret")}}, newFakeSource(specA), newFakeCluster(true), &fakeSyncer{})
	var read atomic.Int64
	counting := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = countingBody{r.Body, &read}
		h.a.Handler().ServeHTTP(w, r)
	})
	srv := httptest.NewServer(counting)
	defer srv.Close()
	const big = 25 << 20
	tests := []struct {
		name     string
		length   int64 // -1: chunked
		headers  map[string]string
		want     int
		maxBytes int64
	}{
		{"chunked, wrong bearer", -1, map[string]string{"Authorization": "Bearer nope"}, http.StatusUnauthorized, 0},
		{"chunked, GitLab token wrong", -1, map[string]string{"X-Gitlab-Token": "nope"}, http.StatusUnauthorized, 0},
		{"chunked, signature to check", -1, map[string]string{"X-Hub-Signature-256": fakeSig}, http.StatusRequestEntityTooLarge, DefaultMaxBody + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			read.Store(0)
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/refresh", io.LimitReader(zeros{}, big))
			req.ContentLength = tt.length
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			start := time.Now()
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatalf("POST /refresh: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("POST /refresh = %d; want %d", resp.StatusCode, tt.want)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("POST /refresh answered after %v; want at once", took)
			}
			if got := read.Load(); got > tt.maxBytes {
				t.Errorf("the agent read %d bytes of the body; want at most %d", got, tt.maxBytes)
			}
		})
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// TestAPIDeclaredBigBody: a request declaring a body over the cap is
// answered 413 before any of it is sent.
func TestAPIDeclaredBigBody(t *testing.T) {
	h := newHarness(t, Config{API: APIConfig{WebhookSecret: []byte("s3cret")}}, newFakeSource(specA), newFakeCluster(true), &fakeSyncer{})
	addr := serveAPI(t, h)
	c, r := rawRequest(t, addr, "POST /refresh HTTP/1.1\nHost: weir\nAuthorization: Bearer nope\nContent-Length: 26214400")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(r, nil)
	if err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("POST /refresh declaring 25 MiB = %v, %v; want 413 before the body", resp, err)
	}
}

// TestAPISlowBody: a body sent a byte at a time is dropped at the read
// deadline when the agent must read it, and not waited for at all when the
// request carries no signature to check.
func TestAPISlowBody(t *testing.T) {
	h := newHarness(t, Config{API: APIConfig{WebhookSecret: []byte("s3cret"), ReadTimeout: 500 * time.Millisecond}},
		newFakeSource(specA), newFakeCluster(true), &fakeSyncer{})
	addr := serveAPI(t, h)
	stop := make(chan struct{})
	defer close(stop)

	c, r := rawRequest(t, addr, "POST /refresh HTTP/1.1\nHost: weir\nContent-Length: 100\nX-Hub-Signature-256: "+fakeSig)
	go trickle(c, 100*time.Millisecond, stop)
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	io.Copy(io.Discard, r) // until the agent closes the connection
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("a slow body held the connection for %v; want it dropped at the 500ms read deadline", took)
	}

	c, r = rawRequest(t, addr, "POST /refresh HTTP/1.1\nHost: weir\nContent-Length: 100")
	go trickle(c, 100*time.Millisecond, stop)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(r, nil)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unsigned slow POST /refresh = %v, %v; want 401 at once", resp, err)
	}
}

// TestAPIToken: with a token, /status and /metrics want it; /healthz does not.
func TestAPIToken(t *testing.T) {
	h := newHarness(t, Config{API: APIConfig{Token: []byte("t0ken")}}, newFakeSource(specA), newFakeCluster(true), &fakeSyncer{})
	srv := httptest.NewServer(h.a.Handler())
	defer srv.Close()
	for _, tt := range []struct {
		path, auth string
		want       int
	}{
		{"/status", "", http.StatusUnauthorized},
		{"/status", "Bearer nope", http.StatusUnauthorized},
		{"/status", "Bearer t0ken", http.StatusOK},
		{"/metrics", "", http.StatusUnauthorized},
		{"/metrics", "Bearer t0ken", http.StatusOK},
		{"/healthz", "", http.StatusServiceUnavailable}, // open; 503 as the loop does not run
	} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+tt.path, nil)
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("GET %s with %q = %d; want %d", tt.path, tt.auth, resp.StatusCode, tt.want)
		}
	}
}

// TestAPIConcurrencyLimit: requests beyond MaxConcurrent are answered 503
// at once while the others are served.
func TestAPIConcurrencyLimit(t *testing.T) {
	h := newHarness(t, Config{API: APIConfig{WebhookSecret: []byte("s3cret"), MaxConcurrent: 2}}, newFakeSource(specA), newFakeCluster(true), &fakeSyncer{})
	addr := serveAPI(t, h)
	var slow []net.Conn
	for range 2 { // two slow signed bodies hold both slots
		c, _ := rawRequest(t, addr, "POST /refresh HTTP/1.1\nHost: weir\nContent-Length: 100\nX-Hub-Signature-256: "+fakeSig)
		slow = append(slow, c)
	}
	waitFor(t, "both slow requests served", func() bool { return counterValue(t, h.a, "weir_api_requests_in_flight") == 2 })
	busy := func() int {
		resp, err := http.Get("http://" + addr + "/status")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	waitFor(t, "both slots taken", func() bool { return busy() == http.StatusServiceUnavailable })
	for _, c := range slow {
		c.Close()
	}
	waitFor(t, "the slots freed", func() bool { return busy() == http.StatusOK })
}

// TestRefreshSignatures: GitHub, Gitea and GitLab webhooks are accepted
// with the right secret and refused with a wrong one.
func TestRefreshSignatures(t *testing.T) {
	const secret = "s3cret"
	body := `{"ref":"refs/heads/main"}`
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(body))
	sig := hex.EncodeToString(mac.Sum(nil))
	for _, tt := range []struct {
		header, value string
		want          int
	}{
		{"X-Hub-Signature-256", "sha256=" + sig, http.StatusAccepted},
		{"X-Hub-Signature-256", sig, http.StatusUnauthorized}, // GitHub's needs its prefix
		{"X-Gitea-Signature", sig, http.StatusAccepted},
		{"X-Gitea-Signature", strings.Repeat("ab", 32), http.StatusUnauthorized},
		{"X-Gitlab-Token", secret, http.StatusAccepted},
		{"X-Gitlab-Token", "nope", http.StatusUnauthorized},
	} {
		h := newHarness(t, Config{API: APIConfig{WebhookSecret: []byte(secret)}}, newFakeSource(specA), newFakeCluster(true), &fakeSyncer{})
		srv := httptest.NewServer(h.a.Handler())
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/refresh", strings.NewReader(body))
		req.Header.Set(tt.header, tt.value)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		srv.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("POST /refresh with %s: %s = %d; want %d", tt.header, tt.value, resp.StatusCode, tt.want)
		}
	}
}
