package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes shared by the subcommands (README.md, "Exit codes").
const (
	exitOK    = 0
	exitFail  = 1 // the command ran and the answer is "no" (invalid specs, not converged, rules differ)
	exitUsage = 2 // bad flags or arguments, or an error before any answer (no agent, unreadable file)
)

// exitCode ends a subcommand that has already said everything it had to
// say with this exit code.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// exit is what RunE returns for an exit code: nil for exitOK.
func exit(code int) error {
	if code == exitOK {
		return nil
	}
	return exitCode(code)
}

// cmdError ends a subcommand with an error that run prints (as
// "weir NAME: message", and as {"error": "message"} on stdout when the
// command was asked for JSON) before exiting with code. usage adds a
// pointer to --help.
type cmdError struct {
	code  int
	usage bool
	err   error
}

func (e *cmdError) Error() string { return e.err.Error() }
func (e *cmdError) Unwrap() error { return e.err }

// usageErr is a bad command line: exit 2 with a pointer to --help.
func usageErr(format string, a ...any) error {
	return &cmdError{code: exitUsage, usage: true, err: fmt.Errorf(format, a...)}
}

// failed is an error that ends the command with code.
func failed(code int, err error) error { return &cmdError{code: code, err: err} }

// cli is one invocation's surroundings, shared by every subcommand.
type cli struct {
	ctx            context.Context
	stdout, stderr io.Writer
	lookupEnv      func(string) (string, bool)
	// fromEnv names the flags that took their value from WEIR_*, so a
	// command can tell them from flags given on the command line.
	fromEnv map[string]bool
}

// run executes the command line args and returns the process exit code:
// 0 for help and success, 2 for usage errors, else the subcommand's code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := &cli{ctx: ctx, stdout: stdout, stderr: stderr, lookupEnv: os.LookupEnv, fromEnv: map[string]bool{}}
	root := c.newRoot()
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if err == nil {
		return exitOK
	}
	var code exitCode
	if errors.As(err, &code) {
		return int(code)
	}
	var ce *cmdError
	if !errors.As(err, &ce) {
		ce = &cmdError{code: exitUsage, usage: true, err: err} // cobra's own: unknown command or flag
	}
	c.report(cmd, ce)
	return ce.code
}

// newRoot builds the command tree.
func (c *cli) newRoot() *cobra.Command {
	var showVersion bool
	root := &cobra.Command{
		Use:   "weir",
		Short: "software load balancers from Git, programmed into iptables by a gossiping agent per host",
		Long: "weir sets up software load balancers from Git: every server runs `weir agent`, which\n" +
			"programs its share of the balancers into iptables. See README.md.\n\n" + envHelp,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if showVersion {
				return c.version(cmd, versionOptions{output: newEnum("text", "text", "json")})
			}
			cmd.SetOut(c.stderr)
			_ = cmd.Usage()
			return exit(exitUsage)
		},
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error { return c.applyEnv(cmd) },
	}
	root.SetOut(c.stdout)
	root.SetErr(c.stderr)
	root.SetContext(c.ctx)
	root.Flags().BoolVar(&showVersion, "version", false, "print the version (as `weir version`)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &cmdError{code: exitUsage, usage: true, err: err}
	})
	root.AddCommand(c.newValidateCmd(), c.newPlanCmd(), c.newAgentCmd(), c.newStatusCmd(),
		c.newDiffCmd(), c.newCleanupCmd(), c.newKeygenCmd(), c.newKeysCmd(), c.newVersionCmd(),
		c.newManCmd())
	root.InitDefaultCompletionCmd()
	for _, cmd := range root.Commands() {
		if cmd.Name() == "completion" { // cobra's own would print its help for any other word
			cmd.RunE = func(_ *cobra.Command, args []string) error {
				if len(args) > 0 {
					return usageErr("unknown shell %q (want bash, zsh, fish or powershell)", args[0])
				}
				return usageErr("name a shell: bash, zsh, fish or powershell")
			}
		}
	}
	return root
}

// envHelp says how the environment stands for flags; every command's help
// repeats it.
const envHelp = "Every flag may also be given as the environment variable WEIR_<FLAG> (upper case,\n" +
	"\"-\" as \"_\", e.g. WEIR_GOSSIP_KEY_FILE; WEIR_O for -o); a flag on the command line wins."

// report prints what ended cmd: the message on stderr, a pointer to --help
// for usage errors, and the JSON error object on stdout when cmd was asked
// for JSON, so a pipe into jq always gets JSON.
func (c *cli) report(cmd *cobra.Command, e *cmdError) {
	name := "weir"
	if cmd != nil {
		name = cmd.CommandPath()
	}
	msg := strings.TrimSpace(e.err.Error())
	fmt.Fprintf(c.stderr, "%s: %s\n", name, strings.ReplaceAll(msg, "\n", "\n"+name+": "))
	if e.usage {
		fmt.Fprintf(c.stderr, "Run '%s --help' for usage.\n", name)
	}
	if cmd != nil && wantsJSON(cmd) {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(map[string]string{"error": msg})
	}
}

// wantsJSON reports whether cmd's -o/--output asks for JSON.
func wantsJSON(cmd *cobra.Command) bool {
	f := cmd.Flags().Lookup("output")
	return f != nil && f.Value.String() == "json"
}
