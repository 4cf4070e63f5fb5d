// Command demo is `make demo`: it builds a 3-host network of namespaces with
// guests and a Git server, pushes examples/basic, runs a real `weir agent` on
// every host, shows `weir status` and how 100 connections from the source
// guest spread over the targets, commits a weight change, shows the new split,
// and tears everything down (also on Ctrl-C). It needs root.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	"weir/e2e/lab"
	"weir/examples"
)

func main() {
	lab.MaybeServe() // a re-executed helper (a guest's name server, a client) never returns
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// frontend is examples/basic's balancer address.
const frontend = "198.20.0.10:80"

func run(ctx context.Context, out io.Writer) error {
	start := time.Now()
	step := func(format string, args ...any) {
		fmt.Fprintf(out, "\n[%5.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root: the demo creates network namespaces, veth pairs and a bridge, and weir programs iptables rules inside them (try: sudo make demo)")
	}
	if err := ensureTools(ctx, out); err != nil {
		return err
	}
	bin, err := weirBinary(ctx)
	if err != nil {
		return err
	}
	if removed, err := lab.Sweep(""); err != nil {
		return fmt.Errorf("sweeping labs of earlier runs: %w", err)
	} else if len(removed) > 0 {
		fmt.Fprintf(out, "removed leftovers of earlier runs: %v\n", removed)
	}

	step("building 3 hosts with one guest each, a bridge and a Git server (network namespaces)")
	l, err := lab.New(ctx, lab.Options{Hosts: 3, GuestsPerHost: 1, Git: true})
	if err != nil {
		return err
	}
	defer func() {
		l.Close()
		l.RemoveDir()
		fmt.Fprintf(out, "\n[%5.1fs] torn down: no namespace, process or rule of the demo is left\n", time.Since(start).Seconds())
	}()
	fmt.Fprint(out, topology)
	web := l.Guest(1, 1)
	for i, name := range []string{"orders-1", "orders-2"} {
		if _, err := l.Serve(ctx, l.Guest(i+2, 1), name, "tcp:8080"); err != nil {
			return err
		}
	}

	files, from, err := specFiles()
	if err != nil {
		return err
	}
	commit, err := l.Git.PushFiles(ctx, "examples/basic", files)
	if err != nil {
		return err
	}
	step("git push %s → %s (commit %.12s)", from, l.Git.URL(), commit)

	// Convergence is polled on the agents' API; the table below is the CLI's.
	w := &lab.Weir{Bin: bin, Lab: l, StatusFromAPI: true}
	for _, h := range l.Hosts {
		var seeds []string
		for _, o := range l.Hosts {
			if o != h {
				seeds = append(seeds, fmt.Sprintf("%s:%d", o.Addr, lab.AgentPort))
			}
		}
		if _, err := w.StartAgent(h, "--join", strings.Join(seeds, ","), "--repo", l.Git.URL(),
			"--poll", "2s", "--resync", "5s"); err != nil {
			return err
		}
	}
	step("started weir agent on host-a, host-b, host-c (gossip encrypted: --gossip-key-file from weir keygen, mode 0600); waiting for them to converge")
	took, err := w.WaitConverged(ctx, 40*time.Second, l.Hosts, commit, lab.Names(l.Hosts))
	if err != nil {
		l.DumpLogs(func(f string, a ...any) { fmt.Fprintf(out, f+"\n", a...) }, 15)
		return fmt.Errorf("agents did not converge: %w", err)
	}
	fmt.Fprintf(out, "converged on %.12s in %v\n", commit, took.Round(time.Millisecond))
	step("weir status (on host-a)")
	table, _, err := w.Run(ctx, l.Hosts[0], "status", "--api", lab.APIAddr)
	if err != nil {
		// An older binary without the status command: show the API's JSON.
		_, body, herr := l.HTTP(ctx, l.Hosts[0].NS, "GET", "http://"+lab.APIAddr+"/status")
		if herr != nil {
			return errors.Join(err, herr)
		}
		table = fmt.Sprintf("(%v)\nGET /status: %s\n", err, body)
	}
	fmt.Fprint(out, table)

	step("100 connections from web-1 (198.19.1.2) to %s", frontend)
	if err := chart(ctx, out, l, web); err != nil {
		return err
	}

	changed, err := withWeight(files, "orders-2", 3)
	if err != nil {
		return err
	}
	commit, err = l.Git.PushFiles(ctx, "orders-2: weight 3", changed)
	if err != nil {
		return err
	}
	pushed := time.Now()
	// The push webhook: one agent fetches now and hints the others over gossip.
	if _, _, err := l.HTTP(ctx, l.Hosts[1].NS, "POST", "http://"+lab.APIAddr+"/refresh"); err != nil {
		fmt.Fprintf(out, "(POST /refresh failed, waiting for the poll: %v)\n", err)
	}
	step("git push: orders-2 gets weight 3 (commit %.12s); POST /refresh to host-b's agent", commit)
	if _, err := w.WaitConverged(ctx, 40*time.Second, l.Hosts, commit, lab.Names(l.Hosts)); err != nil {
		return fmt.Errorf("agents did not converge on the weight change: %w", err)
	}
	fmt.Fprintf(out, "every agent converged %v after the push\n", time.Since(pushed).Round(time.Millisecond))
	step("100 connections again: orders-1 should get about 25, orders-2 about 75")
	if err := chart(ctx, out, l, web); err != nil {
		return err
	}
	rules, err := l.Exec(ctx, l.Hosts[0].NS, "iptables-save", "-t", "nat")
	if err == nil {
		step("host-a's nat rules (weir's part)")
		for _, line := range strings.Split(rules, "\n") {
			if strings.Contains(line, "WEIR-") {
				fmt.Fprintln(out, "  "+line)
			}
		}
	}
	return nil
}

const topology = `
                        switch namespace: bridge 198.18.0.0/24
       ┌───────────────────────┬────────────────────┬───────────────────┐
   host-a 198.18.0.1      host-b 198.18.0.2     host-c 198.18.0.3    git 198.18.0.250
   weir agent             weir agent            weir agent           git daemon
       │                      │                     │
   web-1 198.19.1.2       orders-1 198.19.2.2   orders-2 198.19.3.2
   (frontend)             (orders :8080)        (orders :8080)
   web-1 → 198.20.0.10:80 is DNAT-ed by host-a to orders-1 / orders-2
`

// chart sends 100 connections from g to the frontend and prints the replies
// per target as a bar chart.
func chart(ctx context.Context, out io.Writer, l *lab.Lab, g *lab.Guest) error {
	r, err := l.Dial(ctx, g, "tcp", frontend, 100)
	if err != nil {
		return err
	}
	counts := r.Counts()
	names := make([]string, 0, len(counts))
	for n := range counts {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(out, "  %-9s %-50s %3d\n", n, strings.Repeat("█", counts[n]/2), counts[n])
	}
	if f := r.Failures(); f > 0 {
		fmt.Fprintf(out, "  %-9s %-50s %3d  (%s)\n", "failed", strings.Repeat("░", f/2), f, r.Errors[0])
	}
	return nil
}

// specFiles returns examples/basic as the binary embeds it, so the demo runs
// the same files the README points newcomers to, from any directory.
func specFiles() (map[string]string, string, error) {
	files := map[string]string{}
	err := fs.WalkDir(examples.FS, "basic", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(examples.FS, path)
		if err != nil {
			return err
		}
		files[strings.TrimPrefix(path, "basic/")] = string(b)
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("reading the embedded examples/basic: %w", err)
	}
	return files, "examples/basic", nil
}

// withWeight returns files with the balancer frontend-orders giving guest a
// weight of w: an existing "guest: N" line under weights is rewritten, else a
// weights block is added at the end of that balancer's document.
func withWeight(files map[string]string, guest string, w int) (map[string]string, error) {
	out := map[string]string{}
	for k, v := range files {
		out[k] = v
	}
	names := make([]string, 0, len(files))
	for k := range files {
		names = append(names, k)
	}
	sort.Strings(names)
	existing := regexp.MustCompile(`(?m)^([ \t]+)` + regexp.QuoteMeta(guest) + `:[ \t]*\d+[ \t]*$`)
	for _, name := range names {
		docs := strings.Split(files[name], "\n---")
		for i, doc := range docs {
			if !strings.Contains(doc, "kind: Balancer") || !strings.Contains(doc, "name: frontend-orders") {
				continue
			}
			if existing.MatchString(doc) {
				docs[i] = existing.ReplaceAllString(doc, fmt.Sprintf("${1}%s: %d", guest, w))
			} else if strings.Contains(doc, "\n  weights:") {
				docs[i] = strings.Replace(doc, "\n  weights:", fmt.Sprintf("\n  weights:\n    %s: %d", guest, w), 1)
			} else {
				docs[i] = strings.TrimRight(doc, "\n") + fmt.Sprintf("\n  weights:\n    %s: %d\n", guest, w)
			}
			out[name] = strings.Join(docs, "\n---")
			return out, nil
		}
	}
	return nil, errors.New("no Balancer frontend-orders in the specs")
}

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

// weirBinary returns $WEIR_BIN, else bin/weir (make demo builds it first),
// building it when missing.
func weirBinary(ctx context.Context) (string, error) {
	if p := os.Getenv("WEIR_BIN"); p != "" {
		return p, nil
	}
	bin, err := filepath.Abs("bin/weir")
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/weir")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building weir (run the demo from the repository root, or make build): %w: %s", err, b)
	}
	return bin, nil
}
