// Package source provides the places an agent reads its spec tree from: a Git
// repository (go-git, cloned under the state directory) or a watched local
// directory (fsnotify).
package source

import (
	"context"
	"io/fs"
)

// Snapshot is one revision of the spec tree.
type Snapshot struct {
	// Revision is the commit hash (Git) or "dir:" + sha256 over the sorted
	// (path, content) pairs of the tree (directory).
	Revision string
	// FS is the spec root at Revision (the repository's --path, or the watched
	// directory). Both sources return an immutable in-memory copy holding the
	// non-hidden *.yaml/*.yml files (each cut at MaxPassThrough bytes) and
	// symlinks with those names, kept as links (it implements fs.ReadLinkFS),
	// so the loader can reject oversized files and links leaving the tree.
	FS fs.FS
}

// Source is where specs come from.
type Source interface {
	// Latest returns the newest revision, fetching or re-reading now. A source
	// that cannot produce one (unreachable server, missing path, refused
	// signature) returns an error and the caller keeps what it has.
	Latest(ctx context.Context) (Snapshot, error)
	// Watch runs until ctx ends, calling changed whenever Latest may return a
	// new revision (a moved remote ref found by polling, or settled file events)
	// or a different error (a server, branch or directory gone or back). It
	// does not call changed again for what Latest already returned.
	Watch(ctx context.Context, changed func())
}
