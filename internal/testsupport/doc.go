// Package testsupport is what weir's tests share and the shipped binary
// never links: a stateful in-memory Netfilter (Fake) as strict as the
// kernel, network namespaces created and removed per test (Netns), real
// iptables backends inside them (NewIPTables), spec builders, a golden-file
// helper with its -update flag, and CPU-time helpers for benchmarks.
package testsupport
