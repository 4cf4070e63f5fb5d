package main

// Placeholders that later work replaces; each prints why it does nothing yet.

import (
	"context"
	"fmt"
	"io"
)

func notYet(name string) func(context.Context, []string, io.Writer, io.Writer) int {
	return func(_ context.Context, _ []string, _, stderr io.Writer) int {
		fmt.Fprintf(stderr, "weir %s: not implemented yet\n", name)
		return exitUsage
	}
}

var (
	runValidate = notYet("validate")
	runPlan     = notYet("plan")
	runAgent    = notYet("agent")
	runStatus   = notYet("status")
	runCleanup  = notYet("cleanup")
	runKeygen   = notYet("keygen")
)
