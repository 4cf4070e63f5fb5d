package agent

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"weir/cluster"
)

// maxKeysBody bounds a POST /keys/… body: {"key": "<base64 of 32 bytes>"}.
const maxKeysBody = 4 << 10

// keyRequest is the body of POST /keys/install, /keys/use and /keys/remove.
type keyRequest struct {
	Key string `json:"key"` // base64, as `weir keygen` prints it
}

// handleKeys serves GET /keys: every member's gossip keys by fingerprint.
func (a *Agent) handleKeys(w http.ResponseWriter, r *http.Request) {
	if !a.keysAllowed(w, r) {
		return
	}
	a.runKeyOp(w, r, cluster.KeyList, nil)
}

// handleKeyOp serves POST /keys/{op} for install, use and remove.
func (a *Agent) handleKeyOp(w http.ResponseWriter, r *http.Request) {
	if !a.keysAllowed(w, r) {
		return
	}
	op := cluster.KeyOp(r.PathValue("op"))
	if op != cluster.KeyInstall && op != cluster.KeyUse && op != cluster.KeyRemove {
		http.Error(w, fmt.Sprintf("unknown key operation %q: want install, use or remove", op), http.StatusNotFound)
		return
	}
	key, err := readKey(w, r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	a.runKeyOp(w, r, op, key)
}

// keysAllowed admits key operations from loopback clients only, before any
// body is read: whoever may change the keyring may let anyone into the
// cluster.
func (a *Agent) keysAllowed(w http.ResponseWriter, r *http.Request) bool {
	if a.deps.Keys == nil {
		http.Error(w, "this agent does not manage gossip keys", http.StatusNotImplemented)
		return false
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	ip, perr := netip.ParseAddr(host)
	if err != nil || perr != nil || !ip.Unmap().IsLoopback() {
		a.log.Warn("refused a key operation from a remote client", "remote", r.RemoteAddr)
		http.Error(w, "key operations are served to loopback clients only: run `weir keys` on the host", http.StatusForbidden)
		return false
	}
	return true
}

// readKey reads the key of a POST /keys/… body, at most maxKeysBody bytes.
func readKey(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxKeysBody))
	if err != nil {
		return nil, fmt.Errorf("reading body: %w", err)
	}
	var req keyRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf(`body: want {"key": "<base64>"}: %w`, err)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(req.Key))
	if err != nil {
		return nil, fmt.Errorf("key: not base64: %w", err)
	}
	return key, nil
}

// runKeyOp runs op over the cluster and writes its report: 200 when it ran
// (members that failed are in the report), 409 when it was refused.
func (a *Agent) runKeyOp(w http.ResponseWriter, r *http.Request, op cluster.KeyOp, key []byte) {
	rep, err := a.deps.Keys.KeyOperation(r.Context(), op, key)
	if err != nil {
		code := http.StatusConflict
		if errors.Is(err, cluster.ErrNotEncrypted) {
			code = http.StatusNotImplemented
		}
		http.Error(w, err.Error(), code)
		return
	}
	if op != cluster.KeyList {
		a.log.Info("gossip key operation", "op", op, "key", rep.Key, "members", len(rep.Members), "failed", rep.Failed())
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(rep)
}
