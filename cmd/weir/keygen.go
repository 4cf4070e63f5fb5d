package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"weir/cluster"
)

func (c *cli) newKeygenCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "keygen",
		Short: "print a new base64 gossip key",
		Long:  "Prints a new random base64 AES-256 gossip key: one line of a --gossip-key-file.",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			key, err := cluster.GenerateKey()
			if err != nil {
				return failed(exitUsage, err)
			}
			fmt.Fprintln(c.stdout, key)
			return nil
		},
	}
}
