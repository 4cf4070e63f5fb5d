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
	// FS is the spec root at Revision (the repository's --path, or the watched directory).
	FS fs.FS
}

// Source is where specs come from.
type Source interface {
	// Latest returns the newest revision, fetching or re-reading now. A source
	// that cannot produce one (unreachable server, missing path, refused
	// signature) returns an error and the caller keeps what it has.
	Latest(ctx context.Context) (Snapshot, error)
	// Watch runs until ctx ends, calling changed whenever Latest may return a
	// new revision (a moved remote ref found by polling, or settled file events).
	Watch(ctx context.Context, changed func())
}
