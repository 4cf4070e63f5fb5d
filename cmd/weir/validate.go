package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"

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

// runValidate implements `weir validate PATH [-o text|json]`: exit 0 when the
// spec tree at PATH is valid, 1 with every problem when it is not, 2 when PATH
// cannot be read or the command line is wrong.
func runValidate(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("validate", stderr)
	output := fs.String("o", "text", "output format: text or json")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: weir validate PATH [-o text|json]")
		fmt.Fprintln(stderr, "\nChecks the spec tree under the directory PATH. Exit 0 when valid, 1 when not")
		fmt.Fprintln(stderr, "(every problem on stderr as FILE:LINE: message), 2 on usage or I/O errors.")
		fs.PrintDefaults()
	}
	paths, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		return exitUsage
	}
	if len(paths) != 1 {
		fmt.Fprintf(stderr, "weir validate: want exactly one PATH, got %d\n", len(paths))
		fs.Usage()
		return exitUsage
	}
	if *output != "text" && *output != "json" {
		fmt.Fprintf(stderr, "weir validate: unknown output format %q (want text or json)\n", *output)
		return exitUsage
	}

	s, err := spec.LoadDir(paths[0])
	var list spec.ErrorList
	if err != nil && !errors.As(err, &list) {
		fmt.Fprintf(stderr, "weir validate: %v\n", err)
		return exitUsage
	}
	res := validateResult{Valid: err == nil, Errors: []validateError{}}
	if s != nil {
		res.Hosts, res.Guests, res.Balancers = len(s.Hosts), len(s.Guests()), len(s.Balancers)
	}
	for _, e := range list {
		res.Errors = append(res.Errors, validateError{File: e.File, Line: e.Line, Message: e.Msg})
	}

	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			fmt.Fprintf(stderr, "weir validate: %v\n", err)
			return exitUsage
		}
	} else if res.Valid {
		fmt.Fprintf(stdout, "ok: %s, %s, %s\n",
			plural(res.Hosts, "host"), plural(res.Guests, "guest"), plural(res.Balancers, "balancer"))
	} else {
		for _, e := range list {
			fmt.Fprintln(stderr, e.Error())
		}
	}
	if !res.Valid {
		return exitFail
	}
	return exitOK
}

// parseInterspersed parses flags that may come before, between or after the
// positional arguments (`weir validate DIR -o json`), which flag.Parse alone
// stops at, and returns the positional arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// plural renders "1 host" or "3 hosts".
func plural(n int, noun string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
