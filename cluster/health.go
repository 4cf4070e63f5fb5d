package cluster

import (
	"bytes"
	"maps"
	"slices"

	"weir/spec"
)

// ownReport is this node's own health report as last set.
type ownReport struct {
	version uint64 // counter reserved for its first page; 0: nothing reported yet
	ids     []spec.CheckID
}

// SetHealth reports which endpoint checks of this host's own guests fail
// (IDs in any order; duplicates are ignored). Each check that changed
// travels as a gossip broadcast of its own, sent once more Reannounce later
// (healthLoop); the whole report travels in push/pull syncs. Other nodes take
// it only from this node, and only while it counts as a host. A check left
// out counts as healthy. Reporting the same set again costs nothing; beyond
// MaxUnhealthy IDs, the lowest are reported.
func (c *Cluster) SetHealth(unhealthy []spec.CheckID) error {
	ids := slices.Clone(unhealthy)
	slices.SortFunc(ids, compareIDs)
	ids = slices.Compact(ids)
	if len(ids) > MaxUnhealthy {
		c.log.Warn("more failing health checks than one report holds; the rest count as healthy", "failing", len(ids), "reported", MaxUnhealthy)
		ids = ids[:MaxUnhealthy]
	}
	c.mu.Lock()
	if c.closed || c.left {
		c.mu.Unlock()
		return ErrClosed
	}
	changes := diffIDs(c.own.ids, ids)
	if len(changes) == 0 {
		c.mu.Unlock()
		return nil
	}
	for _, ch := range changes {
		seq := c.nextSeqLocked()
		c.queue.QueueBroadcast(newPartBroadcast(c.ownMessage(msgCheck, seq, checkPayload(ch.id, ch.failing)), ch.id.String()))
		c.resendIDs[ch.id] = checkRec{seq: seq, failing: ch.failing}
	}
	// The report's counters come after the transitions it reflects.
	c.own = ownReport{version: c.lastSeq + 1, ids: ids}
	c.lastSeq += uint64(len(healthPages(ids)))
	c.mu.Unlock()
	signal(c.resend)
	return nil
}

// checkChange is one check that starts or stops failing.
type checkChange struct {
	id      spec.CheckID
	failing bool
}

// diffIDs returns the checks that fail in after but not in before, and
// those that no longer do, in ID order; both lists sorted.
func diffIDs(before, after []spec.CheckID) []checkChange {
	var out []checkChange
	i, j := 0, 0
	for i < len(before) || j < len(after) {
		switch {
		case j == len(after) || i < len(before) && compareIDs(before[i], after[j]) < 0:
			out = append(out, checkChange{before[i], false})
			i++
		case i == len(before) || compareIDs(after[j], before[i]) < 0:
			out = append(out, checkChange{after[j], true})
			j++
		default:
			i, j = i+1, j+1
		}
	}
	return out
}

func compareIDs(a, b spec.CheckID) int { return bytes.Compare(a[:], b[:]) }

// resendHealth queues the transitions not sent again yet once more, with
// their counters.
func (c *Cluster) resendHealth() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.left {
		return
	}
	for id, rec := range c.resendIDs {
		c.queue.QueueBroadcast(newPartBroadcast(c.ownMessage(msgCheck, rec.seq, checkPayload(id, rec.failing)), id.String()))
	}
	clear(c.resendIDs)
}

// ownHealthLocked returns this node's report as messages; nil when it has
// reported nothing.
func (c *Cluster) ownHealthLocked() []message {
	if c.own.version == 0 {
		return nil
	}
	return healthMessages(c.cfg.Node, c.incarnation, c.own.version, c.own.ids)
}

// UnhealthyChecks returns, by host, the endpoint checks that this node and
// every other member counting as a host report failing, each list sorted;
// hosts that report none are left out. A host's list is only ever what it
// reported itself, so a caller must only ask it about its own guests.
func (c *Cluster) UnhealthyChecks() map[string][]spec.CheckID {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string][]spec.CheckID{}
	if len(c.own.ids) > 0 && !c.cfg.Observer && !c.left {
		out[c.cfg.Node] = slices.Clone(c.own.ids)
	}
	for _, name := range slices.Sorted(maps.Keys(c.members)) {
		r := c.members[name]
		if r.origin.health.failing > 0 && c.countsLocked(name, r) {
			out[name] = r.origin.health.failingIDs()
		}
	}
	return out
}

// countsLocked reports whether member name counts as an alive host.
func (c *Cluster) countsLocked(name string, r *memberRec) bool {
	return r.state == StateAlive && r.metaErr == nil && !r.decoded.Observer && c.strangerLocked(name, r) == ""
}
