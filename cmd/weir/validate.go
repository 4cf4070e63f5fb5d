package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"weir/spec"
)

// validateResult is the -o json output of weir validate.
type validateResult struct {
	Valid     bool            `json:"valid"`
	Hosts     int             `json:"hosts"`
	Guests    int             `json:"guests"`
	Balancers int             `json:"balancers"`
	Errors    []validateError `json:"errors"`
}

type validateError struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Message string `json:"message"`
}

// validateOptions are the flags of `weir validate`.
type validateOptions struct {
	specs  string
	output *enum
}

func (c *cli) newValidateCmd() *cobra.Command {
	var o validateOptions
	cmd := &cobra.Command{
		Use:   "validate PATH",
		Short: "check a spec tree; print every error as FILE:LINE: message",
		Long: "Checks the spec tree under the directory PATH (or --specs). Exit 0 when valid, 1 when\n" +
			"not (every problem on stderr as FILE:LINE: message, or in the JSON), 2 on usage or I/O errors.",
		Example: "  weir validate examples/basic\n  weir validate -o json specs/ | jq .errors",
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := c.specDir(cmd, o.specs, args)
			if err != nil {
				return err
			}
			return c.validate(dir, o.output.value)
		},
	}
	cmd.Flags().StringVar(&o.specs, "specs", "", "directory of the spec tree (instead of PATH)")
	_ = cmd.MarkFlagDirname("specs")
	o.output = outputFlag(cmd, "text", "json")
	return cmd
}

// specDir is the spec directory of validate and plan: the one positional
// argument, or --specs (from the command line or WEIR_SPECS). A PATH on
// the command line wins over WEIR_SPECS; with --specs as well it is an
// error.
func (c *cli) specDir(cmd *cobra.Command, specs string, args []string) (string, error) {
	switch {
	case len(args) > 1:
		return "", usageErr("want exactly one PATH, got %d", len(args))
	case len(args) == 1 && c.onCommandLine(cmd, "specs"):
		return "", usageErr("give the spec directory once: PATH %q or --specs %q", args[0], specs)
	case len(args) == 1:
		return args[0], nil
	case specs == "":
		return "", usageErr("want exactly one PATH, got 0 (or --specs DIR)")
	}
	return specs, nil
}

// validate is `weir validate`: exit 0 when the spec tree at dir is valid, 1
// with every problem when it is not, 2 when dir cannot be read.
func (c *cli) validate(dir, output string) error {
	s, err := spec.LoadDir(dir)
	var list spec.ErrorList
	if err != nil && !errors.As(err, &list) {
		return failed(exitUsage, err)
	}
	res := validateResult{Valid: err == nil, Errors: []validateError{}}
	if s != nil {
		res.Hosts, res.Guests, res.Balancers = len(s.Hosts), len(s.Guests()), len(s.Balancers)
	}
	for _, e := range list {
		res.Errors = append(res.Errors, validateError{File: e.File, Line: e.Line, Message: e.Msg})
	}

	if output == "json" {
		if err := writeJSON(c.stdout, res); err != nil {
			return failed(exitUsage, err)
		}
	} else if res.Valid {
		fmt.Fprintf(c.stdout, "ok: %s, %s, %s\n",
			plural(res.Hosts, "host"), plural(res.Guests, "guest"), plural(res.Balancers, "balancer"))
	} else {
		for _, e := range list {
			fmt.Fprintln(c.stderr, e.Error())
		}
	}
	if !res.Valid {
		return exit(exitFail)
	}
	return nil
}

// writeJSON writes v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("writing JSON: %w", err)
	}
	return nil
}

// plural renders "1 host" or "3 hosts".
func plural(n int, noun string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
