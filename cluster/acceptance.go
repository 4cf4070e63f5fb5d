package cluster

import (
	"errors"
	"time"
)

// Why a user message is refused. Inside an encrypted cluster every key
// holder can send anything; these rules make a message count only as what
// its origin may say: a current member that counts (or, for a leave intent,
// any known member), in the incarnation its meta announces, with a counter
// above the last one seen and not absurdly far above it.
var (
	errOwnMessage       = errors.New("a message of this node's own")
	errUnknownOrigin    = errors.New("origin is not a current member")
	errStrangerOrigin   = errors.New("origin does not count as a host")
	errOtherIncarnation = errors.New("not the incarnation the origin's meta announces")
	errOldMessage       = errors.New("counter not above the last one seen")
	errFarFuture        = errors.New("counter too far above the last one seen")
)

// admitLocked returns the record of m's origin if m may be taken in, or why
// it may not.
func (c *Cluster) admitLocked(m message) (*memberRec, error) {
	if m.Origin == c.cfg.Node {
		return nil, errOwnMessage
	}
	r, ok := c.members[m.Origin]
	if !ok || r.metaErr != nil {
		return nil, errUnknownOrigin
	}
	switch {
	case m.Kind == msgLeave:
		// A leave intent may arrive after memberlist's own leave message,
		// when the member is already gone; it only says left, not dead.
		if r.state == StateLeft {
			return nil, errOldMessage
		}
	case r.state != StateAlive:
		return nil, errUnknownOrigin
	case r.decoded.Observer || c.strangerLocked(m.Origin, r) != "":
		return nil, errStrangerOrigin
	}
	if m.Inc != r.decoded.Incarnation {
		return nil, errOtherIncarnation
	}
	if m.Seq <= r.origin.last(m.Kind) {
		return nil, errOldMessage
	}
	if m.Seq > r.origin.top+maxSeqJump {
		return nil, errFarFuture
	}
	return r, nil
}

// last is the counter of the newest message of kind taken in.
func (o *originRec) last(kind byte) uint64 {
	switch kind {
	case msgHint:
		return o.hint.seq
	case msgError:
		return o.err.seq
	case msgHealth:
		return o.health.last
	case msgCheck:
		return 0 // per check: takeCheckLocked compares
	default:
		return o.leave
	}
}

// takeLocked takes in a message from another node (sent at at) and reports
// whether it was new, and so worth passing on.
func (c *Cluster) takeLocked(m message, at time.Time) bool {
	if c.closed {
		return false
	}
	r, err := c.admitLocked(m)
	if err != nil {
		if !errors.Is(err, errOldMessage) && !errors.Is(err, errOwnMessage) {
			c.log.Debug("refusing gossip message", "kind", string(m.Kind), "origin", m.Origin, "seq", m.Seq, "reason", err)
		}
		return false
	}
	r.origin.top = max(r.origin.top, m.Seq)
	switch m.Kind {
	case msgHealth:
		return c.takeHealthLocked(r, m)
	case msgCheck:
		return c.takeCheckLocked(r, m)
	case msgHint:
		r.origin.hint = hintRec{seq: m.Seq, revision: m.Payload, at: at}
		c.offerHintLocked(m.Payload)
	case msgError:
		r.origin.err = errRec{seq: m.Seq, text: m.Payload}
		signal(c.raw)
	case msgLeave:
		r.origin.leave = m.Seq
		if r.state == StateDead {
			// memberlist's leave message overtook the intent.
			c.markLeftLocked(m.Origin, r)
			signal(c.raw)
		}
	}
	return true
}
