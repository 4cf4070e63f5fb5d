package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"weir/e2e/lab"
)

// Timings of the lab agents: short, so the suite is quick, and waits generous,
// so a loaded 2-core machine does not flake.
const (
	poll    = 2 * time.Second
	resync  = 3 * time.Second
	waitFor = 60 * time.Second
)

// weirBin is the binary under test, set by TestMain.
var weirBin string

func TestMain(m *testing.M) {
	lab.MainSetup()
	code, err := setupAndRun(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(2)
	}
	os.Exit(code)
}

// setupAndRun finds or builds the weir binary (lab.WeirBinary; make test
// builds bin/weir first), then runs the tests.
func setupAndRun(m *testing.M) (int, error) {
	if os.Geteuid() != 0 {
		return m.Run(), nil // every test skips with the reason
	}
	dir, err := os.MkdirTemp("", "weir-e2e-bin-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	if weirBin, err = lab.WeirBinary(context.Background(), "..", filepath.Join(dir, "weir")); err != nil {
		return 0, err
	}
	return m.Run(), nil
}
