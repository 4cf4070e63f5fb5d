package lab

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// ForTest builds a lab for a test, skipping it when not root. The lab is
// closed when the test ends; on failure the tail of every process log is
// logged and the lab dir is kept (its path is logged), otherwise it is removed.
func ForTest(t testing.TB, opts Options) *Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to create network namespaces, veths and iptables rules (run the e2e tests as root, e.g. sudo make test)")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	}
	l, err := New(context.Background(), opts)
	if err != nil {
		t.Fatalf("lab.New: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("closing lab: %v", err)
		}
		if t.Failed() {
			l.DumpLogs(func(format string, args ...any) { t.Logf(format, args...) }, 40)
			t.Logf("lab dir kept: %s", l.Dir)
			return
		}
		if err := l.RemoveDir(); err != nil {
			t.Errorf("removing lab dir: %v", err)
		}
	})
	return l
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// DumpLogs writes the last n lines of every process log through logf.
func (l *Lab) DumpLogs(logf func(format string, args ...any), n int) {
	logs, _ := filepath.Glob(filepath.Join(l.Dir, "logs", "*.log"))
	for _, p := range logs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		logf("--- %s (last %d lines)\n%s", p, len(lines), strings.Join(lines, "\n"))
	}
}

// Main is main for a program that builds labs (the bench, the demo): it
// runs the re-exec helpers (MaybeServe), then run with a context that ends
// on SIGINT or SIGTERM, so that run can tear its labs down, and exits with
// the code run returns.
func Main(run func(ctx context.Context) int) {
	MaybeServe() // a re-executed helper never returns from here
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx)
	stop()
	os.Exit(code)
}

// MainSetup is for TestMain: it runs the re-exec helpers (MaybeServe),
// sweeps labs of earlier killed runs, and on SIGINT/SIGTERM removes this
// process's labs before exiting, since an interrupted test runs no Cleanup.
func MainSetup() {
	MaybeServe()
	if os.Geteuid() != 0 {
		return
	}
	if removed, err := Sweep(""); err != nil {
		fmt.Fprintln(os.Stderr, "lab: sweeping stale labs:", err)
	} else if len(removed) > 0 {
		fmt.Fprintln(os.Stderr, "lab: removed stale labs", removed)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "lab: %v: removing this run's namespaces\n", s)
		if _, err := SweepMine(""); err != nil {
			fmt.Fprintln(os.Stderr, "lab:", err)
		}
		os.Exit(130)
	}()
}
