package cluster

import (
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

// receive takes in a user message from another node: a gossiped message,
// passed on when it was new, or a key operation or its answer.
func (c *Cluster) receive(b []byte) {
	if len(b) > 0 && (b[0] == msgKeyOp || b[0] == msgKeyReply) {
		c.receiveKeyMessage(b)
		return
	}
	m, err := decodeMessage(b)
	if err != nil {
		c.log.Debug("dropping gossip message", "err", err)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.takeLocked(m, c.now()) {
		c.queue.QueueBroadcast(relayBroadcast(m))
	}
}

// localState is this node's part of a push/pull state sync: its own and the
// counted members' live hints, error texts and health reports, and the
// members that are gone with their leave intents.
func (c *Cluster) localState() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	var st pushState
	c.addOwnStateLocked(&st, now)
	reports := [][]message{c.ownHealthLocked()}
	for _, name := range slices.Sorted(maps.Keys(c.members)) {
		r := c.members[name]
		switch {
		case c.expiredLocked(r, now):
		case r.state == StateAlive:
			if !r.decoded.Observer && c.strangerLocked(name, r) == "" {
				c.addOriginLocked(&st, name, r, now)
				reports = append(reports, originHealthLocked(name, r))
			}
		default:
			st.Gone = append(st.Gone, pushMember{Name: name, Address: r.addr, State: r.state, Meta: r.meta})
			if r.state == StateLeft && r.origin.leave > 0 {
				st.Messages = append(st.Messages, pushMessage{Msg: message{Kind: msgLeave, Origin: name, Inc: r.origin.inc, Seq: r.origin.leave}})
			}
		}
	}
	addReports(&st, reports)
	if len(st.Messages) > maxPushEntries/2 || len(st.Gone) > maxPushEntries/2 {
		// Cannot happen with counted members only; a receiver would refuse it.
		st.Messages, st.Gone = st.Messages[:min(len(st.Messages), maxPushEntries/2)], st.Gone[:min(len(st.Gone), maxPushEntries/2)]
	}
	return st.encode()
}

// addOwnStateLocked adds this node's live hint and error text.
func (c *Cluster) addOwnStateLocked(st *pushState, now time.Time) {
	if h := c.ownHint; h.seq > 0 && now.Sub(h.at) < c.cfg.HintTTL {
		st.Messages = append(st.Messages, pushMessage{AgeMS: ageMS(now.Sub(h.at)), Msg: c.ownMessage(msgHint, h.seq, h.revision)})
	}
	if c.local.Error != "" && c.ownErrSeq > 0 {
		st.Messages = append(st.Messages, pushMessage{Msg: c.ownMessage(msgError, c.ownErrSeq, c.local.Error)})
	}
}

// addOriginLocked adds what member name has said: its live hint and error text.
func (c *Cluster) addOriginLocked(st *pushState, name string, r *memberRec, now time.Time) {
	o := r.origin
	if o.hint.seq > 0 && now.Sub(o.hint.at) < c.cfg.HintTTL {
		m := message{Kind: msgHint, Origin: name, Inc: o.inc, Seq: o.hint.seq, Payload: o.hint.revision}
		st.Messages = append(st.Messages, pushMessage{AgeMS: ageMS(now.Sub(o.hint.at)), Msg: m})
	}
	if o.err.seq > 0 && o.err.text != "" {
		st.Messages = append(st.Messages, pushMessage{Msg: message{Kind: msgError, Origin: name, Inc: o.inc, Seq: o.err.seq, Payload: o.err.text}})
	}
}

// maxPushHealth bounds the bytes of health reports in one push/pull state,
// so that they never crowd out the rest or push it over maxPushState.
const maxPushHealth = maxPushState / 2

// addReports adds whole health reports to st, in order, while they fit in
// maxPushHealth: one that does not fit is left out entirely (a part of one
// would never take effect), and is repaired by a later sync or broadcast.
func addReports(st *pushState, reports [][]message) {
	size := 0
	for _, msgs := range reports {
		n := 0
		for _, m := range msgs {
			n += 16 + len(m.Origin) + len(m.Payload)
		}
		if size+n > maxPushHealth {
			continue
		}
		size += n
		for _, m := range msgs {
			st.Messages = append(st.Messages, pushMessage{Msg: m})
		}
	}
}

func ageMS(d time.Duration) uint64 { return uint64(max(d, 0).Milliseconds()) }

// mergeRemoteState takes in another node's push/pull state as if its parts
// had arrived as gossip messages, under the same acceptance rules.
func (c *Cluster) mergeRemoteState(buf []byte) {
	if len(buf) == 0 {
		return
	}
	st, err := decodePushState(buf)
	if err != nil {
		c.log.Debug("ignoring push/pull state", "err", err)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for _, pm := range st.Messages {
		age := time.Duration(min(pm.AgeMS, uint64(c.cfg.HintTTL.Milliseconds()))) * time.Millisecond
		if pm.Msg.Kind == msgHint && age >= c.cfg.HintTTL {
			continue
		}
		c.takeLocked(pm.Msg, now.Add(-age))
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
	if len(c.members) >= maxPushEntries {
		return // a bound on what second-hand reports may make this node hold
	}
	r := &memberRec{addr: g.Address, ip: ipOfAddr(g.Address), state: g.State, since: now}
	c.setMetaLocked(r, g.Meta)
	c.members[g.Name] = r
	signal(c.raw)
}
