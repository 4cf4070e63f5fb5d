package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStatusAPIToken: `weir status --api-token-file` sends the agent's API
// token; without it an agent that wants one answers 401, shown as such.
func TestStatusAPIToken(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t0ken" {
			http.Error(w, "missing or bad bearer token", http.StatusUnauthorized)
			return
		}
		_ = json.NewEncoder(w).Encode(agreeing(stRev))
	}))
	defer srv.Close()
	api := strings.TrimPrefix(srv.URL, "http://")
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("t0ken\n"), 0o600)

	if code, _, errOut := runCLI(t, runStatus, "--api", api); code != exitUsage || !strings.Contains(errOut, "401") {
		t.Errorf("weir status without the token = %d, %q; want 2 and the 401", code, errOut)
	}
	if code, out, errOut := runCLI(t, runStatus, "--api", api, "--api-token-file", tokenFile); code != exitOK || !strings.Contains(out, "converged") {
		t.Errorf("weir status --api-token-file = %d, %q, %q; want 0 and converged", code, out, errOut)
	}
}
