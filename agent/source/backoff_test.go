package source

import (
	"testing"
	"time"
)

func TestNextDelay(t *testing.T) {
	b := Backoff{}.withDefaults(15 * time.Second)
	tests := []struct {
		poll     time.Duration
		failures int
		r        float64
		want     time.Duration
	}{
		{15 * time.Second, 0, 0.5, 15 * time.Second},
		{15 * time.Second, 0, 0, 13500 * time.Millisecond},           // -10%
		{15 * time.Second, 0, 0.999999, 16499997 * time.Microsecond}, // just under +10%
		{15 * time.Second, 1, 0.5, time.Second},
		{15 * time.Second, 2, 0.5, 2 * time.Second},
		{15 * time.Second, 5, 0.5, 16 * time.Second},
		{15 * time.Second, 9, 0.5, 256 * time.Second},
		{15 * time.Second, 10, 0.5, 5 * time.Minute},      // capped
		{15 * time.Second, 1000, 0.5, 5 * time.Minute},    // no overflow
		{15 * time.Second, 1000, 0, 270 * time.Second},    // cap is jittered too
		{15 * time.Second, 1000, 0.75, 315 * time.Second}, // +5%
	}
	for _, tt := range tests {
		if got := nextDelay(tt.poll, b, tt.failures, tt.r); got != tt.want {
			t.Errorf("nextDelay(%v, %+v, %d, %v) = %v; want %v", tt.poll, b, tt.failures, tt.r, got, tt.want)
		}
	}
}

func TestBackoffDefaults(t *testing.T) {
	tests := []struct {
		in   Backoff
		poll time.Duration
		want Backoff
	}{
		{Backoff{}, 15 * time.Second, Backoff{Initial: time.Second, Max: 5 * time.Minute}},
		{Backoff{}, 10 * time.Minute, Backoff{Initial: time.Second, Max: 10 * time.Minute}}, // never below poll
		{Backoff{Initial: 2 * time.Second, Max: time.Second}, time.Millisecond, Backoff{Initial: 2 * time.Second, Max: 2 * time.Second}},
	}
	for _, tt := range tests {
		if got := tt.in.withDefaults(tt.poll); got != tt.want {
			t.Errorf("%+v.withDefaults(%v) = %+v; want %+v", tt.in, tt.poll, got, tt.want)
		}
	}
}
