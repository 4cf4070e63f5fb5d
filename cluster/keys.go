package cluster

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
)

// Gossip keys and their rotation.
//
// A key file holds one base64 AES key per line (16, 24 or 32 bytes: AES-128,
// -192 or -256); blank lines and lines starting with # are ignored. The first
// key encrypts everything this node sends; every key in the file is tried when
// decrypting. A node whose keys share nothing with the cluster's cannot read
// or be read, so it never appears in anyone's members.
//
// Rotating to a new key without a partition:
//
//  1. Generate it with `weir keygen` and APPEND it to every node's key file;
//     restart (or reload) each agent. Every node now accepts both keys but
//     still encrypts with the old one.
//  2. Once every node has the new key, move it to the FIRST line of every
//     file and restart each agent. Nodes now encrypt with the new key; nodes
//     not yet restarted still accept it because of step 1.
//  3. Once every node encrypts with the new key, delete the old line from
//     every file and restart each agent.
//
// Skipping step 1 on any node cuts that node off until it gets the key.

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
