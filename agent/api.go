package agent

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// maxWebhookBody bounds a /refresh body; GitHub caps webhook payloads at 25 MB.
const maxWebhookBody = 25 << 20

// Handler returns the agent's HTTP API: GET /status, GET /healthz, POST
// /refresh, GET /metrics, and GET /keys with POST /keys/{op} (keys.go).
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", a.handleStatus)
	mux.HandleFunc("GET /healthz", a.handleHealthz)
	mux.HandleFunc("POST /refresh", a.handleRefresh)
	mux.HandleFunc("GET /keys", a.handleKeys)
	mux.HandleFunc("POST /keys/{op}", a.handleKeyOp)
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.metrics.registry, promhttp.HandlerOpts{Registry: a.metrics.registry}))
	return mux
}

// Serve serves the API on ln until ctx ends, then shuts the server down.
func (a *Agent) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           a.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("serving the API on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("shutting down the API: %w", err)
	}
	<-done
	return nil
}

// handleStatus writes Status: the cluster status about this agent's applied
// revision, plus node, latest, settled and error.
func (a *Agent) handleStatus(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(a.Status())
}

func (a *Agent) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	if !a.Running() {
		http.Error(w, "loop not running", http.StatusServiceUnavailable)
		return
	}
	io.WriteString(w, "ok\n")
}

// handleRefresh queues a fetch. With a webhook secret it requires either a
// GitHub-style X-Hub-Signature-256 (HMAC-SHA256 of the body) or
// "Authorization: Bearer <secret>".
func (a *Agent) handleRefresh(w http.ResponseWriter, r *http.Request) {
	if len(a.cfg.WebhookSecret) > 0 {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxWebhookBody+1))
		if err != nil {
			http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
			return
		}
		if len(body) > maxWebhookBody {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		if !authorized(a.cfg.WebhookSecret, r.Header, body) {
			a.log.Warn("refused unauthenticated /refresh", "remote", r.RemoteAddr)
			http.Error(w, "missing or bad X-Hub-Signature-256 or bearer token", http.StatusUnauthorized)
			return
		}
	}
	a.Refresh()
	w.WriteHeader(http.StatusAccepted)
	io.WriteString(w, "refresh queued\n")
}

// authorized checks a webhook request against secret in constant time.
func authorized(secret []byte, h http.Header, body []byte) bool {
	if sig, ok := strings.CutPrefix(h.Get("X-Hub-Signature-256"), "sha256="); ok {
		got, err := hex.DecodeString(sig)
		if err == nil {
			mac := hmac.New(sha256.New, secret)
			mac.Write(body)
			if hmac.Equal(got, mac.Sum(nil)) {
				return true
			}
		}
	}
	if tok, ok := strings.CutPrefix(h.Get("Authorization"), "Bearer "); ok {
		return hmac.Equal([]byte(strings.TrimSpace(tok)), secret)
	}
	return false
}

// ErrInsecureAPI is returned by CheckAPIAddr for a non-loopback address
// without a webhook secret.
var ErrInsecureAPI = errors.New("an --api address that is not loopback requires --webhook-secret-file")

// CheckAPIAddr validates an --api address: HOST:PORT, where a host other than
// a loopback address (or "localhost") requires a webhook secret, because
// /refresh would otherwise let anyone on the network make every agent fetch.
func CheckAPIAddr(addr string, haveSecret bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("parsing --api address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsLoopback() {
		return nil
	}
	if !haveSecret {
		return fmt.Errorf("--api %s: %w", addr, ErrInsecureAPI)
	}
	return nil
}

// ReadSecretFile reads a webhook secret, without surrounding white space.
func ReadSecretFile(name string) ([]byte, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("reading webhook secret: %w", err)
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, fmt.Errorf("reading webhook secret %s: file is empty", name)
	}
	return b, nil
}
