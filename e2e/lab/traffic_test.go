package lab

import "testing"

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
