package lab

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Eventually calls cond every interval until it returns nil, ctx ends or
// timeout passes; on failure the error wraps cond's last error, so a test
// says what was still wrong, not just "timed out".
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
