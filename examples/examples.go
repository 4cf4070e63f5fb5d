// Package examples embeds the example spec trees, so the demo and tests use the
// same files a newcomer reads instead of copies of them.
package examples

import "embed"

// FS holds the example trees: basic/, weighted/, multi/, health/ and dualstack/.
//
//go:embed basic weighted multi health dualstack
var FS embed.FS
