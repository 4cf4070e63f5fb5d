package lab

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"strings"

	"weir/internal/testsupport"
)

// Exec runs a command inside namespace ns and returns its combined output.
func (l *Lab) Exec(ctx context.Context, ns string, name string, args ...string) (string, error) {
	return combined(testsupport.NetnsCommand(ctx, ns, append([]string{name}, args...)...))
}

// Rules returns the lines of `iptables-save` for table in namespace ns with
// counters removed, so two snapshots compare equal when the rules are equal.
func (l *Lab) Rules(ctx context.Context, ns, table string) ([]string, error) {
	return l.saved(ctx, ns, "iptables-save", table)
}

// Rules6 is Rules of ip6tables.
func (l *Lab) Rules6(ctx context.Context, ns, table string) ([]string, error) {
	return l.saved(ctx, ns, "ip6tables-save", table)
}

// saved runs save (iptables-save or ip6tables-save) for table in ns and
// returns its lines without comments and chain counters.
func (l *Lab) saved(ctx context.Context, ns, save, table string) ([]string, error) {
	out, err := l.Exec(ctx, ns, save, "-t", table)
	if err != nil {
		return nil, err
	}
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue // generation timestamps
		}
		if strings.HasPrefix(line, ":") {
			// ":CHAIN POLICY [packets:bytes]" — drop the counters.
			if i := strings.LastIndex(line, " ["); i > 0 {
				line = line[:i]
			}
		}
		lines = append(lines, line)
	}
	return lines, nil
}

func run(ctx context.Context, name string, args ...string) error {
	_, err := combined(exec.CommandContext(ctx, name, args...))
	return err
}

// combined runs cmd and returns its combined output; the error holds the
// command line and the output.
func combined(cmd *exec.Cmd) (string, error) {
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
