package source

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"

	"weir/spec"
)

// MaxPassThrough is how many bytes of one spec file a snapshot keeps. It is one
// byte more than the spec loader's 1 MiB limit, so an oversized file still
// reaches the loader — which rejects it with its position and real size (see
// memFS) — without the agent holding an arbitrarily large file in
// memory. The revision of a directory tree covers the whole file.
const MaxPassThrough = 1<<20 + 1

// revisionMagic starts the bytes hashed into a directory revision, so that a
// later change of the encoding cannot collide with this one.
const revisionMagic = "weir-dir-v1\n"

// Entry kinds in the revision encoding.
const (
	kindFile    = 'f'
	kindSymlink = 'l'
	kindOther   = 'o' // a FIFO, socket or device: its type only
)

// snapshotBuilder collects the spec files of one tree into a memFS and the
// per-entry digests the revision is computed from. An in-memory copy is what
// makes a Snapshot immutable: edits on disk (or the next checkout) after
// Latest returned cannot tear a load that is still reading it.
type snapshotBuilder struct {
	nodes   map[string]*memNode // files and symlinks by path
	entries []snapshotEntry
	buf     []byte // copy buffer shared by all files of the tree
	bytes   int64  // the sizes of the files added, together
}

// snapshotEntry is one file or symlink as it enters the revision hash.
type snapshotEntry struct {
	path   string
	kind   byte
	size   uint64
	digest [sha256.Size]byte
}

func newSnapshotBuilder() *snapshotBuilder {
	return &snapshotBuilder{nodes: map[string]*memNode{}, buf: make([]byte, 32<<10)}
}

// addFile stores the first MaxPassThrough bytes of r, a file of size bytes,
// under the slash-separated path name and hashes all of r. Once the files
// added hold more than spec.MaxTreeSize bytes together, a file is neither
// read nor kept: its node and its revision entry carry only its size, which
// is all the loader needs to refuse the tree before reading any of it.
func (b *snapshotBuilder) addFile(name string, r io.Reader, size int64) error {
	past := b.pastTreeSize(size)
	b.bytes += size
	if past {
		b.nodes[name] = &memNode{name: path.Base(name), mode: 0o444, size: size}
		b.entries = append(b.entries, snapshotEntry{path: name, kind: kindFile, size: uint64(size)})
		return nil
	}
	h := sha256.New()
	// Sized for the whole file, so the bytes kept take no more memory than
	// they need.
	kept := &prefixWriter{max: MaxPassThrough, buf: make([]byte, 0, max(0, min(size, MaxPassThrough)))}
	// Hide any WriterTo/ReaderFrom so the shared buffer is used.
	n, err := io.CopyBuffer(io.MultiWriter(h, kept), struct{ io.Reader }{r}, b.buf)
	if err != nil {
		return err
	}
	b.addNode(name, &memNode{mode: 0o444, data: kept.buf, size: n, sum: sum(h), summed: true})
	return nil
}

// reuse adds at name a regular file an earlier snapshot read (the same
// Git blob), without reading it again: the snapshot nodes are immutable,
// so the data is shared.
func (b *snapshotBuilder) reuse(name string, n *memNode) {
	b.bytes += n.size
	b.addNode(name, n)
}

// addNode adds a copy of the regular file node n at name, with its entry.
func (b *snapshotBuilder) addNode(name string, n *memNode) {
	c := *n
	c.name = path.Base(name)
	b.nodes[name] = &c
	b.entries = append(b.entries, snapshotEntry{path: name, kind: kindFile, size: uint64(n.size), digest: n.sum})
}

// addSymlink stores a symbolic link at name pointing to target, as the
// filesystem (or Git) has it. The link is kept, not resolved: the spec loader
// sees it through memFS's fs.ReadLinkFS and can reject one that leaves the
// tree with its position, while one pointing inside the tree still opens.
func (b *snapshotBuilder) addSymlink(name, target string) {
	h := sha256.New()
	io.WriteString(h, target)
	b.nodes[name] = &memNode{name: path.Base(name), mode: fs.ModeSymlink | 0o777, data: []byte(target)}
	b.entries = append(b.entries, snapshotEntry{path: name, kind: kindSymlink, size: uint64(len(target)), digest: sum(h)})
}

// pastTreeSize reports whether a file of size bytes takes the files added
// past spec.MaxTreeSize.
func (b *snapshotBuilder) pastTreeSize(size int64) bool { return b.bytes+size > spec.MaxTreeSize }

// addOther records at name a file that is neither regular nor a symlink (a
// FIFO, a socket, a device) by its type alone, never opening it, so the
// loader refuses it with its position as it refuses it on disk.
func (b *snapshotBuilder) addOther(name string, typ fs.FileMode) {
	h := sha256.New()
	io.WriteString(h, typ.String())
	b.nodes[name] = &memNode{name: path.Base(name), mode: typ.Type() | 0o444}
	b.entries = append(b.entries, snapshotEntry{path: name, kind: kindOther, digest: sum(h)})
}

// full reports whether the snapshot holds more entries than a spec tree may
// (spec.MaxFiles): the walk may stop, the loader refuses the tree anyway.
func (b *snapshotBuilder) full() bool { return len(b.entries) > spec.MaxFiles }

