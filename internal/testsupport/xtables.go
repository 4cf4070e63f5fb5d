package testsupport

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// HoldXtablesLock points the legacy iptables binaries at a lock file of the
// test's own (XTABLES_LOCKFILE, so other tests and the host's firewall are
// not blocked) and holds it, as another program applying rules would. The
// lock is released by the returned function or when the test ends. The
// environment variable makes t unfit for t.Parallel.
func HoldXtablesLock(t testing.TB) (release func()) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "xtables.lock")
	t.Setenv("XTABLES_LOCKFILE", path)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	release = func() { f.Close() }
	t.Cleanup(release)
	return release
}
