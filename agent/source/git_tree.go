package source

import (
	"fmt"
	"io"
	"io/fs"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"

	"weir/spec"
)

// specTree returns the tree at Path in the commit.
func (g *Git) specTree(c *object.Commit) (*object.Tree, error) {
	root, err := c.Tree()
	if err != nil {
		return nil, fmt.Errorf("git source %s: reading tree of %s: %w", g.name, short(c.Hash), err)
	}
	if g.cfg.Path == "" {
		return root, nil
	}
	notFound := &kindError{
		msg:  fmt.Sprintf("path %q not found at commit %s of %s", g.cfg.Path, short(c.Hash), g.name),
		kind: ErrPathNotFound,
	}
	e, err := root.FindEntry(g.cfg.Path)
	if err != nil {
		return nil, notFound
	}
	if e.Mode != filemode.Dir {
		notFound.msg = fmt.Sprintf("path %q at commit %s of %s is not a directory", g.cfg.Path, short(c.Hash), g.name)
		return nil, notFound
	}
	return root.Tree(g.cfg.Path)
}

// maxLinkTarget bounds how much of a symlink blob is read as its target, as
// PATH_MAX does on Linux.
const maxLinkTarget = 4096

// blobNodes are the regular files of a snapshot by the hash of their Git
// blob, so that the next snapshot reads only the blobs that changed.
type blobNodes map[plumbing.Hash]*memNode

// snapshotTree copies the spec files and symlinks of tree into a snapshot,
// taking the files whose blobs prev holds from there, and returns the
// snapshot's own blobNodes.
func snapshotTree(objects storer.EncodedObjectStorer, tree *object.Tree, prev blobNodes) (Snapshot, blobNodes, error) {
	b := newSnapshotBuilder()
	blobs := blobNodes{}
	w := object.NewTreeWalker(tree, true, nil)
	defer w.Close()
	for {
		name, e, err := w.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Snapshot{}, nil, err
		}
		if e.Mode == filemode.Dir || e.Mode == filemode.Submodule || !spec.IsSpecFile(name) || spec.IsHiddenPath(name) {
			continue
		}
		if n, ok := prev[e.Hash]; ok && e.Mode != filemode.Symlink && !b.pastTreeSize(n.size) {
			b.reuse(name, n)
		} else if err := addTreeEntry(b, objects, name, e); err != nil {
			return Snapshot{}, nil, fmt.Errorf("%s: %w", name, err)
		}
		if n := b.nodes[name]; e.Mode != filemode.Symlink && n.summed {
			blobs[e.Hash] = n
		}
		if b.full() {
			break
		}
	}
	if err := b.addLinkTargets(gitTree{objects, tree}); err != nil {
		return Snapshot{}, nil, err
	}
	files, _ := b.finish()
	return Snapshot{FS: files}, blobs, nil
}

// addTreeEntry adds the file or symlink e, at name, to b.
func addTreeEntry(b *snapshotBuilder, objects storer.EncodedObjectStorer, name string, e object.TreeEntry) error {
	blob, err := object.GetBlob(objects, e.Hash)
	if err != nil {
		return err
	}
	if e.Mode != filemode.Symlink && b.pastTreeSize(blob.Size) {
		return b.addFile(name, nil, blob.Size) // its size is enough to refuse the tree
	}
	r, err := blob.Reader()
	if err != nil {
		return err
	}
	defer r.Close()
	if e.Mode != filemode.Symlink {
		return b.addFile(name, r, blob.Size)
	}
	target, err := io.ReadAll(io.LimitReader(r, maxLinkTarget))
	if err != nil {
		return err
	}
	b.addSymlink(name, string(target))
	return nil
}

// gitTree is a linkTree over a tree object.
type gitTree struct {
	objects storer.EncodedObjectStorer
	tree    *object.Tree
}

// Lstat implements spec.LinkReader; only the type bits of the mode are set.
func (t gitTree) Lstat(p string) (fs.FileInfo, error) {
	e, err := t.tree.FindEntry(p)
	if err != nil {
		return nil, err
	}
	switch e.Mode {
	case filemode.Dir:
		return entryInfo{e.Name, fs.ModeDir}, nil
	case filemode.Symlink:
		return entryInfo{e.Name, fs.ModeSymlink}, nil
	case filemode.Regular, filemode.Executable, filemode.Deprecated:
		return entryInfo{e.Name, 0}, nil
	}
	return nil, fmt.Errorf("%s: unsupported git file mode %s", p, e.Mode)
}

// ReadLink implements spec.LinkReader.
func (t gitTree) ReadLink(p string) (string, error) {
	r, err := t.open(p)
	if err != nil {
		return "", err
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, maxLinkTarget))
	return string(b), err
}

// entryInfo is the fs.FileInfo of a tree entry: its name and type.
type entryInfo struct {
	name string
	mode fs.FileMode
}

func (i entryInfo) Name() string       { return i.name }
func (i entryInfo) Size() int64        { return 0 }
func (i entryInfo) Mode() fs.FileMode  { return i.mode }
func (i entryInfo) ModTime() time.Time { return time.Time{} }
func (i entryInfo) IsDir() bool        { return i.mode.IsDir() }
func (i entryInfo) Sys() any           { return nil }

func (t gitTree) open(p string) (io.ReadCloser, error) {
	e, err := t.tree.FindEntry(p)
	if err != nil {
		return nil, err
	}
	blob, err := object.GetBlob(t.objects, e.Hash)
	if err != nil {
		return nil, err
	}
	return blob.Reader()
}
