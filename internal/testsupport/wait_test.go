package testsupport

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestEventually(t *testing.T) {
	errNo := errors.New("not yet")
	tests := []struct {
		name    string
		results []error // cond's answers in order; the last repeats
		wantErr error
		wantN   int // calls made
	}{
		{"at once", []error{nil}, nil, 1},
		{"after two", []error{errNo, errNo, nil}, nil, 3},
		{"never", []error{errNo}, errNo, -1},
		{"permanent", []error{errNo, Permanent(errNo)}, errNo, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := 0
			err := Eventually(context.Background(), 200*time.Millisecond, 5*time.Millisecond, func() error {
				n++
				return tt.results[min(n, len(tt.results))-1]
			})
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Errorf("Eventually = %v; want %v", err, tt.wantErr)
			}
			if tt.wantN >= 0 && n != tt.wantN {
				t.Errorf("cond called %d times; want %d", n, tt.wantN)
			}
		})
	}
}

func TestConsistently(t *testing.T) {
	errBroke := errors.New("broke")
	n := 0
	err := Consistently(context.Background(), time.Second, 5*time.Millisecond, func() error {
		n++
		if n == 3 {
			return errBroke
		}
		return nil
	})
	if !errors.Is(err, errBroke) || n != 3 {
		t.Errorf("Consistently = %v after %d calls; want %v after 3", err, n, errBroke)
	}
	n = 0
	if err := Consistently(context.Background(), 50*time.Millisecond, 5*time.Millisecond, func() error { n++; return nil }); err != nil || n < 2 {
		t.Errorf("Consistently = %v after %d calls; want nil after several", err, n)
	}
}

func TestWaitForUntil(t *testing.T) {
	n := 0
	took := WaitFor(t, time.Second, time.Millisecond, "the third call", Until(func() bool { n++; return n == 3 }))
	if n != 3 || took < 0 {
		t.Errorf("WaitFor returned after %d calls (%v); want 3", n, took)
	}
	if err := Until(func() bool { return false })(); !errors.Is(err, errNotYet) {
		t.Errorf("Until(false)() = %v; want %v", err, errNotYet)
	}
	HoldsFor(t, 20*time.Millisecond, time.Millisecond, "a true condition", Until(func() bool { return true }))
}
