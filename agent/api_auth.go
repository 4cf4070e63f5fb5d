package agent

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
)

// requireToken serves next only to requests that carry the API token as
// "Authorization: Bearer TOKEN", when one is configured.
func (a *Agent) requireToken(next http.Handler) http.Handler {
	token := a.cfg.API.Token
	if len(token) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tok, ok := bearer(r.Header); ok && secretEqual(tok, token) {
			next.ServeHTTP(w, r)
			return
		}
		a.metrics.apiRefused.WithLabelValues("unauthorized").Inc()
		w.Header().Set("WWW-Authenticate", `Bearer realm="weir"`)
		http.Error(w, "missing or bad bearer token (see --api-token-file)", http.StatusUnauthorized)
	})
}

// webhookAuthorized checks a POST /refresh against secret, cheapest proof
// first: "Authorization: Bearer SECRET" or GitLab's X-Gitlab-Token need no
// body; GitHub's X-Hub-Signature-256 ("sha256=" + hex) and Gitea's
// X-Gitea-Signature (hex) are HMAC-SHA256 of the body, which is read (within
// the cap) only when such a header is present. The error is the body's
// read error.
func webhookAuthorized(secret []byte, r *http.Request) (bool, error) {
	h := r.Header
	if tok, ok := bearer(h); ok && secretEqual(tok, secret) {
		return true, nil
	}
	if tok := h.Get("X-Gitlab-Token"); tok != "" && secretEqual([]byte(tok), secret) {
		return true, nil
	}
	sig, ok := strings.CutPrefix(h.Get("X-Hub-Signature-256"), "sha256=")
	if !ok {
		sig = h.Get("X-Gitea-Signature")
	}
	want, err := hex.DecodeString(sig)
	if sig == "" || err != nil || len(want) != sha256.Size {
		return false, nil
	}
	mac := hmac.New(sha256.New, secret)
	if _, err := io.Copy(mac, r.Body); err != nil {
		return false, err
	}
	return hmac.Equal(want, mac.Sum(nil)), nil
}

// bearer returns the token of an "Authorization: Bearer" header.
func bearer(h http.Header) ([]byte, bool) {
	tok, ok := strings.CutPrefix(h.Get("Authorization"), "Bearer ")
	return []byte(strings.TrimSpace(tok)), ok
}

// secretEqual compares in constant time, also in length: both sides are
// hashed first.
func secretEqual(got, want []byte) bool {
	g, w := sha256.Sum256(got), sha256.Sum256(want)
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// ErrInsecureAPI is returned by CheckAPIAddr for a non-loopback address
// without a webhook secret and an API token.
var ErrInsecureAPI = errors.New("an --api address that is not loopback requires --webhook-secret-file and --api-token-file")

// CheckAPIAddr validates an --api address: HOST:PORT, where a host other than
// a loopback address (or "localhost") requires a webhook secret and an API
// token, because /refresh would otherwise let anyone on the network make
// every agent fetch, and /status and /metrics would show anyone the cluster.
func CheckAPIAddr(addr string, haveSecret, haveToken bool) error {
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
	if !haveSecret || !haveToken {
		return fmt.Errorf("--api %s: %w", addr, ErrInsecureAPI)
	}
	return nil
}

// ReadSecretFile reads what (a "webhook secret", an "API token") from the
// file name, without surrounding white space.
func ReadSecretFile(what, name string) ([]byte, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, fmt.Errorf("reading %s %s: file is empty", what, name)
	}
	return b, nil
}
