package main

import (
	"fmt"
	"os/exec"
	"strings"
)

// checkTools reports the commands the demo needs that are missing. It
// installs nothing: `make demo` runs scripts/setup-debian.sh first, the one
// script that installs what weir's tests and demo need.
func checkTools() error {
	var missing []string
	for _, tool := range []string{"ip", "iptables", "iptables-restore", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s: run scripts/setup-debian.sh as root (make demo does), or install iproute2, iptables and git", strings.Join(missing, ", "))
	}
	return nil
}
