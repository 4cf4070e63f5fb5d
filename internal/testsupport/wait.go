package testsupport

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// Eventually calls cond every interval until it returns nil, ctx ends or
// timeout passes; on failure the error wraps cond's last error, so a test
// says what was still wrong, not just "timed out". It is the one
// deadline-polling loop of weir's tests, the e2e lab, the bench and the demo.
func Eventually(parent context.Context, timeout, interval time.Duration, cond func() error) error {
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	t := time.NewTicker(interval)
	defer t.Stop()
	var last error
	for {
		if last = cond(); last == nil {
			return nil
		}
		var perm *permanentError
		if errors.As(last, &perm) {
			return perm.err
		}
		select {
		case <-ctx.Done():
			if err := parent.Err(); err != nil {
				return fmt.Errorf("%w while waiting (last: %v)", err, last)
			}
			return fmt.Errorf("not within %v: %w", timeout, last)
		case <-t.C:
		}
	}
}

// Permanent marks an error that ends Eventually at once: waiting longer
// cannot help (a process it waits for has exited).
func Permanent(err error) error { return &permanentError{err} }

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Consistently calls cond every interval for the whole duration and returns
// its first error: for properties that must hold, not merely become true.
func Consistently(ctx context.Context, duration, interval time.Duration, cond func() error) error {
	end := time.Now().Add(duration)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := cond(); err != nil {
			return err
		}
		if !time.Now().Before(end) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// WaitFor is Eventually for a test: it polls cond every interval and returns
// how long it took to hold, or fails t with what and cond's last error when
// timeout passes first. It does not stop at t's end, so cleanups may wait too.
func WaitFor(t testing.TB, timeout, interval time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	start := time.Now()
	if err := Eventually(context.Background(), timeout, interval, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
	return time.Since(start)
}

// HoldsFor is Consistently for a test: it fails t with what and cond's error
// as soon as cond fails within window.
func HoldsFor(t testing.TB, window, interval time.Duration, what string, cond func() error) {
	t.Helper()
	if err := Consistently(context.Background(), window, interval, cond); err != nil {
		t.Fatalf("%s stopped holding within %v: %v", what, window, err)
	}
}

// Until turns a yes/no condition into one for WaitFor, HoldsFor and
// Eventually.
func Until(cond func() bool) func() error {
	return func() error {
		if cond() {
			return nil
		}
		return errNotYet
	}
}

var errNotYet = errors.New("condition not met")
