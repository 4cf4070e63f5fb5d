package cluster

import (
	"slices"
	"strings"

	"github.com/hashicorp/memberlist"
)

// Members lists every node this one knows, sorted by name: itself, alive and
// suspect peers, and dead or departed peers seen in the last ReapAfter. It
// only reads: the reap loop deletes the members it leaves out.
//
// A suspect peer is listed as alive: memberlist does not expose its suspect
// state safely (the State field of its Node copies is never updated), and
// for planning a suspect node counts as alive anyway.
func (c *Cluster) Members() []Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	out := make([]Member, 0, len(c.members)+1)
	selfState := StateAlive
	if c.left {
		selfState = StateLeft
	}
	out = append(out, Member{Name: c.cfg.Node, Address: c.localAddr, State: selfState, Observer: c.cfg.Observer, NodeState: c.local})
	for name, r := range c.members {
		if !c.expiredLocked(r, now) {
			out = append(out, c.memberLocked(name, r))
		}
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (c *Cluster) memberLocked(name string, r *memberRec) Member {
	m := Member{Name: name, Address: r.addr, State: r.state}
	meta, err := decodeMeta(r.meta)
	if err != nil {
		m.Error = err.Error()
		return m
	}
	m.Observer = meta.Observer
	m.Revision, m.Digest, m.Balancers, m.Rules = meta.Revision, meta.Digest, meta.Balancers, meta.Rules
	if meta.HasError {
		if t, ok := c.errTexts[name]; ok && errorCRC(t.text) == meta.ErrorCRC {
			m.Error = t.text
		} else {
			m.Error = "error reported; its text has not arrived yet"
		}
	}
	return m
}

// AliveHosts returns the sorted names of the nodes that count as alive for
// planning: alive or suspect, never observers, this node included unless it
// is an observer or has left.
func (c *Cluster) AliveHosts() []string {
	var out []string
	for _, m := range c.Members() {
		if !m.Observer && (m.State == StateAlive || m.State == StateSuspect) {
			out = append(out, m.Name)
		}
	}
	return out
}

// alone reports whether no other non-observer node is alive in this node's view.
func (c *Cluster) alone() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.members {
		if r.state == StateAlive && !metaIsObserver(r.meta) {
			return false
		}
	}
	return true
}

func metaIsObserver(b []byte) bool {
	m, err := decodeMeta(b)
	return err == nil && m.Observer
}

// nodeEvent records a memberlist event. memberlist does not say whether a
// node that disappeared left or died (a Node's State field is never set), so
// a node is recorded as left when its leave intent arrived first, and
// applyLocked turns dead into left when the intent arrives after.
func (c *Cluster) nodeEvent(n *memberlist.Node, state State) {
	if n.Name == c.cfg.Node {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.members[n.Name]
	if !ok {
		r = &memberRec{}
		c.members[n.Name] = r
	}
	r.addr = n.Address()
	r.meta = append([]byte(nil), n.Meta...)
	switch state {
	case StateAlive:
		c.markAliveLocked(n.Name, r)
	case StateDead:
		c.markGoneLocked(n.Name, r)
	}
	c.recountLocked()
	signal(c.raw)
}

// markAliveLocked records that member name is alive; the first peer that is
// not an observer settles this node.
func (c *Cluster) markAliveLocked(name string, r *memberRec) {
	observer := metaIsObserver(r.meta)
	if r.state != StateAlive {
		r.since = c.now()
		delete(c.leaves, name)
		c.log.Info("member alive", "member", name, "addr", r.addr, "observer", observer)
	}
	r.state = StateAlive
	if !observer && !c.settled {
		c.settled = true
	}
}

// markGoneLocked records that member name disappeared: left if its leave
// intent arrived, dead otherwise.
func (c *Cluster) markGoneLocked(name string, r *memberRec) {
	observer := metaIsObserver(r.meta)
	state := StateDead
	if _, ok := c.leaves[name]; ok {
		state = StateLeft
	}
	r.state, r.since = state, c.now()
	c.log.Info("member gone", "member", name, "addr", r.addr, "state", state, "observer", observer)
	if observer && state == StateLeft {
		// An observer that said goodbye leaves no trace worth listing.
		delete(c.members, name)
	}
}

// recountLocked refreshes the alive count the broadcast queue scales with.
func (c *Cluster) recountLocked() {
	n := int64(1)
	for _, r := range c.members {
		if r.state == StateAlive {
			n++
		}
	}
	c.numNodes.Store(n)
}

// nameConflict reports another node claiming this node's name from a
// different address: two agents were given the same --node.
func (c *Cluster) nameConflict(existing, other *memberlist.Node) {
	c.log.Error("two nodes claim one name; give each agent its own --node",
		"name", existing.Name, "known_addr", existing.Address(), "other_addr", other.Address())
}
