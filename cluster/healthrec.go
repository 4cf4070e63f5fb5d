package cluster

import (
	"maps"
	"slices"

	"weir/spec"
)

// maxCheckRecs bounds what a node keeps per origin about its checks: every
// failing one (at most MaxUnhealthy) and as many that passed since the
// last report, which guard against an older transition arriving late.
const maxCheckRecs = 2 * MaxUnhealthy

// healthRec is what one origin's current incarnation has said about its
// endpoint checks: the newest report taken in, and per check the newest
// word on it since (the report's own failing checks at its version, later
// transitions at theirs). A new incarnation starts without one
// (setMetaLocked), so a restarted host's checks count healthy until it
// reports again.
type healthRec struct {
	version uint64 // counter of the newest report's first page; 0: none yet
	last    uint64 // counter of its last page
	checks  map[spec.CheckID]checkRec
	failing int // checks with failing set
	pend    pendingReport
}

// checkRec is the newest word on one check: the counter that said it.
type checkRec struct {
	seq     uint64
	failing bool
}

// pendingReport gathers the pages of a report newer than the one in effect.
type pendingReport struct {
	version uint64
	pages   [][]spec.CheckID // by part
	have    uint32           // bit i: page i is in (maxHealthPages ≤ 32)
}

// failingIDs returns the failing checks, sorted.
func (h *healthRec) failingIDs() []spec.CheckID {
	out := make([]spec.CheckID, 0, h.failing)
	for id, rec := range h.checks {
		if rec.failing {
			out = append(out, id)
		}
	}
	slices.SortFunc(out, compareIDs)
	return out
}

// set records the word of counter seq on check id, keeping within
// maxCheckRecs by forgetting the oldest passing check; it reports whether
// the failing set changed, and false as well when there was no room.
func (h *healthRec) set(id spec.CheckID, seq uint64, failing bool) (changed, ok bool) {
	old, had := h.checks[id]
	if !had && len(h.checks) >= maxCheckRecs && !h.evictPassing() {
		return false, false
	}
	if h.checks == nil {
		h.checks = map[spec.CheckID]checkRec{}
	}
	h.checks[id] = checkRec{seq: seq, failing: failing}
	if old.failing != failing { // a check not kept counts as passing
		if failing {
			h.failing++
		} else {
			h.failing--
		}
		return true, true
	}
	return false, true
}

// evictPassing forgets the passing check said longest ago; false when
// every check kept is failing.
func (h *healthRec) evictPassing() bool {
	var oldest spec.CheckID
	var seq uint64
	found := false
	for id, rec := range h.checks {
		if !rec.failing && (!found || rec.seq < seq) {
			oldest, seq, found = id, rec.seq, true
		}
	}
	if found {
		delete(h.checks, oldest)
	}
	return found
}

// takeCheckLocked takes in a transition of origin's check (admitted by
// admitLocked) and reports whether it was new: a transition older than the
// report in effect, or than the newest word on that check, is not.
func (c *Cluster) takeCheckLocked(r *memberRec, m message) bool {
	id, failing, err := decodeCheck(m.Payload)
	h := &r.origin.health
	if err != nil || m.Seq < h.version || m.Seq <= h.checks[id].seq {
		return false
	}
	changed, ok := h.set(id, m.Seq, failing)
	if changed {
		signal(c.raw)
	}
	return ok
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
	if pd.have == 1<<p.Parts-1 {
		ids := slices.Concat(pd.pages...)
		h.pend = pendingReport{}
		// Pages that do not join into one sorted list were not written by
		// SetHealth; the report in effect stands.
		if ascending(ids) && h.applyReport(version, version+uint64(p.Parts)-1, ids) {
			signal(c.raw)
		}
	}
	return true
}

// applyReport makes the report of version (pages up to counter last) the
// one in effect: what was said before version gives way to its failing
// ids, later transitions stand. It reports whether the failing set changed.
func (h *healthRec) applyReport(version, last uint64, ids []spec.CheckID) bool {
	before := h.failingIDs()
	next := healthRec{version: version, last: last, checks: make(map[spec.CheckID]checkRec, len(ids))}
	for id, rec := range h.checks {
		if rec.seq > version {
			next.set(id, rec.seq, rec.failing)
		}
	}
	for _, id := range ids {
		if _, newer := next.checks[id]; !newer {
			next.set(id, version, true)
		}
	}
	*h = next
	return !slices.Equal(before, h.failingIDs())
}

// originHealthLocked returns what member name has said about its checks,
// as messages another node takes in to know the same: the report in effect
// (its failing checks at its version) and the transitions since.
func originHealthLocked(name string, r *memberRec) []message {
	h := &r.origin.health
	var report []spec.CheckID
	var later []message
	for _, id := range slices.SortedFunc(maps.Keys(h.checks), compareIDs) {
		rec := h.checks[id]
		if rec.seq == h.version && h.version > 0 {
			report = append(report, id)
			continue
		}
		later = append(later, message{Kind: msgCheck, Origin: name, Inc: r.origin.inc, Seq: rec.seq, Payload: checkPayload(id, rec.failing)})
	}
	if h.version == 0 {
		return later
	}
	return append(healthMessages(name, r.origin.inc, h.version, report), later...)
}
