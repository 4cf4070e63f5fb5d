package lab

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

func TestResultCounts(t *testing.T) {
	var r Result
	for _, line := range []string{"ok a", "ok b", "fail dial tcp: connection refused", "ok a"} {
		r.add(line)
	}
	if got := r.Counts(); got["a"] != 2 || got["b"] != 1 || len(got) != 2 {
		t.Errorf("Counts() = %v; want a=2 b=1", got)
	}
	if got, want := r.String(), "a=2 b=1 failed=1 (first: dial tcp: connection refused)"; got != want {
		t.Errorf("String() = %q; want %q", got, want)
	}
	if len(r.Replies) != 4 || r.Replies[2] != "" {
		t.Errorf("Replies = %q; want 4 in order with \"\" for the failure", r.Replies)
	}
}
