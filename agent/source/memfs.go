package source

import (
	"bytes"
	"crypto/sha256"
	"io"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	"weir/spec"
)

// memFS is the immutable in-memory tree of a Snapshot: regular files and
// symbolic links by slash-separated path, with the directories their paths
// imply. It implements fs.ReadLinkFS, so the spec loader sees links as links
// and can refuse one that leaves the tree with its position, and fs.StatFS
// and fs.ReadDirFS. Open and Stat follow symlinks as spec.ResolveInside does.
//
// A file kept cut at MaxPassThrough bytes still reports its real size through
// Stat and Lstat, so the loader's "file is N bytes" message tells the truth;
// an open file and a directory entry report the bytes kept, so a reader never
// sizes a buffer for what it cannot read.
type memFS struct {
	nodes map[string]*memNode // every path, "." and the directories included
}

var (
	_ fs.ReadLinkFS      = memFS{}
	_ spec.ContentHashFS = memFS{}
	_ fs.StatFS          = memFS{}
	_ fs.ReadDirFS       = memFS{}
)

// memNode is one file, symlink or directory of a memFS.
type memNode struct {
	name     string // the base name, "." for the root
	mode     fs.FileMode
	data     []byte     // a file's kept bytes, or a symlink's target
	size     int64      // a file's real size, at least len(data)
	children []*memNode // a directory's entries, sorted by name
	// sum is the SHA-256 of a regular file's whole content, when summed:
	// every file the snapshot read (not those past spec.MaxTreeSize).
	sum    [sha256.Size]byte
	summed bool
}

// newMemFS returns the tree holding files (path → file or symlink node) and
// the directories above them. It takes ownership of files.
func newMemFS(files map[string]*memNode) memFS {
	paths := slices.Collect(maps.Keys(files))
	m := memFS{nodes: files}
	m.nodes["."] = &memNode{name: ".", mode: fs.ModeDir | 0o555}
	for _, p := range paths {
		d := m.parent(p)
		d.children = append(d.children, files[p])
	}
	for _, n := range m.nodes {
		slices.SortFunc(n.children, func(a, b *memNode) int { return strings.Compare(a.name, b.name) })
	}
	return m
}

// parent returns the directory holding p, creating it (and its own parents)
// when it is new.
func (m memFS) parent(p string) *memNode {
	dir := path.Dir(p)
	if d, ok := m.nodes[dir]; ok {
		return d
	}
	d := &memNode{name: path.Base(dir), mode: fs.ModeDir | 0o555}
	m.nodes[dir] = d
	up := m.parent(dir)
	up.children = append(up.children, d)
	return d
}

// Open opens the named file or directory after following any symlinks.
func (m memFS) Open(name string) (fs.File, error) {
	n, err := m.resolve("open", name)
	if err != nil {
		return nil, err
	}
	if n.mode.IsDir() {
		return &memDir{info: n.info(), entries: n.children}, nil
	}
	return &memFile{info: n.info(), Reader: bytes.NewReader(n.data)}, nil
}

// Stat returns the FileInfo of the named file after following any symlinks.
func (m memFS) Stat(name string) (fs.FileInfo, error) {
	n, err := m.resolve("stat", name)
	if err != nil {
		return nil, err
	}
	return n.realInfo(), nil
}

// ContentSHA256 returns the SHA-256 of the whole content of the regular
// file name (after following symlinks), which the snapshot computed when
// it read the file, so that a spec.Loader can skip the files it has seen.
func (m memFS) ContentSHA256(name string) ([sha256.Size]byte, bool) {
	n, err := m.resolve("open", name)
	if err != nil || !n.mode.IsRegular() || !n.summed {
		return [sha256.Size]byte{}, false
	}
	return n.sum, true
}

// ReadDir returns the entries of the named directory, sorted by name.
func (m memFS) ReadDir(name string) ([]fs.DirEntry, error) {
	n, err := m.resolve("readdir", name)
	if err != nil {
		return nil, err
	}
	if !n.mode.IsDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrInvalid}
	}
	return entries(n.children), nil
}

