package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// ensureTools installs iproute2, iptables and git with apt-get when missing
// on Debian.
func ensureTools(ctx context.Context, out io.Writer) error {
	need := map[string]string{"ip": "iproute2", "iptables": "iptables", "iptables-restore": "iptables", "git": "git"}
	var pkgs []string
	seen := map[string]bool{}
	for _, tool := range []string{"ip", "iptables", "iptables-restore", "git"} {
		if _, err := exec.LookPath(tool); err != nil && !seen[need[tool]] {
			seen[need[tool]] = true
			pkgs = append(pkgs, need[tool])
		}
	}
	if len(pkgs) == 0 {
		return nil
	}
	if _, err := os.Stat("/etc/debian_version"); err != nil {
		return fmt.Errorf("missing system packages %v: install them (not Debian, so the demo does not)", pkgs)
	}
	fmt.Fprintf(out, "installing %v with apt-get\n", pkgs)
	for _, args := range [][]string{{"update", "-qq"}, append([]string{"install", "-y", "-qq"}, pkgs...)} {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("apt-get %s: %w", strings.Join(args, " "), err)
		}
	}
	return nil
}
