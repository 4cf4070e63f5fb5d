package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Defaults of APIConfig.
const (
	// DefaultMaxBody caps a request body. A push webhook's payload is a few
	// KiB; GitHub sends at most 25 MB, but a refresh needs none of it beyond
	// the signature, and a bigger cap only helps whoever floods the API.
	DefaultMaxBody = 1 << 20
	// DefaultReadTimeout drops a request that has not arrived whole (headers
	// and body) within it.
	DefaultReadTimeout = 30 * time.Second
	// DefaultWriteTimeout bounds writing one answer.
	DefaultWriteTimeout = 30 * time.Second
	// DefaultIdleTimeout closes a keep-alive connection left idle.
	DefaultIdleTimeout = 60 * time.Second
	// DefaultMaxConcurrent bounds the requests served at once; further ones
	// are answered 503 at once. A scraper, a CLI and a webhook need a few.
	DefaultMaxConcurrent = 16
	// maxHeaderBytes caps request headers (net/http's default is 1 MiB).
	maxHeaderBytes = 64 << 10
)

// APIConfig protects the HTTP API (README.md, docs/api.md). Zero values take
// the defaults above.
type APIConfig struct {
	// Token, when set, is required as "Authorization: Bearer TOKEN" on GET
	// /status, /balancers/NAME, /rules, /metrics and /keys (--api-token-file). /healthz stays open for
	// probes; /refresh has its own secret.
	Token []byte
	// WebhookSecret, when set, is required on POST /refresh: a GitHub
	// (X-Hub-Signature-256) or Gitea (X-Gitea-Signature) HMAC-SHA256 of the
	// body, a GitLab X-Gitlab-Token, or "Authorization: Bearer SECRET".
	WebhookSecret []byte
	MaxBody       int64
	ReadTimeout   time.Duration
	WriteTimeout  time.Duration
	IdleTimeout   time.Duration
	MaxConcurrent int
}

func (c APIConfig) withDefaults() APIConfig {
	orDefault(&c.MaxBody, DefaultMaxBody)
	orDefault(&c.ReadTimeout, DefaultReadTimeout)
	orDefault(&c.WriteTimeout, DefaultWriteTimeout)
	orDefault(&c.IdleTimeout, DefaultIdleTimeout)
	orDefault(&c.MaxConcurrent, DefaultMaxConcurrent)
	return c
}

// Handler returns the agent's HTTP API: GET /status, GET /balancers/{name}
// (balancers.go), GET /rules (rules.go), GET /healthz, POST /refresh, GET
// /metrics, and GET /keys with POST /keys/{op} (keys.go),
// behind the concurrency limit and the body cap. Every check that can
// refuse a request runs before its body is read.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /status", a.requireToken(http.HandlerFunc(a.handleStatus)))
	mux.Handle("GET /balancers/{name}", a.requireToken(http.HandlerFunc(a.handleBalancer)))
	mux.Handle("GET /rules", a.requireToken(http.HandlerFunc(a.handleRules)))
	mux.HandleFunc("GET /healthz", a.handleHealthz)
	mux.HandleFunc("POST /refresh", a.handleRefresh)
	mux.Handle("GET /keys", a.requireToken(http.HandlerFunc(a.handleKeys)))
	mux.Handle("POST /keys/{op}", a.requireToken(http.HandlerFunc(a.handleKeyOp)))
	metrics := promhttp.HandlerFor(a.metrics.registry, promhttp.HandlerOpts{Registry: a.metrics.registry})
	mux.Handle("GET /metrics", a.requireToken(metrics))
	return a.limit(a.capBody(mux))
}

// Serve serves the API on ln until ctx ends, then shuts the server down.
func (a *Agent) Serve(ctx context.Context, ln net.Listener) error {
	c := a.cfg.API
	srv := &http.Server{
		Handler:           a.Handler(),
		ReadHeaderTimeout: min(10*time.Second, c.ReadTimeout),
		ReadTimeout:       c.ReadTimeout,
		WriteTimeout:      c.WriteTimeout,
		IdleTimeout:       c.IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
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
		srv.Close()
	}
	<-done
	return nil
}

// handleStatus writes Status: the cluster status about this agent's applied
// revision, plus node, latest, settled, error and health.
func (a *Agent) handleStatus(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(a.Status())
}

// handleRefresh queues a fetch once the webhook secret, if any, is proven
// (see webhookAuthorized).
func (a *Agent) handleRefresh(w http.ResponseWriter, r *http.Request) {
	if len(a.cfg.API.WebhookSecret) > 0 {
		ok, err := webhookAuthorized(a.cfg.API.WebhookSecret, r)
		if err != nil {
			a.refuse(w, r, err)
			return
		}
		if !ok {
			a.metrics.apiRefused.WithLabelValues("unauthorized").Inc()
			a.log.Warn("refused unauthenticated /refresh", "remote", r.RemoteAddr)
			http.Error(w, "missing or bad X-Hub-Signature-256, X-Gitea-Signature, X-Gitlab-Token or bearer token", http.StatusUnauthorized)
			return
		}
	}
	a.Refresh()
	w.WriteHeader(http.StatusAccepted)
	io.WriteString(w, "refresh queued\n")
}
