package cluster

import (
	"errors"
	"fmt"

	"github.com/hashicorp/memberlist"
)

// The user part of a push/pull state sync: what gossip may have missed. It is
// a list of entries, each a user message (hint, error text or leave intent)
// with its age, or a member that is gone. Ages, not timestamps, travel, so
// clock skew between nodes does not matter.
//
//	version(1) count(uvarint) entry…
//	entry: 'm' age_ms(uvarint) message(bytes)
//	     | 'g' name addr state(1) meta(bytes)
const (
	pushVersion    = 2
	entryMessage   = 'm'
	entryGone      = 'g'
	maxPushEntries = 8192
	maxPushState   = 1 << 20
	maxAddr        = 64 // "[IPv6%zone]:port"
)

// pushState is a decoded push/pull state.
type pushState struct {
	Messages []pushMessage
	Gone     []pushMember
}

// pushMessage is a user message as a push/pull state carries it.
type pushMessage struct {
	AgeMS uint64
	Msg   message
}

// pushMember is a dead or departed member, so that a node joining later (an
// observer in particular) also lists the members that are gone; memberlist's
// own state sync does not introduce unknown dead nodes.
type pushMember struct {
	Name    string
	Address string
	State   State
	Meta    []byte
}

func (st pushState) encode() []byte {
	b := []byte{pushVersion}
	b = appendUvarint(b, uint64(len(st.Messages)+len(st.Gone)))
	for _, m := range st.Messages {
		b = append(b, entryMessage)
		b = appendUvarint(b, m.AgeMS)
		b = appendBytes(b, m.Msg.encode())
	}
	for _, g := range st.Gone {
		b = append(b, entryGone)
		b = appendString(b, g.Name)
		b = appendString(b, g.Address)
		b = append(b, goneStateByte(g.State))
		b = appendBytes(b, g.Meta)
	}
	return b
}

var errBadPushState = errors.New("malformed push/pull state")

// decodePushState parses what encode wrote. It refuses a state over
// maxPushState bytes or maxPushEntries entries before decoding any, and
// every entry that a message or member could not be.
func decodePushState(b []byte) (pushState, error) {
	var st pushState
	if len(b) > maxPushState {
		return st, fmt.Errorf("push/pull state of %d bytes (max %d): %w", len(b), maxPushState, errBadPushState)
	}
	r := wireReader{b: b}
	if v := r.byte(); r.err == nil && v != pushVersion {
		return st, fmt.Errorf("push/pull state version %d not understood (this weir reads %d): %w", v, pushVersion, errBadPushState)
	}
	n := r.uvarint()
	if r.err == nil && n > maxPushEntries {
		return st, fmt.Errorf("push/pull state of %d entries (max %d): %w", n, maxPushEntries, errBadPushState)
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		if err := st.decodeEntry(&r); err != nil {
			return pushState{}, fmt.Errorf("push/pull state entry %d: %w: %w", i, errBadPushState, err)
		}
	}
	if err := r.end(); err != nil {
		return pushState{}, fmt.Errorf("%w: %w", errBadPushState, err)
	}
	return st, nil
}

func (st *pushState) decodeEntry(r *wireReader) error {
	switch tag := r.byte(); tag {
	case entryMessage:
		age := r.uvarint()
		raw := r.bytes(maxMessage)
		if r.err != nil {
			return r.err
		}
		m, err := decodeMessage(raw)
		if err != nil {
			return err
		}
		st.Messages = append(st.Messages, pushMessage{AgeMS: age, Msg: m})
	case entryGone:
		g := pushMember{Name: r.string(maxName), Address: r.string(maxAddr)}
		g.State = goneState(r.byte())
		g.Meta = append([]byte(nil), r.bytes(memberlist.MetaMaxSize)...)
		if r.err != nil {
			return r.err
		}
		if g.Name == "" || g.State == "" {
			return errors.New("gone member without name or state")
		}
		st.Gone = append(st.Gone, g)
	default:
		if r.err != nil {
			return r.err
		}
		return fmt.Errorf("unknown entry %q", tag)
	}
	return nil
}

func goneStateByte(s State) byte {
	if s == StateLeft {
		return 'l'
	}
	return 'd'
}

// goneState is the State a gone entry names; "" for anything else.
func goneState(b byte) State {
	switch b {
	case 'l':
		return StateLeft
	case 'd':
		return StateDead
	}
	return ""
}
