// Command weir sets up software load balancers from Git: it validates and plans
// spec trees, runs the per-host agent, and shows what the gossip cluster knows.
//
// main only wires: every subcommand is a function of (ctx, args, stdout, stderr)
// returning an exit code, so tests can run the CLI without a process.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// Exit codes shared by the subcommands.
const (
	exitOK    = 0
	exitFail  = 1 // the command ran and the answer is "no" (invalid specs, not converged)
	exitUsage = 2 // bad flags or arguments, or an I/O error before any answer
)

// command is one subcommand: it parses its own flags from args.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() map[string]command {
	return map[string]command{
		"validate": {"check a spec tree; print every error as FILE:LINE: message", runValidate},
		"plan":     {"print what a node would apply (iptables-restore text or JSON)", runPlan},
		"agent":    {"run the per-host daemon", runAgent},
		"status":   {"show the cluster as gossip tells it", runStatus},
		"cleanup":  {"remove every WEIR- chain and the jumps into them", runCleanup},
		"keygen":   {"print a new base64 gossip key", runKeygen},
		"keys":     {"list, install, use or remove gossip keys over the running cluster", runKeys},
		"version":  {"print the version", runVersion},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches args[0] to its subcommand and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr, cmds)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "weir: unknown command %q\n", args[0])
		usage(stderr, cmds)
		return exitUsage
	}
	return c.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: weir COMMAND [flags]")
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-9s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nEvery flag may also be given as WEIR_<FLAG> (upper case, - as _).")
}