// linkTree is the tree a snapshot is taken from, as addLinkTargets needs it:
// Lstat and ReadLink with the meaning fs.ReadLinkFS gives them, on
// slash-separated paths, and a way to read a file.
type linkTree interface {
	spec.LinkReader
	open(p string) (io.ReadCloser, error)
}

// addLinkTargets adds what the snapshot's symlinks resolve to inside the tree
// — intermediate links and the final file — when the walk left them out
// (a spec-named link may point at a non-spec name, or through a symlinked
// directory). So a link that works in the real tree works in the snapshot,
// as it would through os.DirFS. Resolution stops quietly where the loader's
// would fail (leaving the root, dangling, too many hops): the spec loader
// resolves again and reports it with the link's position.
func (b *snapshotBuilder) addLinkTargets(t linkTree) error {
	var links []string
	for _, e := range b.entries {
		if e.kind == kindSymlink {
			links = append(links, e.path)
		}
	}
	for _, l := range links {
		if err := b.addLinkTarget(t, l); err != nil {
			return err
		}
	}
	return nil
}

// addLinkTarget resolves the symlink name with spec.ResolveInside, adding
// the links it reads and the regular file it ends at to the snapshot.
func (b *snapshotBuilder) addLinkTarget(t linkTree, name string) error {
	v := &snapshotView{b: b, t: t}
	p, err := spec.ResolveInside(v, name)
	if v.err != nil {
		return v.err
	}
	if err != nil {
		return nil
	}
	if _, known := b.nodes[p]; known {
		return nil
	}
	// Only a regular file is read: a FIFO or device could block the read or
	// never end it, so it is recorded by its type for the loader to refuse.
	fi, err := t.Lstat(p)
	switch {
	case err != nil || fi.IsDir():
		return nil
	case !fi.Mode().IsRegular():
		b.addOther(p, fi.Mode().Type())
		return nil
	}
	r, err := t.open(p)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	defer r.Close()
	if err := b.addFile(p, r, fi.Size()); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}

// snapshotView is the source tree as the snapshot being built sees it: what
// the snapshot holds already wins, and every symlink read through it is
// added to the snapshot.
type snapshotView struct {
	b   *snapshotBuilder
	t   linkTree
	err error // why a link the tree lists could not be read
}

// Lstat implements spec.LinkReader.
func (v *snapshotView) Lstat(p string) (fs.FileInfo, error) {
	if n, ok := v.b.nodes[p]; ok {
		return n.info(), nil
	}
	return v.t.Lstat(p)
}

// ReadLink implements spec.LinkReader.
func (v *snapshotView) ReadLink(p string) (string, error) {
	if n, ok := v.b.nodes[p]; ok && n.mode&fs.ModeSymlink != 0 {
		return string(n.data), nil
	}
	target, err := v.t.ReadLink(p)
	if err != nil {
		v.err = fmt.Errorf("%s: %w", p, err)
		return "", err
	}
	v.b.addSymlink(p, target)
	return target, nil
}

// finish returns the tree and its content revision.
func (b *snapshotBuilder) finish() (fs.FS, string) {
	return newMemFS(b.nodes), contentRevision(b.entries)
}

// contentRevision is "dir:" + hex sha256 over, in order:
//
//	"weir-dir-v1\n"
//	for each entry, sorted by path (byte-wise, slash-separated, relative to the root):
//	    kind    1 byte: 'f' regular file, 'l' symbolic link, 'o' other (FIFO, socket, device)
//	    path    the bytes of the path, then one 0x00 byte
//	    length  8 bytes, big-endian: the content length (a link's target length; 0 for other)
//	    digest  32 bytes: sha256 of the whole content (a link's target; the
//	            type's fs.FileMode string for other; zeros for a file past
//	            spec.MaxTreeSize, which is never read)
//
// Hashing each file's digest rather than its bytes keeps the outer hash
// independent of the walk order while reading every file only once. Nothing
// else (modes, times, directories, hidden or non-spec files — unless a spec
// symlink resolves to one, see addLinkTargets) takes part, so touching or
// copying a tree keeps its revision.
func contentRevision(entries []snapshotEntry) string {
	sorted := slices.Clone(entries)
	slices.SortFunc(sorted, func(a, b snapshotEntry) int { return strings.Compare(a.path, b.path) })
	h := sha256.New()
	io.WriteString(h, revisionMagic)
	var n [8]byte
	for _, e := range sorted {
		h.Write([]byte{e.kind})
		io.WriteString(h, e.path)
		h.Write([]byte{0})
		binary.BigEndian.PutUint64(n[:], e.size)
		h.Write(n[:])
		h.Write(e.digest[:])
	}
	return "dir:" + hex.EncodeToString(h.Sum(nil))
}

func sum(h hash.Hash) (d [sha256.Size]byte) {
	copy(d[:], h.Sum(nil))
	return d
}

// prefixWriter keeps the first max bytes written to it and accepts (and
// drops) the rest, so io.Copy still reads the whole source for its hash.
type prefixWriter struct {
	buf []byte
	max int
}

func (w *prefixWriter) Write(p []byte) (int, error) {
	if room := w.max - len(w.buf); room > 0 {
		w.buf = append(w.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}
