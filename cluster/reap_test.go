package cluster

import (
	"slices"
	"testing"
	"time"
)

// TestMembersReadsReapDeletes checks that Members leaves out members dead or
// gone for longer than ReapAfter without deleting them, and that reap does.
func TestMembersReadsReapDeletes(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	t0 := clk.Now()
	c := &Cluster{
		cfg: Config{Node: "host-a", ReapAfter: time.Hour},
		now: clk.Now,
		members: map[string]*memberRec{
			"host-b": {state: StateAlive, since: t0},
			"host-c": {state: StateDead, since: t0},
			"host-d": {state: StateLeft, since: t0.Add(30 * time.Minute)},
		},
	}
	names := func() []string {
		var out []string
		for _, m := range c.Members() {
			out = append(out, m.Name)
		}
		return out
	}
	if got, want := names(), []string{"host-a", "host-b", "host-c", "host-d"}; !slices.Equal(got, want) {
		t.Errorf("Members() = %v; want %v", got, want)
	}
	clk.Add(time.Hour + time.Second)
	if got, want := names(), []string{"host-a", "host-b", "host-d"}; !slices.Equal(got, want) {
		t.Errorf("Members() after ReapAfter = %v; want %v", got, want)
	}
	if len(c.members) != 3 {
		t.Errorf("Members() deleted records: %d left; want 3", len(c.members))
	}
	c.reap()
	if _, ok := c.members["host-c"]; ok || len(c.members) != 2 {
		t.Errorf("after reap, records = %v; want host-b and host-d", c.members)
	}
}
