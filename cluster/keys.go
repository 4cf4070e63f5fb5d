package cluster

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"strings"
)

// Gossip keys and their rotation.
//
// A key file holds one base64 AES key per line (16, 24 or 32 bytes: AES-128,
// -192 or -256); blank lines and lines starting with # are ignored. The first
// key encrypts everything this node sends; every key in the file is tried when
// decrypting. A node whose keys share nothing with the cluster's cannot read
// or be read, so it never appears in anyone's members. Like an ssh private
// key, a key file that group or others may read or write is refused.
//
// Keys rotate over the running cluster with KeyOperation (`weir keys
// install`, `use`, `remove`; README.md): every host applies the operation
// to its keyring and persists the keyring in its state directory, which
// takes precedence over --gossip-key-file on the next start.

// ReadKeyFile reads and parses a key file, refusing one whose mode lets
// group or others read or write it, as ssh refuses an unprotected private
// key.
func ReadKeyFile(name string) ([][]byte, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return nil, fmt.Errorf("reading gossip key file: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("gossip key file %s has mode %#o: group or others may read or write it, so the key is not secret; run chmod 600 %s", name, perm, name)
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("reading gossip key file: %w", err)
	}
	keys, err := ParseKeys(data)
	if err != nil {
		return nil, fmt.Errorf("gossip key file %s: %w", name, err)
	}
	return keys, nil
}

// ParseKeys reads a key file: one base64 key per line, blank lines and
// #-comments ignored. It returns the keys in file order (the first is the
// encryption key) and rejects duplicates, bad base64 and bad lengths with the
// offending line number.
func ParseKeys(data []byte) ([][]byte, error) {
	var keys [][]byte
	seen := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		key, err := base64.StdEncoding.DecodeString(text)
		if err != nil {
			return nil, fmt.Errorf("key file line %d: not base64: %w", line, err)
		}
		if n := len(key); n != 16 && n != 24 && n != 32 {
			return nil, fmt.Errorf("key file line %d: key is %d bytes; want 16, 24 or 32", line, n)
		}
		if prev, ok := seen[string(key)]; ok {
			return nil, fmt.Errorf("key file line %d: same key as line %d", line, prev)
		}
		seen[string(key)] = line
		keys = append(keys, key)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading key file: %w", err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("key file holds no key")
	}
	return keys, nil
}

// GenerateKey returns a new random 32-byte (AES-256) gossip key in base64,
// the form a key file holds.
func GenerateKey() (string, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("generating gossip key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(key), nil
}
