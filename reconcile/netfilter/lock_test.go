package netfilter_test

import (
	"context"
	"errors"
	"testing"
	"time"

	ts "weir/internal/testsupport"
	"weir/reconcile/netfilter"
)

// TestHeldXtablesLock: while another program holds the xtables lock, every
// command that needs it gives up after LockWait with ErrLocked instead of
// waiting for good, and works once the lock is free.
func TestHeldXtablesLock(t *testing.T) {
	nf, _ := ts.NewIPTablesWith(t, netfilter.IPTablesOptions{Backend: netfilter.BackendLegacy, LockWait: time.Second})
	release := ts.HoldXtablesLock(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	text := []byte("*nat\n:WEIR-A - [0:0]\n-A WEIR-A -j RETURN\nCOMMIT\n")

	start := time.Now()
	err := nf.Restore(ctx, text)
	if took := time.Since(start); !errors.Is(err, netfilter.ErrLocked) || took > 5*time.Second {
		t.Fatalf("Restore with the lock held = %v after %v; want ErrLocked within about 1s", err, took)
	}
	t.Logf("Restore with the lock held: %v", err)
	if _, err := nf.EnsureJump(ctx, "nat", "OUTPUT", []string{"-j", "RETURN"}); !errors.Is(err, netfilter.ErrLocked) {
		t.Errorf("EnsureJump with the lock held = %v; want ErrLocked", err)
	}

	release()
	if err := nf.Restore(ctx, text); err != nil {
		t.Fatalf("Restore after the lock was released: %v", err)
	}
}

// TestCommandTimeout: a command that outruns CommandTimeout is killed, and
// the error says so.
func TestCommandTimeout(t *testing.T) {
	// A lock wait longer than the command's deadline: the deadline wins.
	nf, _ := ts.NewIPTablesWith(t, netfilter.IPTablesOptions{Backend: netfilter.BackendLegacy,
		LockWait: time.Minute, CommandTimeout: 500 * time.Millisecond})
	ts.HoldXtablesLock(t)
	start := time.Now()
	err := nf.Restore(context.Background(), []byte("*nat\nCOMMIT\n"))
	if took := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || took > 5*time.Second {
		t.Fatalf("Restore past its deadline = %v after %v; want it killed after about 500ms", err, took)
	}
}
