// Package examples embeds the example spec trees, so the demo and tests use the
// same files a newcomer reads instead of copies of them.
package examples

import "embed"

// FS holds the example trees: basic/, weighted/, multi/ and health/.
//
//go:embed basic weighted multi health
var FS embed.FS
