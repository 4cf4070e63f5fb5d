package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"strings"

	"github.com/hashicorp/memberlist"
)

// metaVersion is the first byte of every node meta this code writes. A node
// that reads a version it does not know lists the member as a stranger with
// the reason instead of guessing, so mixed versions show up in `weir status`
// rather than as silently wrong numbers. Version 2 added the incarnation.
const metaVersion = 2

// maxMetaString bounds the revision and digest carried in node meta. With both
// at this bound the encoding stays near 300 bytes, well under memberlist's
// MetaMaxSize (512), so NodeMeta never has to truncate.
const maxMetaString = 128

// Flag bits of the second meta byte.
const (
	flagObserver = 1 << 0 // a status observer: never a host
	flagError    = 1 << 1 // the node has an error; its text travels separately
)

// String encodings inside the meta. Revisions and digests are almost always
// lowercase hex (a commit id, "dir:"+sha256, a sha256 digest), which packs
// into half the bytes; anything else is stored verbatim.
const (
	strRaw    = 0
	strHex    = 1
	strDirHex = 2
)

// ErrMetaTooLarge is returned by SetLocal when the revision or digest is too
// long to announce in node meta.
var ErrMetaTooLarge = errors.New("node state too large for gossip meta")

// nodeMeta is what one node announces in its memberlist meta.
type nodeMeta struct {
	Observer bool
	// Incarnation is chosen at random when the node starts and never
	// changes while it runs: the node's user messages carry it, and a
	// receiver takes a message only for the incarnation the origin's
	// current meta announces, so a restarted node's counters start afresh.
	Incarnation uint64
	Revision    string
	Digest      string
	Balancers   int
	Rules       int
	// ErrorCRC is the CRC-32 (IEEE) of the error text, 0 when healthy. The
	// text itself travels by broadcast and push/pull; the checksum lets a
	// receiver tell whether the text it holds is the one this meta refers to.
	ErrorCRC uint32
	HasError bool
}

// errorCRC returns the checksum meta carries for an error text. An empty text
// has no checksum; a non-empty text whose CRC happens to be 0 is mapped to 1
// so "has an error" never depends on the checksum value alone.
func errorCRC(text string) uint32 {
	if text == "" {
		return 0
	}
	c := crc32.ChecksumIEEE([]byte(text))
	if c == 0 {
		c = 1
	}
	return c
}

func metaFromState(s NodeState, observer bool, incarnation uint64) nodeMeta {
	return nodeMeta{
		Observer:    observer,
		Incarnation: incarnation,
		Revision:    s.Revision,
		Digest:      s.Digest,
		Balancers:   s.Balancers,
		Rules:       s.Rules,
		ErrorCRC:    errorCRC(s.Error),
		HasError:    s.Error != "",
	}
}

// encodeMeta renders m in the compact binary form:
//
//	version(1) flags(1) incarnation(8) revision digest balancers(uvarint) rules(uvarint) [errorCRC(4)]
//
// where each string is a tag byte (raw, hex, "dir:"+hex) followed by a uvarint
// length and the bytes.
func encodeMeta(m nodeMeta) ([]byte, error) {
	if len(m.Revision) > maxMetaString {
		return nil, fmt.Errorf("revision of %d bytes (max %d): %w", len(m.Revision), maxMetaString, ErrMetaTooLarge)
	}
	if len(m.Digest) > maxMetaString {
		return nil, fmt.Errorf("digest of %d bytes (max %d): %w", len(m.Digest), maxMetaString, ErrMetaTooLarge)
	}
	if m.Balancers < 0 || m.Rules < 0 {
		return nil, fmt.Errorf("negative counts %d balancers, %d rules", m.Balancers, m.Rules)
	}
	b := make([]byte, 0, 96)
	var flags byte
	if m.Observer {
		flags |= flagObserver
	}
	if m.HasError {
		flags |= flagError
	}
	b = append(b, metaVersion, flags)
	b = binary.BigEndian.AppendUint64(b, m.Incarnation)
	b = appendMetaString(b, m.Revision)
	b = appendMetaString(b, m.Digest)
	b = binary.AppendUvarint(b, uint64(m.Balancers))
	b = binary.AppendUvarint(b, uint64(m.Rules))
	if m.HasError {
		b = binary.BigEndian.AppendUint32(b, m.ErrorCRC)
	}
	return b, nil
}

