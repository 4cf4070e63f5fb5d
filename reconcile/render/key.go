package render

import (
	"cmp"
	"math/bits"
	"net/netip"
)

// key is a dispatch trie key of up to 128 bits, right-aligned: an IPv4
// address is its 32 bits in lo, an IPv6 address its 128 bits, a port its
// 16 bits in lo. The trie code takes the key's width (32, 128 or 16) beside
// it, so the same code splits both families' frontends and their ports.
type key struct{ hi, lo uint64 }

// Widths of the trie keys.
const (
	width4    = 32
	width6    = 128
	widthPort = 16
)

// addrKey returns the key of address a and the width of its family.
func addrKey(a netip.Addr) (key, int) {
	a = a.Unmap()
	if a.Is4() {
		return key{lo: uint64(addrBits(a))}, width4
	}
	b := a.As16()
	return key{hi: be64(b[:8]), lo: be64(b[8:])}, width6
}

// keyAddr is the address of key k of width width (width4 or width6).
func keyAddr(k key, width int) netip.Addr {
	if width == width4 {
		return bitsAddr(uint32(k.lo))
	}
	var b [16]byte
	for i := range 8 {
		b[i] = byte(k.hi >> (56 - 8*i))
		b[8+i] = byte(k.lo >> (56 - 8*i))
	}
	return netip.AddrFrom16(b)
}

func be64(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

// shr returns k shifted right by n bits (0 ≤ n ≤ 128).
func (k key) shr(n int) key {
	switch {
	case n == 0:
		return k
	case n >= 128:
		return key{}
	case n >= 64:
		return key{lo: k.hi >> (n - 64)}
	}
	return key{hi: k.hi >> n, lo: k.lo>>n | k.hi<<(64-n)}
}

func (k key) and(m key) key { return key{k.hi & m.hi, k.lo & m.lo} }

func compareKey(a, b key) int { return cmp.Or(cmp.Compare(a.hi, b.hi), cmp.Compare(a.lo, b.lo)) }

// leadingZeros counts the leading zero bits of k as a 128-bit number.
func (k key) leadingZeros() int {
	if k.hi != 0 {
		return bits.LeadingZeros64(k.hi)
	}
	return 64 + bits.LeadingZeros64(k.lo)
}

// low returns the key with the low n bits set (0 ≤ n ≤ 128).
func low(n int) key {
	switch {
	case n >= 128:
		return key{^uint64(0), ^uint64(0)}
	case n >= 64:
		return key{hi: uint64(1)<<(n-64) - 1, lo: ^uint64(0)}
	}
	return key{lo: uint64(1)<<n - 1}
}

// commonPrefix returns the longest common prefix of a and b (width bits
// wide) as a masked key and its length.
func commonPrefix(a, b key, width int) (key, int) {
	n := width
	if x := (key{a.hi ^ b.hi, a.lo ^ b.lo}); x != (key{}) {
		n = x.leadingZeros() - (128 - width)
	}
	return a.and(prefixMask(n, width)), n
}

// prefixMask is the mask of the first n of width bits.
func prefixMask(n, width int) key {
	all, rest := low(width), low(width-n)
	return key{all.hi &^ rest.hi, all.lo &^ rest.lo}
}