// Lstat returns the FileInfo of name without following a final symlink.
func (m memFS) Lstat(name string) (fs.FileInfo, error) {
	n, err := m.lstat(name)
	if err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: name, Err: err}
	}
	return n.realInfo(), nil
}

// ReadLink returns the target of the symlink name.
func (m memFS) ReadLink(name string) (string, error) {
	n, err := m.lstat(name)
	if err == nil && n.mode&fs.ModeSymlink == 0 {
		err = fs.ErrInvalid
	}
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: err}
	}
	return string(n.data), nil
}

// lstat finds name, following symlinks in its directory part only.
func (m memFS) lstat(name string) (*memNode, error) {
	if !fs.ValidPath(name) {
		return nil, fs.ErrNotExist
	}
	if n, ok := m.nodes[name]; ok {
		return n, nil
	}
	dir := path.Dir(name)
	if d, ok := m.nodes[dir]; ok && d.mode.IsDir() {
		return nil, fs.ErrNotExist // stored paths hold no symlinked directory
	}
	real, err := spec.ResolveInside(m, dir)
	if err != nil {
		return nil, fs.ErrNotExist
	}
	if n, ok := m.nodes[path.Join(real, path.Base(name))]; ok {
		return n, nil
	}
	return nil, fs.ErrNotExist
}

// resolve finds name after following every symlink on it. Like
// fstest.MapFS, any failure to resolve is fs.ErrNotExist.
func (m memFS) resolve(op, name string) (*memNode, error) {
	notExist := &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	if !fs.ValidPath(name) {
		return nil, notExist
	}
	if n, ok := m.nodes[name]; ok && n.mode&fs.ModeSymlink == 0 {
		return n, nil
	}
	real, err := spec.ResolveInside(m, name)
	if err != nil {
		return nil, notExist
	}
	n, ok := m.nodes[real]
	if !ok {
		return nil, notExist
	}
	return n, nil
}

// info describes n with the size of what it holds.
func (n *memNode) info() memInfo { return memInfo{n: n, size: int64(len(n.data))} }

// realInfo describes n with its real size.
func (n *memNode) realInfo() memInfo { return memInfo{n: n, size: max(n.size, int64(len(n.data)))} }

// memInfo is the fs.FileInfo and fs.DirEntry of a memNode.
type memInfo struct {
	n    *memNode
	size int64
}

func (i memInfo) Name() string               { return i.n.name }
func (i memInfo) Size() int64                { return i.size }
func (i memInfo) Mode() fs.FileMode          { return i.n.mode }
func (i memInfo) Type() fs.FileMode          { return i.n.mode.Type() }
func (i memInfo) ModTime() time.Time         { return time.Time{} }
func (i memInfo) IsDir() bool                { return i.n.mode.IsDir() }
func (i memInfo) Sys() any                   { return nil }
func (i memInfo) Info() (fs.FileInfo, error) { return i, nil }
func (i memInfo) String() string             { return fs.FormatFileInfo(i) }

// entries lists nodes as directory entries, each reporting the bytes kept.
func entries(nodes []*memNode) []fs.DirEntry {
	list := make([]fs.DirEntry, len(nodes))
	for i, n := range nodes {
		list[i] = n.info()
	}
	return list
}

// memFile is an open regular file of a memFS.
type memFile struct {
	info memInfo
	*bytes.Reader
}

func (f *memFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *memFile) Close() error               { return nil }

// memDir is an open directory of a memFS.
type memDir struct {
	info    memInfo
	entries []*memNode
	offset  int
}

func (d *memDir) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *memDir) Close() error               { return nil }

func (d *memDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.n.name, Err: fs.ErrInvalid}
}

// ReadDir implements fs.ReadDirFile.
func (d *memDir) ReadDir(count int) ([]fs.DirEntry, error) {
	rest := d.entries[d.offset:]
	if count > 0 && len(rest) == 0 {
		return nil, io.EOF
	}
	if count > 0 && len(rest) > count {
		rest = rest[:count]
	}
	d.offset += len(rest)
	return entries(rest), nil
}
