package health_test

import (
	"context"
	"errors"
	"testing"
	"time"

	ts "weir/internal/testsupport"
)

// waitFor polls cond every 5 ms until it holds, failing the test with what
// after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	err := ts.Eventually(context.Background(), timeout, 5*time.Millisecond, func() error {
		if cond() {
			return nil
		}
		return errors.New(what + " not yet")
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}
