package cluster

import (
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/hashicorp/memberlist"
)

// Members lists every node this one knows, sorted by name: itself, alive and
// suspect peers, and dead or departed peers seen in the last ReapAfter. It
// only reads: the reap loop deletes the members it leaves out. A member
// that does not count as a host says why in Stranger.
//
// A suspect peer is listed as alive: memberlist does not expose its suspect
// state safely (the State field of its Node copies is never updated), and
// for planning a suspect node counts as alive anyway.
func (c *Cluster) Members() []Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	out := make([]Member, 0, len(c.members)+1)
	out = append(out, c.selfLocked())
	for name, r := range c.members {
		if !c.expiredLocked(r, now) {
			out = append(out, c.memberLocked(name, r))
		}
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// selfLocked is this node as Members lists it.
func (c *Cluster) selfLocked() Member {
	state := StateAlive
	if c.left {
		state = StateLeft
	}
	self := &memberRec{ip: c.localIP, decoded: nodeMeta{Observer: c.cfg.Observer}}
	return Member{Name: c.cfg.Node, Address: c.localAddr, State: state, Observer: c.cfg.Observer,
		Stranger: c.strangerLocked(c.cfg.Node, self), Unhealthy: len(c.own.ids), NodeState: c.local}
}

func (c *Cluster) memberLocked(name string, r *memberRec) Member {
	m := Member{Name: name, Address: r.addr, State: r.state, Stranger: c.strangerLocked(name, r)}
	if r.metaErr != nil {
		return m
	}
	meta := r.decoded
	m.Observer = meta.Observer
	m.Revision, m.Digest, m.Balancers, m.Rules = meta.Revision, meta.Digest, meta.Balancers, meta.Rules
	if c.countsLocked(name, r) {
		m.Unhealthy = r.origin.health.failing
	}
	if meta.HasError {
		if t := r.origin.err; t.seq > 0 && errorCRC(t.text) == meta.ErrorCRC {
			m.Error = t.text
		} else {
			m.Error = "error reported; its text has not arrived yet"
		}
	}
	return m
}

// AliveHosts returns the sorted names of the nodes that count as alive for
// planning: alive or suspect, never observers, never strangers (README.md),
// this node included unless it is an observer, a stranger or has left.
func (c *Cluster) AliveHosts() []string {
	var out []string
	for _, m := range c.Members() {
		if m.Counts() {
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
		if r.state == StateAlive && r.metaErr == nil && !r.decoded.Observer {
			return false
		}
	}
	return true
}

// nodeEvent records a memberlist event. memberlist does not say whether a
// node that disappeared left or died (a Node's State field is never set), so
// a node is recorded as left when its leave intent arrived first, and
// takeLocked turns dead into left when the intent arrives after.
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
	r.ip = ipOf(n.Addr)
	c.setMetaLocked(r, n.Meta)
	switch state {
	case StateAlive:
		c.markAliveLocked(n.Name, r)
		if c.memberLocked(n.Name, r).Counts() {
			c.confirmLocked(r.decoded.Revision)
		}
	case StateDead:
		c.markGoneLocked(n.Name, r)
	}
	c.recountLocked()
	signal(c.raw)
}

// setMetaLocked records a member's meta. A new incarnation is a restarted
// node: what its previous run said no longer applies.
func (c *Cluster) setMetaLocked(r *memberRec, meta []byte) {
	r.meta = append([]byte(nil), meta...)
	r.decoded, r.metaErr = decodeMeta(r.meta)
	if r.decoded.Incarnation != r.origin.inc {
		r.origin = originRec{inc: r.decoded.Incarnation}
	}
}

// markAliveLocked records that member name is alive; the first peer that is
// neither an observer nor a stranger settles this node: a stranger must not
// make it treat the hosts it has not seen yet as dead.
func (c *Cluster) markAliveLocked(name string, r *memberRec) {
	observer := r.metaErr == nil && r.decoded.Observer
	stranger := c.strangerLocked(name, r)
	if r.state != StateAlive {
		r.since = c.now()
		r.origin.leave = 0
		c.log.Info("member alive", "member", name, "addr", r.addr, "observer", observer, "stranger", stranger)
	}
	r.state = StateAlive
	if !observer && stranger == "" && !c.settled {
		c.settled = true
	}
}

// markGoneLocked records that member name disappeared: left if its leave
// intent arrived, dead otherwise.
func (c *Cluster) markGoneLocked(name string, r *memberRec) {
	r.state, r.since = StateDead, c.now()
	if r.origin.leave > 0 {
		c.markLeftLocked(name, r)
	}
	c.log.Info("member gone", "member", name, "addr", r.addr, "state", r.state, "observer", r.decoded.Observer)
}

// markLeftLocked records that member name left on purpose. What it said is
// pruned but its leave intent, which push/pull passes on; an observer that
// said goodbye leaves no trace worth listing.
func (c *Cluster) markLeftLocked(name string, r *memberRec) {
	r.state = StateLeft
	r.origin = originRec{inc: r.origin.inc, top: r.origin.top, leave: r.origin.leave}
	if r.decoded.Observer {
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

// ipOf converts memberlist's address to a comparable one (IPv4 unmapped).
func ipOf(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

// ipOfAddr is the IP of an "IP:PORT" address; the zero Addr if it has none.
func ipOfAddr(hostport string) netip.Addr {
	ap, err := netip.ParseAddrPort(hostport)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
