// Command weir sets up software load balancers from Git: it validates and plans
// spec trees, runs the per-host agent, and shows what the gossip cluster knows.
//
// main only wires: run builds the command tree (spf13/cobra, as kubectl, flux
// and argocd do) for one invocation and returns the exit code, so tests run
// the CLI without a process.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
