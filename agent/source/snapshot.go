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
	"sort"
	"strings"
	"testing/fstest"
)

// MaxPassThrough is how many bytes of one spec file a snapshot keeps. It is one
// byte more than the spec loader's 1 MiB limit, so an oversized file still
// reaches the loader — which rejects it with its position and real size (see
// snapshotFS) — without the agent holding an arbitrarily large file in
// memory. The revision of a directory tree covers the whole file.
const MaxPassThrough = 1<<20 + 1

// revisionMagic starts the bytes hashed into a directory revision, so that a
// later change of the encoding cannot collide with this one.
const revisionMagic = "weir-dir-v1\n"

// Entry kinds in the revision encoding.
const (
	kindFile    = 'f'
	kindSymlink = 'l'
)

// isSpecFile reports whether name (a slash-separated path or a base name) is a
// spec file by its extension: *.yaml or *.yml, as DESIGN.md defines the tree.
func isSpecFile(name string) bool {
	return strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")
}

// isHidden reports whether one path element is hidden. Hidden directories
// (.git) are skipped by the spec tree definition; hidden files are skipped too,
// because editors keep their swap, backup and lock files (emacs' .#x.yaml is a
// dangling symlink) under dot names next to the file being edited, and such a
// file must never make a revision invalid.
func isHidden(elem string) bool {
	return strings.HasPrefix(elem, ".") && elem != "." && elem != ".."
}

// hasHiddenElem reports whether any element of the slash-separated rel is hidden.
func hasHiddenElem(rel string) bool {
	for _, e := range strings.Split(rel, "/") {
		if isHidden(e) {
			return true
		}
	}
	return false
}

// snapshotBuilder collects the spec files of one tree into an in-memory fs.FS
// and the per-entry digests the revision is computed from. An in-memory copy is
// what makes a Snapshot immutable: edits on disk (or the next checkout) after
// Latest returned cannot tear a load that is still reading it.
type snapshotBuilder struct {
	files   fstest.MapFS
	sizes   map[string]int64 // real sizes of files cut at MaxPassThrough
	entries []snapshotEntry
	buf     []byte // copy buffer shared by all files of the tree
}

// snapshotEntry is one file or symlink as it enters the revision hash.
type snapshotEntry struct {
	path   string
	kind   byte
	size   uint64
	digest [sha256.Size]byte
}

func newSnapshotBuilder() *snapshotBuilder {
	return &snapshotBuilder{files: fstest.MapFS{}, sizes: map[string]int64{}, buf: make([]byte, 32<<10)}
}

// addFile stores the first MaxPassThrough bytes of r under the slash-separated
// path name and hashes all of r.
func (b *snapshotBuilder) addFile(name string, r io.Reader) error {
	h := sha256.New()
	kept := &prefixWriter{max: MaxPassThrough}
	// Hide any WriterTo/ReaderFrom so the shared buffer is used.
	n, err := io.CopyBuffer(io.MultiWriter(h, kept), struct{ io.Reader }{r}, b.buf)
	if err != nil {
		return err
	}
	b.files[name] = &fstest.MapFile{Data: kept.buf, Mode: 0o444}
	if n > int64(len(kept.buf)) {
		b.sizes[name] = n
	}
	b.entries = append(b.entries, snapshotEntry{path: name, kind: kindFile, size: uint64(n), digest: sum(h)})
	return nil
}

// addSymlink stores a symbolic link at name pointing to target, as the
// filesystem (or Git) has it. The link is kept, not resolved: fstest.MapFS
// implements fs.ReadLinkFS, so the spec loader sees it with fs.Lstat and
// fs.ReadLink and can reject one that leaves the tree with its position, while
// one pointing inside the tree still opens through the map.
func (b *snapshotBuilder) addSymlink(name, target string) {
	h := sha256.New()
	io.WriteString(h, target)
	b.files[name] = &fstest.MapFile{Data: []byte(target), Mode: fs.ModeSymlink | 0o777}
	b.entries = append(b.entries, snapshotEntry{path: name, kind: kindSymlink, size: uint64(len(target)), digest: sum(h)})
}

// maxLinkHops bounds symlink resolution, like the kernel's ELOOP limit.
const maxLinkHops = 40

