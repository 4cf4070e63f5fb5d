package cluster

import "github.com/hashicorp/memberlist"

// delegate receives memberlist's callbacks and hands each to one Cluster
// method. It is a separate type so that Cluster's method set stays the API.
// Event callbacks run while memberlist holds its node lock: the methods they
// call only touch Cluster's own state and never call back into memberlist.
type delegate struct{ c *Cluster }

var (
	_ memberlist.Delegate         = (*delegate)(nil)
	_ memberlist.EventDelegate    = (*delegate)(nil)
	_ memberlist.ConflictDelegate = (*delegate)(nil)
)

// NodeMeta implements memberlist.Delegate.
func (d *delegate) NodeMeta(limit int) []byte { return d.c.nodeMeta(limit) }

// NotifyMsg implements memberlist.Delegate.
func (d *delegate) NotifyMsg(b []byte) { d.c.receive(b) }

// GetBroadcasts implements memberlist.Delegate.
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.c.queue.GetBroadcasts(overhead, limit)
}

// LocalState implements memberlist.Delegate.
func (d *delegate) LocalState(join bool) []byte { return d.c.localState() }

// MergeRemoteState implements memberlist.Delegate.
func (d *delegate) MergeRemoteState(buf []byte, join bool) { d.c.mergeRemoteState(buf) }

// NotifyJoin implements memberlist.EventDelegate.
func (d *delegate) NotifyJoin(n *memberlist.Node) { d.c.nodeEvent(n, StateAlive) }

// NotifyUpdate implements memberlist.EventDelegate.
func (d *delegate) NotifyUpdate(n *memberlist.Node) { d.c.nodeEvent(n, StateAlive) }

// NotifyLeave implements memberlist.EventDelegate.
func (d *delegate) NotifyLeave(n *memberlist.Node) { d.c.nodeEvent(n, StateDead) }

// NotifyConflict implements memberlist.ConflictDelegate.
func (d *delegate) NotifyConflict(existing, other *memberlist.Node) {
	d.c.nameConflict(existing, other)
}
