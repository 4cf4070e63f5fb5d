package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// applyEnv fills every flag of cmd not given on the command line from the
// environment variable WEIR_<FLAG> (upper case, "-" as "_"), or, for a flag
// with a one-letter form, WEIR_<LETTER> (WEIR_O for -o), so that the command
// line always wins over the environment. --help and --version never come
// from the environment.
func (c *cli) applyEnv(cmd *cobra.Command) error {
	var errs []error
	fs := cmd.Flags()
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == "help" || f.Name == "version" {
			return
		}
		key, v, ok := c.envFor(f)
		if !ok {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("invalid value %q for %s: %w", v, key, err))
			return
		}
		c.fromEnv[f.Name] = true
	})
	if len(errs) > 0 {
		return &cmdError{code: exitUsage, usage: true, err: errors.Join(errs...)}
	}
	return nil
}

// envFor returns the environment variable that stands for f, and its value.
func (c *cli) envFor(f *pflag.Flag) (key, value string, ok bool) {
	keys := []string{envName(f.Name)}
	if f.Shorthand != "" {
		keys = append(keys, envName(f.Shorthand))
	}
	for _, k := range keys {
		if v, ok := c.lookupEnv(k); ok {
			return k, v, true
		}
	}
	return "", "", false
}

// onCommandLine reports whether the flag name was given on the command
// line (not through the environment).
func (c *cli) onCommandLine(cmd *cobra.Command, name string) bool {
	return cmd.Flags().Changed(name) && !c.fromEnv[name]
}

// envName maps a flag name to its environment variable: gossip-key-file → WEIR_GOSSIP_KEY_FILE.
func envName(flagName string) string {
	return "WEIR_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// enum is a flag value restricted to a few words, checked as it is parsed
// and offered by shell completion.
type enum struct {
	what    string // "output format", "dispatch"
	value   string
	allowed []string
}

// newEnum returns an output format flag value: def, one of allowed.
func newEnum(def string, allowed ...string) *enum {
	return &enum{what: "output format", value: def, allowed: allowed}
}

func (e *enum) String() string { return e.value }

// Set implements pflag.Value.
func (e *enum) Set(v string) error {
	if !slices.Contains(e.allowed, v) {
		return fmt.Errorf("unknown %s %q (want %s)", e.what, v, strings.Join(e.allowed, " or "))
	}
	e.value = v
	return nil
}

// Type implements pflag.Value.
func (e *enum) Type() string { return "string" }

// outputFlag declares -o/--output with the formats allowed (the first is
// the default).
func outputFlag(cmd *cobra.Command, formats ...string) *enum {
	e := newEnum(formats[0], formats...)
	cmd.Flags().VarP(e, "output", "o", "output format: "+strings.Join(formats, " or "))
	completeWords(cmd, "output", formats...)
	return e
}

// completeWords makes shell completion offer words for the flag name.
func completeWords(cmd *cobra.Command, name string, words ...string) {
	_ = cmd.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(words, cobra.ShellCompDirectiveNoFileComp))
}

// noFileArgs makes shell completion offer nothing for positional
// arguments.
func noFileArgs(cmd *cobra.Command) {
	cmd.ValidArgsFunction = cobra.NoFileCompletions
}

// noArgs refuses positional arguments with a usage error.
func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErr("unexpected arguments %q", args)
	}
	return nil
}
