package cluster

import (
	"fmt"
	"testing"

	"github.com/hashicorp/memberlist"
)

// namedMsg is a broadcast of a fixed length: every node's alive message (or
// error text) in a cluster of same-length names and metas has one length.
type namedMsg struct{ name, msg string }

func (b *namedMsg) Invalidates(memberlist.Broadcast) bool { return false }
func (b *namedMsg) Name() string                          { return b.name }
func (b *namedMsg) Message() []byte                       { return []byte(b.msg) }
func (b *namedMsg) Finished()                             {}

// TestBroadcastQueueKeepsEveryBroadcast is the lost meta update: memberlist's
// queue (which carries every alive message, and weir's user messages) used
// to reset its id counter when it ran empty, also while replacing a node's
// previous broadcast with its new one; the next broadcasts then took the new
// one's id, and one of the same length replaced it unsent. third_party/vendor/
// memberlist carries the fix.
func TestBroadcastQueueKeepsEveryBroadcast(t *testing.T) {
	q := &memberlist.TransmitLimitedQueue{NumNodes: func() int { return 10 }, RetransmitMult: 4}
	q.QueueBroadcast(&namedMsg{"host-h", "alive host-h meta 1"})
	q.QueueBroadcast(&namedMsg{"host-h", "alive host-h meta 2"}) // replaces meta 1: the queue runs empty
	for i := range 3 {
		q.QueueBroadcast(&namedMsg{fmt.Sprintf("host-%c", 'a'+i), fmt.Sprintf("alive host-%c meta 2", 'a'+i)})
	}
	sent := map[string]int{}
	for range 20 {
		for _, m := range q.GetBroadcasts(0, 1400) {
			sent[string(m)]++
		}
	}
	for _, want := range []string{"alive host-h meta 2", "alive host-a meta 2", "alive host-b meta 2", "alive host-c meta 2"} {
		if sent[want] == 0 {
			t.Errorf("%q was never sent; sent: %v", want, sent)
		}
	}
	if sent["alive host-h meta 1"] != 0 {
		t.Errorf("the replaced broadcast was sent %d times", sent["alive host-h meta 1"])
	}
}
