package main

import (
	"io/fs"
	"testing"

	"weir/examples"
)

// basicHosts returns examples/basic/hosts.yaml: three hosts, web-1 on host-a
// running frontend, orders-1 and orders-2 on host-b and host-c running orders.
func basicHosts(t *testing.T) string {
	t.Helper()
	b, err := fs.ReadFile(examples.FS, "basic/hosts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
