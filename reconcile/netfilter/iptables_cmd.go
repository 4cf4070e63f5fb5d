package netfilter

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// ErrLocked is wrapped by the error of a command that gave up waiting for
// the xtables lock another program holds.
var ErrLocked = errors.New("another program holds the xtables lock")

// errExit1 is iptables' exit status 1, which -C uses for "no such rule".
var errExit1 = errors.New("exit status 1")

// run runs one binary with stdin and returns its stdout. The command runs in
// its own process group, which is killed when ctx ends or CommandTimeout
// passes, so that nothing it started outlives the deadline.
func (t *IPTables) run(ctx context.Context, stdin []byte, bin string, args ...string) ([]byte, error) {
	var feed func(io.Writer) error
	if stdin != nil {
		feed = func(w io.Writer) error {
			_, err := w.Write(stdin)
			return err
		}
	}
	return t.runFed(ctx, feed, bin, args...)
}

// runFed is run with the standard input written by feed (none when nil)
// while the command runs, through a pipe.
func (t *IPTables) runFed(ctx context.Context, feed func(io.Writer) error, bin string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	fed := &countWriter{}
	err := t.do(func() error {
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		cmd.WaitDelay = time.Second
		return runFeeding(cmd, feed, fed)
	})
	t.log.Debug("iptables command", "bin", bin, "args", args, "stdin_bytes", fed.n, "err", err)
	if err == nil {
		return stdout.Bytes(), nil
	}
	return nil, t.commandError(ctx, bin, args, err, stderr.String())
}

// runFeeding starts cmd, writes its standard input with feed through a
// buffer, closes it and waits. When the command fails, its error wins over
// the broken pipe feeding it saw.
func runFeeding(cmd *exec.Cmd, feed func(io.Writer) error, fed *countWriter) error {
	if feed == nil {
		return cmd.Run()
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	fed.w = in
	bw := bufio.NewWriterSize(fed, 64<<10)
	ferr := feed(bw)
	if ferr == nil {
		ferr = bw.Flush()
	}
	in.Close()
	if err := cmd.Wait(); err != nil {
		return err
	}
	return ferr
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += n
	return n, err
}

// commandError describes a failed command: one cut off by its deadline, one
// that gave up on the xtables lock (ErrLocked), or one that failed.
func (t *IPTables) commandError(ctx context.Context, bin string, args []string, err error, stderr string) error {
	msg := strings.ReplaceAll(strings.TrimSpace(stderr), "\n", "; ")
	if len(msg) > 512 {
		msg = msg[:512] + "…"
	}
	what := bin + " " + strings.Join(args, " ")
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("running %s: killed: %w", what, context.Cause(ctx))
	case strings.Contains(msg, "xtables lock"):
		return fmt.Errorf("running %s: %w, gave up after %ss: %s", what, ErrLocked, t.lockWait, msg)
	case errors.As(err, &exit) && exit.ExitCode() == 1:
		err = fmt.Errorf("%w (%w)", errExit1, err)
	}
	return fmt.Errorf("running %s: %w: %s", what, err, msg)
}

// Restore implements Netfilter with `iptables-restore --noflush -w SECONDS`.
func (t *IPTables) Restore(ctx context.Context, text []byte) error {
	_, err := t.run(ctx, text, t.restore, "--noflush", "-w", t.lockWait)
	return err
}

// RestoreFrom is Restore with the text written by write straight into the
// command's standard input as it is produced, so that the text of a large
// transaction (megabytes at 10,000 balancers) is never held in memory whole.
func (t *IPTables) RestoreFrom(ctx context.Context, write func(io.Writer) error) error {
	_, err := t.runFed(ctx, write, t.restore, "--noflush", "-w", t.lockWait)
	return err
}

// Save implements Netfilter with `iptables-save -t table`, which takes no lock.
func (t *IPTables) Save(ctx context.Context, table string) ([]byte, error) {
	return t.run(ctx, nil, t.save, "-t", table)
}

