package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// newManCmd is the hidden `weir man DIR` that `make man` and `make package`
// run: one man page per command, weir(1) and weir-COMMAND(1). The pages
// are dated SOURCE_DATE_EPOCH when it is set (the Makefile sets it to the
// commit's time), so two builds of one commit give the same pages.
func (c *cli) newManCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "man DIR",
		Short:  "write the man pages into DIR",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return failed(exitUsage, err)
			}
			root := cmd.Root()
			root.DisableAutoGenTag = true
			header := &doc.GenManHeader{Title: "WEIR", Section: "1", Source: "weir " + buildVersion().Version, Manual: "weir manual"}
			if err := doc.GenManTree(root, header, args[0]); err != nil {
				return failed(exitUsage, fmt.Errorf("writing man pages: %w", err))
			}
			return nil
		},
	}
}
