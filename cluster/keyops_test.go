package cluster

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// keyedTrio starts host-a, host-b and host-c with keys, each persisting its
// keyring under dir.
func keyedTrio(t *testing.T, dir string, keys ...[]byte) []*Cluster {
	t.Helper()
	var nodes []*Cluster
	for _, name := range []string{"host-a", "host-b", "host-c"} {
		var join []string
		if len(nodes) > 0 {
			join = []string{nodes[0].LocalAddr()}
		}
		cfg := testConfig(name, join...)
		cfg.Keys, cfg.KeyringFile = keys, filepath.Join(dir, name, "keyring")
		nodes = append(nodes, start(t, cfg))
	}
	for _, n := range nodes {
		eventually(t, 5*time.Second, n.cfg.Node+" sees all three", hostsAre(n, "host-a", "host-b", "host-c"))
	}
	return nodes
}

func keyOp(t *testing.T, c *Cluster, op KeyOp, key []byte) KeyReport {
	t.Helper()
	rep, err := c.KeyOperation(context.Background(), op, key)
	if err != nil {
		t.Fatalf("%s %s: %v", op, Fingerprint(key), err)
	}
	if rep.Failed() > 0 || len(rep.Members) != 3 {
		t.Fatalf("%s %s: %+v; want three members, all ok", op, Fingerprint(key), rep.Members)
	}
	return rep
}

// holdings renders a list report as "fingerprint members/primary" lines.
func holdings(rep KeyReport) string {
	var b strings.Builder
	for _, k := range rep.Keys {
		b.WriteString(k.Fingerprint + " " + string(rune('0'+k.Members)) + "/" + string(rune('0'+k.Primary)) + ";")
	}
	return b.String()
}

func TestKeyRotation(t *testing.T) {
	k1, k2 := key(1), key(2)
	fp1, fp2 := Fingerprint(k1), Fingerprint(k2)
	dir := t.TempDir()
	nodes := keyedTrio(t, dir, k1)
	a := nodes[1] // any member may start an operation

	if got, want := holdings(keyOp(t, a, KeyList, nil)), fp1+" 3/3;"; got != want {
		t.Errorf("list = %s; want %s", got, want)
	}
	if _, err := a.KeyOperation(context.Background(), KeyUse, k2); err == nil || !strings.Contains(err.Error(), "lack it") {
		t.Errorf("use of a key nobody holds: %v; want refused", err)
	}
	keyOp(t, a, KeyInstall, k2)
	if got, want := holdings(keyOp(t, a, KeyList, nil)), fp1+" 3/3;"+fp2+" 3/0;"; got != want {
		t.Errorf("list after install = %s; want %s", got, want)
	}
	if _, err := a.KeyOperation(context.Background(), KeyRemove, k1); err == nil || !strings.Contains(err.Error(), "primary key on host-a, host-b, host-c") {
		t.Errorf("remove of the primary key: %v; want refused", err)
	}
	keyOp(t, a, KeyUse, k2)
	keyOp(t, a, KeyRemove, k1)
	if got, want := holdings(keyOp(t, a, KeyList, nil)), fp2+" 3/3;"; got != want {
		t.Errorf("list after rotation = %s; want %s", got, want)
	}
	for _, n := range nodes {
		checkPersisted(t, n.cfg.KeyringFile, k2)
	}

	// Still one cluster: a state change travels under the new key …
	if err := nodes[0].SetLocal(NodeState{Revision: "abcd"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "host-c sees host-a's new state", func() (bool, string) {
		m := nodes[2].Members()[0]
		return m.Revision == "abcd", m.Revision
	})
	// … and a node with only the old key is kept out.
	old := testConfig("host-old", nodes[0].LocalAddr())
	old.Keys = [][]byte{k1}
	start(t, old)
	neverSees(t, 1500*time.Millisecond, nodes, "host-old")
}

func checkPersisted(t *testing.T, name string, want ...[]byte) {
	t.Helper()
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatalf("persisted keyring: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v; want 0600", name, fi.Mode().Perm())
	}
	keys, err := ReadKeyFile(name)
	if err != nil || len(keys) != len(want) {
		t.Fatalf("ReadKeyFile(%s) = %d keys, %v; want %d", name, len(keys), err, len(want))
	}
	for i := range want {
		if Fingerprint(keys[i]) != Fingerprint(want[i]) {
			t.Errorf("%s key %d = %s; want %s", name, i, Fingerprint(keys[i]), Fingerprint(want[i]))
		}
	}
}

func TestKeyOperationRefusals(t *testing.T) {
	plain := start(t, testConfig("host-a"))
	if _, err := plain.KeyOperation(context.Background(), KeyList, nil); !errors.Is(err, ErrNotEncrypted) {
		t.Errorf("list without encryption: %v; want ErrNotEncrypted", err)
	}
	cfg := testConfig("host-b")
	cfg.Keys = [][]byte{key(1)}
	keyed := start(t, cfg)
	for _, tt := range []struct {
		op  KeyOp
		key []byte
	}{{"rotate", key(2)}, {KeyInstall, []byte("short")}, {KeyUse, nil}} {
		if _, err := keyed.KeyOperation(context.Background(), tt.op, tt.key); err == nil {
			t.Errorf("KeyOperation(%s, %d bytes) = nil error", tt.op, len(tt.key))
		}
	}
	// A lone node answers for itself.
	rep, err := keyed.KeyOperation(context.Background(), KeyInstall, key(2))
	if err != nil || rep.Failed() != 0 || len(rep.Members) != 1 {
		t.Errorf("install on a lone node = %+v, %v", rep, err)
	}
}

func TestReadKeyFile(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "key")
	k, _ := GenerateKey()
	for _, tt := range []struct {
		mode    os.FileMode
		wantErr string
	}{
		{0o600, ""}, {0o400, ""},
		{0o644, "has mode 0644: group or others may read or write it"},
		{0o620, "chmod 600 " + name},
		{0o606, "has mode 0606"},
	} {
		if err := os.WriteFile(name, []byte(k+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chmod(name, tt.mode)
		_, err := ReadKeyFile(name)
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("ReadKeyFile(mode %#o) = %v; want %q", tt.mode, err, tt.wantErr)
		}
		os.Remove(name)
	}
}