// SaveTo is Save with the output handed to read as it is printed, through a
// pipe, so that the caller need not hold all of it (see scanSave).
func (t *IPTables) SaveTo(ctx context.Context, table string, read func(io.Reader) error) error {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	var stderr bytes.Buffer
	args := []string{"-t", table}
	err := t.do(func() error {
		cmd := exec.CommandContext(ctx, t.save, args...)
		cmd.Stderr = &stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		cmd.WaitDelay = time.Second
		out, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return err
		}
		rerr := read(out)
		io.Copy(io.Discard, out) //nolint:errcheck // only lets the command finish
		if err := cmd.Wait(); err != nil {
			return err
		}
		return rerr
	})
	t.log.Debug("iptables command", "bin", t.save, "args", args, "err", err)
	if err != nil {
		return t.commandError(ctx, t.save, args, err, stderr.String())
	}
	return nil
}

// iptablesCmd runs the backend's iptables with the lock wait, in table.
func (t *IPTables) iptablesCmd(ctx context.Context, table string, args ...string) ([]byte, error) {
	return t.run(ctx, nil, t.iptables, append([]string{"-w", t.lockWait, "-t", table}, args...)...)
}

// ListRules implements Netfilter. On nft, `iptables -S CHAIN` reads only that
// chain (about 5 ms with 70,000 rules in the table), so chains are listed one by
// one; on legacy every read copies the whole table out of the kernel (about
// 130 ms of system time at that size), so one save serves all chains.
func (t *IPTables) ListRules(ctx context.Context, table string, chains []string) (map[string][]string, error) {
	if t.backend == BackendLegacy {
		return t.listFromSave(ctx, table, chains)
	}
	out := make(map[string][]string, len(chains))
	for _, c := range chains {
		text, err := t.iptablesCmd(ctx, table, "-S", c)
		if err != nil {
			return nil, fmt.Errorf("listing chain %s in table %s: %w", c, table, err)
		}
		rules := []string{}
		prefix := "-A " + c + " "
		for l := range strings.Lines(string(text)) {
			if r, ok := strings.CutPrefix(strings.TrimRight(l, "\n"), prefix); ok {
				rules = append(rules, r)
			}
		}
		out[c] = rules
	}
	return out, nil
}

// listFromSave is ListRules through one iptables-save of table.
func (t *IPTables) listFromSave(ctx context.Context, table string, chains []string) (map[string][]string, error) {
	want := make(map[string]bool, len(chains))
	for _, c := range chains {
		want[c] = true
	}
	out := make(map[string][]string, len(chains))
	err := scanSave(ctx, t, table, func(string) {}, func(c string, r *savedRules) error {
		if want[c] {
			out[c] = r.copies()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, c := range chains {
		if _, ok := out[c]; !ok {
			return nil, fmt.Errorf("listing chain %s in table %s: no such chain", c, table)
		}
	}
	return out, nil
}

// exists reports whether rule is in chain (`iptables -C`, whose exit status
// 1 means it is not).
func (t *IPTables) exists(ctx context.Context, table, chain string, rule []string) (bool, error) {
	_, err := t.iptablesCmd(ctx, table, append([]string{"-C", chain}, rule...)...)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, errExit1):
		return false, nil
	}
	return false, err
}

// EnsureJump implements Netfilter with iptables -C and -I.
func (t *IPTables) EnsureJump(ctx context.Context, table, chain string, rule []string) (bool, error) {
	ok, err := t.exists(ctx, table, chain, rule)
	if err == nil && !ok {
		_, err = t.iptablesCmd(ctx, table, append([]string{"-I", chain, "1"}, rule...)...)
	}
	if err != nil {
		return false, fmt.Errorf("ensuring jump %q in %s/%s: %w", JoinRule(rule), table, chain, err)
	}
	return !ok, nil
}

// DeleteJump implements Netfilter with iptables -C and -D.
func (t *IPTables) DeleteJump(ctx context.Context, table, chain string, rule []string) error {
	ok, err := t.exists(ctx, table, chain, rule)
	if err == nil && ok {
		_, err = t.iptablesCmd(ctx, table, append([]string{"-D", chain}, rule...)...)
	}
	if err != nil {
		return fmt.Errorf("deleting jump %q from %s/%s: %w", JoinRule(rule), table, chain, err)
	}
	return nil
}
