package cluster

import (
	"encoding/json"
	"maps"
	"slices"
	"time"
)

// nodeMeta is this node's encoded meta, for memberlist to announce.
func (c *Cluster) nodeMeta(limit int) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.meta) > limit { // cannot happen: encodeMeta bounds it far lower
		return nil
	}
	return append([]byte(nil), c.meta...)
}

// receive takes in a user message gossiped by another node and passes it on
// when it was new.
func (c *Cluster) receive(b []byte) {
	m, err := decodeMessage(b)
	if err != nil {
		c.log.Debug("dropping gossip message", "err", err)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.applyLocked(m, c.now()) {
		c.queue.QueueBroadcast(newBroadcast(m, nil))
	}
}

// applyLocked takes in a message from another node and reports whether it
// was new (and so worth passing on).
func (c *Cluster) applyLocked(m message, at time.Time) bool {
	if m.Origin == c.cfg.Node || c.closed {
		return false
	}
	switch m.Kind {
	case msgHint:
		if h, ok := c.hints[m.Origin]; ok && h.seq >= m.Seq {
			return false
		}
		c.hints[m.Origin] = hintRec{seq: m.Seq, revision: m.Payload, at: at}
		if !c.recentLocked(m.Payload) {
			c.recent[m.Payload] = c.now()
			offerLatest(c.hintsCh, m.Payload)
		}
		return true
	case msgError:
		if e, ok := c.errTexts[m.Origin]; ok && e.seq >= m.Seq {
			return false
		}
		c.errTexts[m.Origin] = errRec{seq: m.Seq, text: m.Payload}
		signal(c.raw)
		return true
	case msgLeave:
		if s, ok := c.leaves[m.Origin]; ok && s >= m.Seq {
			return false
		}
		c.leaves[m.Origin] = m.Seq
		if r, ok := c.members[m.Origin]; ok && r.state == StateDead {
			// memberlist's leave message overtook the intent.
			r.state = StateLeft
			signal(c.raw)
		}
		return true
	}
	return false
}

// localState is this node's part of a push/pull state sync: live hints,
// error texts, and the members that are gone with their leave intents.
func (c *Cluster) localState() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	st := pushState{V: 1}
	for _, origin := range slices.Sorted(maps.Keys(c.hints)) {
		h := c.hints[origin]
		if age := now.Sub(h.at); age < c.cfg.HintTTL {
			st.Hints = append(st.Hints, pushHint{Origin: origin, Seq: h.seq, Revision: h.revision, AgeMS: age.Milliseconds()})
		}
	}
	for _, origin := range slices.Sorted(maps.Keys(c.errTexts)) {
		if e := c.errTexts[origin]; e.text != "" {
			st.Errors = append(st.Errors, pushError{Origin: origin, Seq: e.seq, Text: e.text})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.members)) {
		r := c.members[name]
		if r.state == StateAlive || c.expiredLocked(r, now) {
			continue
		}
		st.Gone = append(st.Gone, pushMember{Name: name, Address: r.addr, State: r.state, Meta: r.meta})
		if seq, ok := c.leaves[name]; ok && r.state == StateLeft {
			st.Leaves = append(st.Leaves, pushLeave{Origin: name, Seq: seq})
		}
	}
	b, err := json.Marshal(st)
	if err != nil { // cannot happen for these types
		return nil
	}
	return b
}

// mergeRemoteState takes in another node's push/pull state as if its parts
// had arrived as gossip messages.
func (c *Cluster) mergeRemoteState(buf []byte) {
	if len(buf) == 0 {
		return
	}
	var st pushState
	if err := json.Unmarshal(buf, &st); err != nil || st.V != 1 {
		c.log.Debug("ignoring push/pull state", "err", err, "version", st.V)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for _, e := range st.Errors {
		c.applyLocked(message{Kind: msgError, Origin: e.Origin, Seq: e.Seq, Payload: truncateUTF8(e.Text, maxErrorText)}, now)
	}
	for _, l := range st.Leaves {
		c.applyLocked(message{Kind: msgLeave, Origin: l.Origin, Seq: l.Seq}, now)
	}
	for _, h := range st.Hints {
		age := time.Duration(h.AgeMS) * time.Millisecond
		if age >= 0 && age < c.cfg.HintTTL {
			c.applyLocked(message{Kind: msgHint, Origin: h.Origin, Seq: h.Seq, Payload: h.Revision}, now.Add(-age))
		}
	}
	for _, g := range st.Gone {
		c.introduceGoneLocked(g, now)
	}
}

// introduceGoneLocked lists a dead or departed member another node reported,
// if this node has never seen it: its own view of a known member always wins
// over a second-hand one.
func (c *Cluster) introduceGoneLocked(g pushMember, now time.Time) {
	if _, known := c.members[g.Name]; known || g.Name == c.cfg.Node {
		return
	}
	if g.State != StateDead && g.State != StateLeft {
		return
	}
	c.members[g.Name] = &memberRec{addr: g.Address, state: g.State, meta: g.Meta, since: now}
	signal(c.raw)
}
