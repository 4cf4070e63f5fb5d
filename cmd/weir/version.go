package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"weir/agent"
	"weir/reconcile/netfilter"
	"weir/spec"
)

// version and commit say what the binary was built from, stamped by `make
// build` as -ldflags "-X main.version=$(git describe --tags --always
// --dirty) -X main.commit=$(git rev-parse HEAD)". Both are empty in a plain
// `go build`, where the go command's VCS stamping (the build info) names
// the commit; it also does under make, except in a git worktree, which the
// go command does not recognize.
var version, commit string

// versionOptions are the flags of `weir version`.
type versionOptions struct {
	output *enum
}

// versionInfo is what `weir version -o json` prints.
type versionInfo struct {
	Version    string `json:"version"`    // tag or `git describe`; "devel" when unknown
	Commit     string `json:"commit"`     // full commit hash; "" when unknown
	Modified   bool   `json:"modified"`   // built from a tree with uncommitted changes
	GoVersion  string `json:"goVersion"`  // the Go release that compiled it
	Netfilter  string `json:"netfilter"`  // this host's iptables backend: nft, legacy or unknown
	Netfilter6 string `json:"netfilter6"` // its ip6tables backend, likewise
}

func (c *cli) newVersionCmd() *cobra.Command {
	var o versionOptions
	cmd := &cobra.Command{
		Use:   "version",
		Short: "print the version, commit, Go version and netfilter backend",
		Long: "Prints the release or commit the binary was built from, the Go version that built it\n" +
			"and the iptables backend of this host (unknown when iptables is missing; ip6tables'\n" +
			"is named too when it differs). Also\n" +
			"`weir --version`.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return c.version(cmd, o) },
	}
	o.output = outputFlag(cmd, "text", "json")
	return cmd
}

// version prints the version information.
func (c *cli) version(_ *cobra.Command, o versionOptions) error {
	v := buildVersion()
	v.Netfilter, v.Netfilter6 = netfilterBackend(spec.IPv4), netfilterBackend(spec.IPv6)
	if o.output.value == "json" {
		if err := writeJSON(c.stdout, v); err != nil {
			return failed(exitUsage, err)
		}
		return nil
	}
	commit := v.Commit
	if commit == "" {
		commit = "unknown"
	} else if v.Modified {
		commit += " (modified)"
	}
	backends := v.Netfilter
	if v.Netfilter6 != v.Netfilter {
		backends += " (ip6tables: " + v.Netfilter6 + ")"
	}
	fmt.Fprintf(c.stdout, "weir %s\ncommit:    %s\ngo:        %s\nnetfilter: %s\n", v.Version, commit, v.GoVersion, backends)
	return nil
}

// buildVersion reads what the linker and the go command stamped into the
// binary: the -X version, else the module version (`go install
// weir/cmd/weir@TAG`), else the commit.
func buildVersion() versionInfo {
	v := versionInfo{Version: version, GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Commit = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
		if v.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v.Version = bi.Main.Version
		}
	}
	if v.Commit == "" && commit != "" {
		v.Commit, v.Modified = commit, strings.HasSuffix(version, "-dirty")
	}
	if v.Version == "" && len(v.Commit) >= 12 {
		v.Version = v.Commit[:12]
		if v.Modified {
			v.Version += "-dirty"
		}
	}
	if v.Version == "" {
		v.Version = "devel"
	}
	return v
}

// agentBuild is the build as the agent's weir_build_info metric labels it.
func agentBuild() agent.Build {
	v := buildVersion()
	return agent.Build{Version: v.Version, Commit: v.Commit, GoVersion: v.GoVersion}
}

// netfilterBackend detects the host's backend of family (iptables for
// IPv4, ip6tables for IPv6): nft, legacy, or unknown when that command
// does not work.
func netfilterBackend(family spec.Family) string {
	nf, err := netfilter.NewIPTables(netfilter.IPTablesOptions{Family: family})
	if err != nil {
		return "unknown"
	}
	return nf.Backend()
}
