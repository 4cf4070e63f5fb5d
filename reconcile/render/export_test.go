package render

// Internals the external tests (package render_test) check.

// ChainName is chainName.
var ChainName = chainName

// Chain kinds, and the layout and depth limits the tests hold Render to.
const (
	KindDST          = kindDST
	KindPRO          = kindPRO
	KindPRT          = kindPRT
	KindSRC          = kindSRC
	KindSVC          = kindSVC
	KindSEP          = kindSEP
	MaxInlineSources = maxInlineSources
	MaxChainDepth    = maxChainDepth
)

// AddrBits and BitsAddr convert between an IPv4 address and its 32 bits.
var AddrBits, BitsAddr = addrBits, bitsAddr
