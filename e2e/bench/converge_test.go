package main

import (
	"testing"
	"time"
)

func TestSample(t *testing.T) {
	s := Sample{5 * time.Second, 1 * time.Second, 3 * time.Second, 2 * time.Second, 4 * time.Second}
	tests := []struct {
		p    float64
		want time.Duration
	}{{0.5, 3 * time.Second}, {1, 5 * time.Second}, {0.2, time.Second}, {0.9, 5 * time.Second}}
	for _, tt := range tests {
		if got := s.Pct(tt.p); got != tt.want {
			t.Errorf("Pct(%v) = %v; want %v", tt.p, got, tt.want)
		}
	}
	if got, want := s.String(), "p50 3.00 s, max 5.00 s (n=5)"; got != want {
		t.Errorf("String() = %q; want %q", got, want)
	}
}
