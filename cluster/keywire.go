package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Key operations travel as user messages over memberlist's reliable (TCP)
// path, encrypted with the current primary key: a request from the member
// that started the operation to every host, and each host's reply back.
//
//	request: 'k' id(8) origin inc(8) op(1) key(bytes, 0 to 32)
//	reply:   'K' id(8) node ok(1) error(bytes) count(uvarint) (fingerprint(8) primary(1))…
const (
	msgKeyOp    byte = 'k'
	msgKeyReply byte = 'K'

	maxKeyLen      = 32 // AES-256
	maxKeyError    = 256
	maxKeysInReply = 32
	fingerprintLen = 8 // bytes of a key's SHA-256 that identify it
)

// Key operation codes on the wire.
const (
	opList    byte = 'l'
	opInstall byte = 'i'
	opUse     byte = 'u'
	opRemove  byte = 'r'
)

// keyRequest asks a member to apply a key operation to its keyring.
type keyRequest struct {
	ID     uint64
	Origin string
	Inc    uint64 // the origin's incarnation, as for gossip messages
	Op     byte
	Key    []byte
}

// keyReply is one member's answer: whether the operation succeeded and the
// keys it holds afterwards, by fingerprint, primary first.
type keyReply struct {
	ID    uint64
	Node  string
	OK    bool
	Error string
	Keys  []heldKey
}

// heldKey is one key a member holds, by fingerprint.
type heldKey struct {
	Fingerprint [fingerprintLen]byte
	Primary     bool
}

func (q keyRequest) encode() []byte {
	b := []byte{msgKeyOp}
	b = binary.BigEndian.AppendUint64(b, q.ID)
	b = appendString(b, q.Origin)
	b = binary.BigEndian.AppendUint64(b, q.Inc)
	b = append(b, q.Op)
	return appendBytes(b, q.Key)
}

var errBadKeyMessage = errors.New("malformed key operation message")

func decodeKeyRequest(b []byte) (keyRequest, error) {
	var q keyRequest
	r := wireReader{b: b}
	if r.byte() != msgKeyOp && r.err == nil {
		return q, errBadKeyMessage
	}
	q.ID = r.uint64()
	q.Origin = r.string(maxName)
	q.Inc = r.uint64()
	q.Op = r.byte()
	q.Key = append([]byte(nil), r.bytes(maxKeyLen)...)
	if err := r.end(); err != nil {
		return keyRequest{}, fmt.Errorf("%w: %w", errBadKeyMessage, err)
	}
	switch q.Op {
	case opList, opInstall, opUse, opRemove:
	default:
		return keyRequest{}, fmt.Errorf("%w: operation %q", errBadKeyMessage, q.Op)
	}
	if q.Origin == "" || q.ID == 0 || (q.Op != opList) != (len(q.Key) > 0) {
		return keyRequest{}, fmt.Errorf("%w: no origin, id or key", errBadKeyMessage)
	}
	return q, nil
}

func (p keyReply) encode() []byte {
	b := []byte{msgKeyReply}
	b = binary.BigEndian.AppendUint64(b, p.ID)
	b = appendString(b, p.Node)
	b = append(b, boolByte(p.OK))
	b = appendString(b, truncateUTF8(p.Error, maxKeyError))
	keys := p.Keys[:min(len(p.Keys), maxKeysInReply)]
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = append(b, k.Fingerprint[:]...)
		b = append(b, boolByte(k.Primary))
	}
	return b
}

func decodeKeyReply(b []byte) (keyReply, error) {
	var p keyReply
	r := wireReader{b: b}
	if r.byte() != msgKeyReply && r.err == nil {
		return p, errBadKeyMessage
	}
	p.ID = r.uint64()
	p.Node = r.string(maxName)
	p.OK = r.byte() == 1
	p.Error = r.string(maxKeyError)
	n := r.uvarint()
	if r.err == nil && n > maxKeysInReply {
		return keyReply{}, fmt.Errorf("%w: %d keys", errBadKeyMessage, n)
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		var k heldKey
		copy(k.Fingerprint[:], r.fixed(fingerprintLen))
		k.Primary = r.byte() == 1
		p.Keys = append(p.Keys, k)
	}
	if err := r.end(); err != nil {
		return keyReply{}, fmt.Errorf("%w: %w", errBadKeyMessage, err)
	}
	if p.Node == "" || p.ID == 0 {
		return keyReply{}, fmt.Errorf("%w: no node or id", errBadKeyMessage)
	}
	return p, nil
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}
