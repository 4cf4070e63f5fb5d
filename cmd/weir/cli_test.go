package main

import (
	"context"
	"io"
)

// The subcommands as functions of their own arguments, so a table of
// arguments reads as the command line after `weir NAME`.

func runSub(name string) func(context.Context, []string, io.Writer, io.Writer) int {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		return run(ctx, append([]string{name}, args...), stdout, stderr)
	}
}

var (
	runAgent   = runSub("agent")
	runPlan    = runSub("plan")
	runStatus  = runSub("status")
	runCleanup = runSub("cleanup")
	runKeygen  = runSub("keygen")
	runKeys    = runSub("keys")
	runDiff    = runSub("diff")
)
