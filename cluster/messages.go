package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/hashicorp/memberlist"
)

// User messages weir sends over memberlist's gossip. memberlist itself only
// sends a delegate broadcast from the node that queued it, a limited number of
// times; to reach every node, a receiver that learns something new queues the
// same message again (epidemic re-broadcast, as Serf does for user events),
// and push/pull state sync (LocalState) repairs anything the gossip missed.
const (
	msgHint  byte = 'h' // origin fetched a new revision: payload is the revision
	msgError byte = 'e' // origin's error text (empty when cleared)
	msgLeave byte = 'l' // origin is leaving on purpose: report it left, not dead
	// msgHealth is one page of origin's health report: the endpoint checks
	// of its own guests that fail (healthwire.go).
	msgHealth byte = 'u'
	// msgCheck says that one endpoint check of origin's own guests now
	// fails or passes (healthwire.go).
	msgCheck byte = 't'
)

// Bounds of a user message, checked on receipt before anything is
// allocated. maxErrorText keeps one message inside a gossip packet
// (memberlist's UDPBufferSize is 1400 bytes) beside the others.
const (
	maxErrorText  = 512
	maxName       = 128 // a node name: a DNS label for hosts, longer for observers
	maxPayloadLen = max(maxErrorText, maxHealthPayload)
	maxMessage    = 1 + 8 + binary.MaxVarintLen64 + 2*binary.MaxVarintLen16 + maxName + maxPayloadLen
)

// maxSeqJump is how far above the highest counter seen from an origin's
// incarnation a message may be. An origin sends a message per state change
// or fetched revision, so a real gap never comes near it; a counter beyond
// it is a forgery meant to make receivers ignore the origin's real messages.
const maxSeqJump = 1 << 20

// truncateUTF8 cuts s to at most max bytes, on a rune boundary, ending in "…"
// when it cut.
func truncateUTF8(s string, max int) string {
	if len(s) <= max {
		return s
	}
	const ell = "…"
	cut := max - len(ell)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ell
}

// message is one decoded user message. Inc is the origin's incarnation (its
// meta announces it) and Seq a counter within it, from 1: a receiver keeps
// the highest counter of each kind it has seen from the origin's current
// incarnation.
type message struct {
	Kind    byte
	Origin  string
	Inc     uint64
	Seq     uint64
	Payload string
}

// encode renders m as kind(1) inc(8) seq(uvarint) origin payload, each
// string a uvarint length and its bytes.
func (m message) encode() []byte {
	b := make([]byte, 0, 24+len(m.Origin)+len(m.Payload))
	b = append(b, m.Kind)
	b = binary.BigEndian.AppendUint64(b, m.Inc)
	b = binary.AppendUvarint(b, m.Seq)
	b = appendString(b, m.Origin)
	return appendString(b, m.Payload)
}

var errBadMessage = errors.New("malformed gossip message")

// maxPayload is the longest payload a message kind may carry: a revision
// for a hint, an error text, a page of a health report, nothing for a leave
// intent.
func maxPayload(kind byte) (int, bool) {
	switch kind {
	case msgHint:
		return maxMetaString, true
	case msgError:
		return maxErrorText, true
	case msgLeave:
		return 0, true
	case msgHealth:
		return maxHealthPayload, true
	case msgCheck:
		return checkIDLen + 1, true
	}
	return 0, false
}

// decodeMessage parses what encode wrote, refusing anything longer than
// maxMessage, an unknown kind, strings over their bounds, a zero incarnation
// or counter, an empty origin, trailing bytes, and a health page that does
// not decode or whose counter is not above its part number.
func decodeMessage(b []byte) (message, error) {
	var m message
	if len(b) < 10 || len(b) > maxMessage {
		return m, fmt.Errorf("gossip message of %d bytes: %w", len(b), errBadMessage)
	}
	m.Kind = b[0]
	limit, ok := maxPayload(m.Kind)
	if !ok {
		return m, fmt.Errorf("gossip message kind %q: %w", m.Kind, errBadMessage)
	}
	r := wireReader{b: b[1:]}
	m.Inc = r.uint64()
	m.Seq = r.uvarint()
	m.Origin = r.string(maxName)
	m.Payload = r.string(limit)
	if err := r.end(); err != nil {
		return message{}, fmt.Errorf("gossip message %q: %w: %w", m.Kind, errBadMessage, err)
	}
	if m.Origin == "" || m.Inc == 0 || m.Seq == 0 {
		return message{}, fmt.Errorf("gossip message without origin, incarnation or counter: %w", errBadMessage)
	}
	if m.Kind == msgCheck {
		if _, _, err := decodeCheck(m.Payload); err != nil {
			return message{}, fmt.Errorf("gossip message %q: %w: %w", m.Kind, errBadMessage, err)
		}
	}
	if m.Kind == msgHealth {
		p, err := decodeHealthPage(m.Payload)
		if err != nil {
			return message{}, fmt.Errorf("gossip message %q: %w: %w", m.Kind, errBadMessage, err)
		}
		if m.Seq <= uint64(p.Part) {
			return message{}, fmt.Errorf("health page %d with counter %d: %w", p.Part, m.Seq, errBadMessage)
		}
	}
	return m, nil
}

// broadcast is a queued user message. It is a memberlist.NamedBroadcast named
// by kind and origin, so the queue holds only the newest message of each kind
// per origin: a second hint from a node replaces its first instead of
// travelling beside it.
type broadcast struct {
	name string
	msg  []byte
	done chan struct{} // closed-once signal for Leave; nil otherwise
}

var _ memberlist.NamedBroadcast = (*broadcast)(nil)

func newBroadcast(m message, done chan struct{}) *broadcast {
	return &broadcast{name: string(m.Kind) + "/" + m.Origin, msg: m.encode(), done: done}
}

// relayBroadcast is a message from another node passed on, named as its
// origin named it: the transitions of several checks, or the pages of one
// report, must not replace one another in the queue.
func relayBroadcast(m message) *broadcast {
	switch m.Kind {
	case msgCheck:
		id, _, _ := decodeCheck(m.Payload)
		return newPartBroadcast(m, id.String())
	case msgHealth:
		p, _ := decodeHealthPage(m.Payload)
		return newPartBroadcast(m, strconv.Itoa(p.Part))
	}
	return newBroadcast(m, nil)
}

// newPartBroadcast is a queued message named by kind, origin and part: the
// pages of one health report travel side by side, a newer report's page
// replaces the same page of an older one, and a newer transition of a check
// replaces an older one of the same check still queued.
func newPartBroadcast(m message, part string) *broadcast {
	return &broadcast{name: string(m.Kind) + "/" + m.Origin + "/" + part, msg: m.encode()}
}

// Invalidates reports whether b supersedes other: same kind, same origin.
func (b *broadcast) Invalidates(other memberlist.Broadcast) bool {
	o, ok := other.(*broadcast)
	return ok && o.name == b.name
}

// Name is the key memberlist's queue uses to replace older messages.
func (b *broadcast) Name() string { return b.name }

// Message is the encoded user message.
func (b *broadcast) Message() []byte { return b.msg }

// Finished signals Leave, which waits for its intent to be sent out.
func (b *broadcast) Finished() {
	if b.done != nil {
		select {
		case b.done <- struct{}{}:
		default:
		}
	}
}
