package agent

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPrepareStateDir(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	root := t.TempDir()

	fresh := filepath.Join(root, "var", "lib", "weir", "host-a")
	if err := PrepareStateDir(fresh, log); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(fresh); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("a new state directory: %v, %v; want mode 0700", fi.Mode(), err)
	}

	loose := filepath.Join(root, "loose")
	os.Mkdir(loose, 0o755)
	os.Chmod(loose, 0o755)
	if err := PrepareStateDir(loose, log); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(loose); fi.Mode().Perm() != 0o700 {
		t.Errorf("an existing 0755 state directory is left %v; want it tightened to 0700", fi.Mode().Perm())
	}
	if !strings.Contains(logs.String(), "tightened") {
		t.Errorf("no warning about the tightened directory in %q", logs.String())
	}

	file := filepath.Join(root, "file")
	os.WriteFile(file, nil, 0o600)
	if err := PrepareStateDir(file, log); err == nil {
		t.Errorf("PrepareStateDir(a regular file) = nil; want an error")
	}
}