// linkTree is the tree a snapshot is taken from, as addLinkTargets needs it.
type linkTree interface {
	// lstat returns the type bits of the slash-separated path p, not
	// following a final symlink; an error when p does not exist.
	lstat(p string) (fs.FileMode, error)
	readlink(p string) (string, error)
	open(p string) (io.ReadCloser, error)
}

// addLinkTargets adds what the snapshot's symlinks resolve to inside the tree
// — intermediate links and the final file — when the walk left them out
// (a spec-named link may point at a non-spec name, or through a symlinked
// directory). So a link that works in the real tree works in the snapshot,
// as it would through os.DirFS. Resolution stops quietly where the real one
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
		if err := b.resolve(t, l); err != nil {
			return err
		}
	}
	return nil
}

func (b *snapshotBuilder) resolve(t linkTree, name string) error {
	var done []string
	todo := strings.Split(name, "/")
	for hops := 0; len(todo) > 0; {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(done) == 0 {
				return nil
			}
			done = done[:len(done)-1]
			continue
		}
		p := path.Join(append(slices.Clone(done), c)...)
		f, known := b.files[p]
		var mode fs.FileMode
		if known {
			mode = f.Mode
		} else {
			m, err := t.lstat(p)
			if err != nil {
				return nil
			}
			mode = m
		}
		switch {
		case mode&fs.ModeSymlink != 0:
			if hops++; hops > maxLinkHops {
				return nil
			}
			var target string
			if known {
				target = string(f.Data)
			} else {
				var err error
				if target, err = t.readlink(p); err != nil {
					return fmt.Errorf("%s: %w", p, err)
				}
				b.addSymlink(p, target)
			}
			if strings.HasPrefix(target, "/") {
				return nil
			}
			todo = append(strings.Split(target, "/"), todo...)
		case mode.IsDir():
			done = append(done, c)
		default:
			if len(todo) > 0 || known {
				return nil
			}
			r, err := t.open(p)
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			err = b.addFile(p, r)
			r.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			return nil
		}
	}
	return nil
}

// finish returns the tree and its content revision.
func (b *snapshotBuilder) finish() (fs.FS, string) {
	return snapshotFS{MapFS: b.files, sizes: b.sizes}, contentRevision(b.entries)
}

// snapshotFS is the in-memory tree of a Snapshot: an fstest.MapFS (so
// fs.ReadLinkFS too) whose Stat and Lstat report the real size of a file cut
// at MaxPassThrough, so the loader's "file is N bytes" message tells the
// truth. (Open(name).Stat and directory entries show the kept size.)
type snapshotFS struct {
	fstest.MapFS
	sizes map[string]int64
}

// Stat implements fs.StatFS.
func (f snapshotFS) Stat(name string) (fs.FileInfo, error) {
	fi, err := f.MapFS.Stat(name)
	return f.realSize(name, fi, err)
}

// Lstat implements fs.ReadLinkFS.
func (f snapshotFS) Lstat(name string) (fs.FileInfo, error) {
	fi, err := f.MapFS.Lstat(name)
	return f.realSize(name, fi, err)
}

func (f snapshotFS) realSize(name string, fi fs.FileInfo, err error) (fs.FileInfo, error) {
	if n, ok := f.sizes[name]; ok && err == nil && fi.Mode().IsRegular() {
		return sizedInfo{fi, n}, nil
	}
	return fi, err
}

// sizedInfo overrides the size of a FileInfo.
type sizedInfo struct {
	fs.FileInfo
	size int64
}

func (i sizedInfo) Size() int64 { return i.size }

// contentRevision is "dir:" + hex sha256 over, in order:
//
//	"weir-dir-v1\n"
//	for each entry, sorted by path (byte-wise, slash-separated, relative to the root):
//	    kind    1 byte: 'f' regular file, 'l' symbolic link
//	    path    the bytes of the path, then one 0x00 byte
//	    length  8 bytes, big-endian: the content length (a link's target length)
//	    digest  32 bytes: sha256 of the whole content (a link's target)
//
// Hashing each file's digest rather than its bytes keeps the outer hash
// independent of the walk order while reading every file only once. Nothing
// else (modes, times, directories, hidden or non-spec files — unless a spec
// symlink resolves to one, see addLinkTargets) takes part, so touching or
// copying a tree keeps its revision.
func contentRevision(entries []snapshotEntry) string {
	sorted := append([]snapshotEntry(nil), entries...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].path < sorted[j].path })
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
