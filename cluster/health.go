package cluster

import (
	"bytes"
	"maps"
	"slices"

	"weir/spec"
)

// healthRec is what one origin's current incarnation has reported about
// its endpoint checks: the report in effect and a newer one whose pages are
// still arriving. A new incarnation starts without one (setMetaLocked), so
// a restarted host's checks count healthy until it reports again.
type healthRec struct {
	version uint64         // counter of the report's first page; 0: none yet
	last    uint64         // counter of its last page
	ids     []spec.CheckID // failing checks, sorted
	pend    pendingReport
}

// pendingReport gathers the pages of a report newer than the one in effect.
type pendingReport struct {
	version uint64
	pages   [][]spec.CheckID // by part
	have    uint32           // bit i: page i is in (maxHealthPages ≤ 32)
}

// ownReport is this node's own health report as last set.
type ownReport struct {
	version uint64 // 0: nothing reported in this incarnation
	ids     []spec.CheckID
}

// SetHealth reports which endpoint checks of this host's own guests fail
// (IDs in any order; duplicates are ignored). The report travels as a
// gossip broadcast, once more Reannounce after the last change, and in
// push/pull syncs; other nodes take it only from this node, and only while
// it counts as a host. A check left out counts as healthy. Reporting the
// same set again costs nothing; beyond MaxUnhealthy IDs, the lowest are
// reported.
func (c *Cluster) SetHealth(unhealthy []spec.CheckID) error {
	ids := slices.Clone(unhealthy)
	slices.SortFunc(ids, func(a, b spec.CheckID) int { return bytes.Compare(a[:], b[:]) })
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
	if slices.Equal(ids, c.own.ids) && (c.own.version > 0 || len(ids) == 0) {
		c.mu.Unlock()
		return nil
	}
	msgs := healthMessages(c.cfg.Node, c.incarnation, c.lastSeq+1, ids)
	c.lastSeq += uint64(len(msgs))
	c.own = ownReport{version: msgs[0].Seq, ids: ids}
	c.queueHealthLocked(msgs)
	c.mu.Unlock()
	signal(c.resend)
	return nil
}

// queueHealthLocked queues the pages of a report for broadcast.
func (c *Cluster) queueHealthLocked(msgs []message) {
	for i, m := range msgs {
		c.queue.QueueBroadcast(newPageBroadcast(m, i))
	}
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
		if len(r.origin.health.ids) > 0 && c.countsLocked(name, r) {
			out[name] = slices.Clone(r.origin.health.ids)
		}
	}
	return out
}

// countsLocked reports whether member name counts as an alive host.
func (c *Cluster) countsLocked(name string, r *memberRec) bool {
	return r.state == StateAlive && r.metaErr == nil && !r.decoded.Observer && c.strangerLocked(name, r) == ""
}

// takeHealthLocked takes in a page of origin's health report (admitted by
// admitLocked) and reports whether it was new. The report takes effect when
// its last missing page arrives; a page of an older report than the one
// gathered, or one already in, is not new.
func (c *Cluster) takeHealthLocked(r *memberRec, m message) bool {
	p, err := decodeHealthPage(m.Payload)
	if err != nil { // cannot happen: decodeMessage checked it
		return false
	}
	h := &r.origin.health
	version := m.Seq - uint64(p.Part)
	if version <= h.version || version < h.pend.version {
		return false
	}
	pd := &h.pend
	if version > pd.version {
		*pd = pendingReport{version: version, pages: make([][]spec.CheckID, p.Parts)}
	}
	if len(pd.pages) != p.Parts || pd.have&(1<<p.Part) != 0 {
		return false
	}
	pd.pages[p.Part], pd.have = p.IDs, pd.have|1<<p.Part
	if pd.have != 1<<p.Parts-1 {
		return true
	}
	ids := slices.Concat(pd.pages...)
	last := version + uint64(p.Parts) - 1
	if !ascending(ids) {
		// Pages that do not join into one sorted list were not written by
		// SetHealth; the report in effect stands.
		*pd = pendingReport{}
		return true
	}
	changed := !slices.Equal(ids, h.ids)
	*h = healthRec{version: version, last: last, ids: ids}
	if changed {
		signal(c.raw)
	}
	return true
}

// originHealthLocked returns the report in effect of member name as
// messages; nil when it has none.
func originHealthLocked(name string, r *memberRec) []message {
	h := r.origin.health
	if h.version == 0 {
		return nil
	}
	return healthMessages(name, r.origin.inc, h.version, h.ids)
}
