package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"weir/cluster"
)

// keyringFile is where key operations persist the agent's gossip keyring.
func keyringFile(stateDir string) string { return filepath.Join(stateDir, "keyring") }

// gossipKeys returns the keys the agent gossips with: nil with
// --insecure-gossip; else the keyring that key operations (`weir keys`)
// persisted under --state-dir, which takes precedence over
// --gossip-key-file as Consul's persisted keyring does, so a restart keeps
// a rotation; else the key file. Either file is refused when group or
// others may read or write it.
func gossipKeys(o agentOptions, log *slog.Logger) ([][]byte, error) {
	if o.insecureGossip {
		log.Warn("gossip is not encrypted (--insecure-gossip): anyone who reaches the gossip port can forge membership and steer traffic")
		return nil, nil
	}
	ring := keyringFile(o.stateDir)
	if _, err := os.Stat(ring); errors.Is(err, fs.ErrNotExist) {
		keys, err := cluster.ReadKeyFile(o.gossipKeyFile)
		if err == nil {
			log.Info("gossip keys from --gossip-key-file", "file", o.gossipKeyFile, "keys", len(keys), "primary", cluster.Fingerprint(keys[0]))
		}
		return keys, err
	}
	keys, err := cluster.ReadKeyFile(ring)
	if err != nil {
		return nil, fmt.Errorf("the gossip keyring persisted by key operations: %w (remove it to start from --gossip-key-file)", err)
	}
	log.Info("gossip keys from the keyring persisted by key operations; it takes precedence over --gossip-key-file",
		"file", ring, "keys", len(keys), "primary", cluster.Fingerprint(keys[0]))
	return keys, nil
}
