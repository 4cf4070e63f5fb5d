package cluster

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ErrNotEncrypted is returned by key operations on a node whose gossip is
// not encrypted (--insecure-gossip): it has no keyring to change.
var ErrNotEncrypted = errors.New("gossip is not encrypted (--insecure-gossip): there is no keyring")

// Fingerprint names a key without revealing it: "sha256:" and the first 8
// bytes of its SHA-256 in hex. Status and `weir keys list` show only these.
func Fingerprint(key []byte) string { return formatFingerprint(fingerprintOf(key)) }

func fingerprintOf(key []byte) [fingerprintLen]byte {
	sum := sha256.Sum256(key)
	var fp [fingerprintLen]byte
	copy(fp[:], sum[:])
	return fp
}

func formatFingerprint(fp [fingerprintLen]byte) string { return "sha256:" + hex.EncodeToString(fp[:]) }

// applyKeyOp applies a key operation to this node's keyring and, when it
// changed the keyring, persists it to KeyringFile. It returns the keys held
// afterwards (on error too, for the reply).
func (c *Cluster) applyKeyOp(op byte, key []byte) ([]heldKey, error) {
	if c.keyring == nil {
		return nil, ErrNotEncrypted
	}
	c.keyMu.Lock()
	defer c.keyMu.Unlock()
	before := c.keyring.GetKeys()
	var err error
	switch op {
	case opInstall:
		err = c.keyring.AddKey(key)
	case opUse:
		err = c.keyring.UseKey(key)
	case opRemove:
		err = c.keyring.RemoveKey(key)
	}
	after := c.keyring.GetKeys()
	if err == nil && !sameKeys(before, after) {
		err = c.persistKeyring(after)
		c.log.Info("gossip keyring changed", "op", opName(op), "key", Fingerprint(key), "keys", len(after), "persisted", c.cfg.KeyringFile)
	}
	return heldKeys(after), err
}

// heldKeys lists keys by fingerprint; memberlist keeps the primary first.
func heldKeys(keys [][]byte) []heldKey {
	out := make([]heldKey, len(keys))
	for i, k := range keys {
		out[i] = heldKey{Fingerprint: fingerprintOf(k), Primary: i == 0}
	}
	return out
}

func sameKeys(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// persistKeyring writes keys (primary first) to KeyringFile as a key file,
// mode 0600, atomically: a new file synced and renamed over the old.
func (c *Cluster) persistKeyring(keys [][]byte) error {
	if c.cfg.KeyringFile == "" {
		return nil
	}
	var b strings.Builder
	b.WriteString("# weir gossip keyring: the first key encrypts, all decrypt. Written by key operations (weir keys).\n")
	for _, k := range keys {
		b.WriteString(base64.StdEncoding.EncodeToString(k) + "\n")
	}
	if err := writeFileAtomic(c.cfg.KeyringFile, []byte(b.String())); err != nil {
		return fmt.Errorf("persisting the gossip keyring: %w", err)
	}
	return nil
}

// writeFileAtomic replaces name with data, mode 0600, creating its directory
// (0700) if needed.
func writeFileAtomic(name string, data []byte) error {
	dir := filepath.Dir(name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(name)+".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), name)
	}
	if err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func opName(op byte) string {
	switch op {
	case opInstall:
		return string(KeyInstall)
	case opUse:
		return string(KeyUse)
	case opRemove:
		return string(KeyRemove)
	}
	return string(KeyList)
}
