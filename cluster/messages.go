package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
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
)

// maxErrorText bounds an error text on the wire, so that one message fits in a
// gossip packet (memberlist's UDPBufferSize is 1400 bytes) beside the others.
const maxErrorText = 512

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

// message is one decoded user message. Seq orders messages from one origin:
// a receiver keeps only the highest it has seen.
type message struct {
	Kind    byte
	Origin  string
	Seq     uint64
	Payload string
}

func (m message) encode() []byte {
	b := make([]byte, 0, 16+len(m.Origin)+len(m.Payload))
	b = append(b, m.Kind)
	b = binary.AppendUvarint(b, m.Seq)
	b = binary.AppendUvarint(b, uint64(len(m.Origin)))
	b = append(b, m.Origin...)
	b = binary.AppendUvarint(b, uint64(len(m.Payload)))
	return append(b, m.Payload...)
}

var errBadMessage = errors.New("malformed gossip message")

func decodeMessage(b []byte) (message, error) {
	var m message
	if len(b) < 1 {
		return m, errBadMessage
	}
	m.Kind = b[0]
	b = b[1:]
	seq, k := binary.Uvarint(b)
	if k <= 0 {
		return m, errBadMessage
	}
	m.Seq = seq
	b = b[k:]
	origin, b, ok := readString(b)
	if !ok {
		return m, errBadMessage
	}
	payload, b, ok := readString(b)
	if !ok || len(b) != 0 {
		return m, errBadMessage
	}
	m.Origin, m.Payload = origin, payload
	switch m.Kind {
	case msgHint, msgError, msgLeave:
	default:
		return m, fmt.Errorf("gossip message kind %q: %w", m.Kind, errBadMessage)
	}
	if m.Origin == "" {
		return m, fmt.Errorf("gossip message without origin: %w", errBadMessage)
	}
	return m, nil
}

func readString(b []byte) (string, []byte, bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return "", nil, false
	}
	return string(b[k : k+int(n)]), b[k+int(n):], true
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

// pushState is the user part of a push/pull state sync: what gossip may have
// missed. Ages, not timestamps, travel, so clock skew between nodes does not
// matter.
type pushState struct {
	V      int          `json:"v"`
	Hints  []pushHint   `json:"hints,omitempty"`
	Errors []pushError  `json:"errors,omitempty"`
	Leaves []pushLeave  `json:"leaves,omitempty"`
	Gone   []pushMember `json:"gone,omitempty"`
}

type pushHint struct {
	Origin   string `json:"o"`
	Seq      uint64 `json:"s"`
	Revision string `json:"r"`
	AgeMS    int64  `json:"age"`
}

type pushError struct {
	Origin string `json:"o"`
	Seq    uint64 `json:"s"`
	Text   string `json:"t"`
}

type pushLeave struct {
	Origin string `json:"o"`
	Seq    uint64 `json:"s"`
}

// pushMember is a dead or departed member, so that a node joining later (an
// observer in particular) also lists the members that are gone; memberlist's
// own state sync does not introduce unknown dead nodes.
type pushMember struct {
	Name    string `json:"n"`
	Address string `json:"a"`
	State   State  `json:"st"`
	Meta    []byte `json:"m,omitempty"`
}
