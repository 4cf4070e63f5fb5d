// Package testsupport is what weir's tests share and the shipped binary
// never links: a stateful in-memory Netfilter (Fake) as strict as the
// kernel, network namespaces created and removed per test (Netns, on the
// AddNetns/DelNetns/NetnsCommand primitives e2e/lab builds on too), real
// iptables backends inside them (NewIPTables), spec builders, a golden-file
// helper with its -update flag, the one deadline-polling loop (Eventually,
// WaitFor) and CPU-time helpers for benchmarks.
package testsupport