func appendMetaString(b []byte, s string) []byte {
	tag, payload := byte(strRaw), []byte(s)
	if rest, ok := strings.CutPrefix(s, "dir:"); ok && isLowerHex(rest) {
		tag, payload = strDirHex, hexBytes(rest)
	} else if isLowerHex(s) {
		tag, payload = strHex, hexBytes(s)
	}
	b = append(b, tag)
	b = binary.AppendUvarint(b, uint64(len(payload)))
	return append(b, payload...)
}

// isLowerHex reports whether s is a non-empty, even-length, lowercase hex
// string: exactly the strings that survive a hex round trip unchanged.
func isLowerHex(s string) bool {
	if s == "" || len(s)%2 != 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func hexBytes(s string) []byte {
	out := make([]byte, len(s)/2)
	for i := range out {
		out[i] = unhex(s[2*i])<<4 | unhex(s[2*i+1])
	}
	return out
}

func unhex(c byte) byte {
	if c >= 'a' {
		return c - 'a' + 10
	}
	return c - '0'
}

const hexDigits = "0123456789abcdef"

func toHex(b []byte) string {
	out := make([]byte, 2*len(b))
	for i, v := range b {
		out[2*i], out[2*i+1] = hexDigits[v>>4], hexDigits[v&0xf]
	}
	return string(out)
}

// decodeMeta parses what encodeMeta wrote. It reads at most
// memberlist.MetaMaxSize bytes and refuses trailing bytes, unknown flags,
// strings over maxMetaString and counts that do not fit an int32.
func decodeMeta(b []byte) (nodeMeta, error) {
	var m nodeMeta
	if len(b) < 2 || len(b) > memberlist.MetaMaxSize {
		return m, fmt.Errorf("node meta of %d bytes: want 2 to %d", len(b), memberlist.MetaMaxSize)
	}
	if b[0] != metaVersion {
		return m, fmt.Errorf("node meta version %d not understood (this weir reads %d)", b[0], metaVersion)
	}
	flags := b[1]
	if flags&^(flagObserver|flagError) != 0 {
		return m, fmt.Errorf("node meta flags %#x not understood", flags)
	}
	m.Observer = flags&flagObserver != 0
	m.HasError = flags&flagError != 0
	r := wireReader{b: b[2:]}
	m.Incarnation = r.uint64()
	m.Revision = metaString(&r)
	m.Digest = metaString(&r)
	m.Balancers = metaCount(&r)
	m.Rules = metaCount(&r)
	if m.HasError {
		if crc := r.fixed(4); crc != nil {
			m.ErrorCRC = binary.BigEndian.Uint32(crc)
		}
	}
	if err := r.end(); err != nil {
		return nodeMeta{}, fmt.Errorf("decoding node meta: %w", err)
	}
	return m, nil
}

// metaString reads a tagged meta string (raw, hex or "dir:"+hex) of at
// most maxMetaString bytes once expanded.
func metaString(r *wireReader) string {
	tag := r.byte()
	payload := r.bytes(maxMetaString)
	if r.err != nil {
		return ""
	}
	var s string
	switch tag {
	case strRaw:
		s = string(payload)
	case strHex:
		s = toHex(payload)
	case strDirHex:
		s = "dir:" + toHex(payload)
	default:
		r.fail(fmt.Errorf("unknown string tag %d", tag))
		return ""
	}
	if len(s) > maxMetaString {
		r.fail(fmt.Errorf("string of %d bytes (max %d)", len(s), maxMetaString))
		return ""
	}
	return s
}

// metaCount reads a balancer or rule count: a uvarint that fits an int32.
func metaCount(r *wireReader) int {
	v := r.uvarint()
	if v > math.MaxInt32 {
		r.fail(fmt.Errorf("count %d out of range", v))
		return 0
	}
	return int(v)
}
