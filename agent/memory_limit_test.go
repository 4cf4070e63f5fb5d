package agent

import "testing"

func TestSoftLimit(t *testing.T) {
	for _, tt := range []struct{ live, want int64 }{
		{0, memoryFloor},
		{10 << 20, memoryFloor},
		{24 << 20, 40 << 20},
		{64 << 20, 80 << 20},
		{400 << 20, 500 << 20},
	} {
		if got := softLimit(tt.live); got != tt.want {
			t.Errorf("softLimit(%d MiB) = %d MiB; want %d MiB", tt.live>>20, got>>20, tt.want>>20)
		}
	}
}
