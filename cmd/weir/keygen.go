package main

import (
	"context"
	"fmt"
	"io"

	"weir/cluster"
)

// runKeygen prints a new random 32-byte gossip key in base64: one line of a
// --gossip-key-file.
func runKeygen(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("keygen", stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: weir keygen\n\nPrints a new base64 AES-256 gossip key for --gossip-key-file.")
	}
	if err := parseFlags(fs, args); err != nil {
		return exitUsage
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "weir keygen: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	key, err := cluster.GenerateKey()
	if err != nil {
		fmt.Fprintf(stderr, "weir keygen: %v\n", err)
		return exitUsage
	}
	fmt.Fprintln(stdout, key)
	return exitOK
}
