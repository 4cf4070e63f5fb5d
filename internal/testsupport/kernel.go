package testsupport

import (
	"os/exec"
	"testing"

	"weir/reconcile/netfilter"
)

// NewIPTables returns the real Netfilter of the given backend
// (netfilter.BackendNFT or BackendLegacy) inside a fresh namespace, and the
// namespace. It skips t when not root, when the backend's binaries are not
// installed, or when the backend does not work here (the legacy one needs
// the ip_tables module).
func NewIPTables(t testing.TB, backend string) (*netfilter.IPTables, *Netns) {
	t.Helper()
	ns := NewNetns(t)
	if _, err := exec.LookPath("iptables-" + backend); err != nil {
		t.Skipf("iptables-%s not installed", backend)
	}
	if _, err := ns.Output("iptables-"+backend+"-save", "-t", "nat"); err != nil {
		t.Skipf("backend %s does not work here: %v", backend, err)
	}
	nf, err := netfilter.NewIPTables(netfilter.IPTablesOptions{Backend: backend, Netns: ns.Name})
	if err != nil {
		t.Fatalf("NewIPTables(%s): %v", backend, err)
	}
	if nf.Backend() != backend {
		t.Fatalf("Backend() = %q; want %q", nf.Backend(), backend)
	}
	return nf, ns
}
