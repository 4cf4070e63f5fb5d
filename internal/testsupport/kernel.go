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
	return NewIPTablesWith(t, netfilter.IPTablesOptions{Backend: backend})
}

// NewIPTablesWith is NewIPTables with further options (family, lock wait,
// command timeout); opts.Backend must name a backend, and opts.Netns is set
// to the fresh namespace. With opts.Family IPv6 it is ip6tables.
func NewIPTablesWith(t testing.TB, opts netfilter.IPTablesOptions) (*netfilter.IPTables, *Netns) {
	t.Helper()
	backend, cmd := opts.Backend, netfilter.Command(opts.Family)
	ns := NewNetns(t)
	if _, err := exec.LookPath(cmd + "-" + backend); err != nil {
		t.Skipf("%s-%s not installed", cmd, backend)
	}
	if _, err := ns.Output(cmd+"-"+backend+"-save", "-t", "nat"); err != nil {
		t.Skipf("%s backend %s does not work here: %v", cmd, backend, err)
	}
	opts.Netns = ns.Name
	nf, err := netfilter.NewIPTables(opts)
	if err != nil {
		t.Fatalf("NewIPTables(%s): %v", backend, err)
	}
	if nf.Backend() != backend {
		t.Fatalf("Backend() = %q; want %q", nf.Backend(), backend)
	}
	return nf, ns
}
