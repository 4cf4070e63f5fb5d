package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// wireReader reads the fields of weir's binary gossip encodings in order and
// remembers the first error, so a decoder reads every field and checks once.
// Every length is checked against its bound before anything is allocated.
type wireReader struct {
	b   []byte
	err error
}

var errTruncated = errors.New("truncated")

func (r *wireReader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *wireReader) byte() byte {
	if r.err != nil || len(r.b) < 1 {
		r.fail(errTruncated)
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *wireReader) uint64() uint64 {
	if r.err != nil || len(r.b) < 8 {
		r.fail(errTruncated)
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *wireReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, k := binary.Uvarint(r.b)
	if k <= 0 {
		r.fail(errTruncated)
		return 0
	}
	r.b = r.b[k:]
	return v
}

// bytes reads a uvarint length of at most max and that many bytes, without
// copying them.
func (r *wireReader) bytes(max int) []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(max) {
		r.fail(fmt.Errorf("field of %d bytes (max %d)", n, max))
		return nil
	}
	if uint64(len(r.b)) < n {
		r.fail(errTruncated)
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *wireReader) string(max int) string { return string(r.bytes(max)) }

// end returns the first error, or one for bytes left over.
func (r *wireReader) end() error {
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%d trailing bytes", len(r.b))
	}
	return r.err
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

// fixed reads exactly n bytes, without copying them.
func (r *wireReader) fixed(n int) []byte {
	if r.err != nil || len(r.b) < n {
		r.fail(errTruncated)
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}
