package spec

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
)

// Limits on what Load reads, so that a hostile or mistaken tree is rejected in
// well under a second and in little memory instead of exhausting the agent.
const (
	// MaxFileSize is the largest spec file accepted, in bytes.
	MaxFileSize = 1 << 20
	// MaxFiles is the most files (of any name, outside hidden directories) a
	// spec tree may hold; the walk stops at the first file beyond it.
	MaxFiles = 10000
	// MaxTreeSize is the most bytes all spec files of a tree may hold
	// together. It is checked from the files' sizes before any is read. A
	// tree of 10,000 balancers is about 3 MiB.
	MaxTreeSize = 64 << 20
)

// LoadDir loads the spec tree rooted at the directory dir; see Load. A dir that
// does not exist or is not a directory is an I/O error, not an ErrorList.
func LoadDir(dir string) (*Spec, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("loading specs: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("loading specs: %s is not a directory", dir)
	}
	return Load(os.DirFS(dir))
}

// Load reads every *.yaml and *.yml file of fsys, recursively and in sorted
// path order, decodes each `---`-separated document strictly, validates the
// whole tree and returns it as a Spec.
//
// Hidden files and directories (names starting with ".", such as .git or a CI
// configuration) are skipped. Symbolic links to files are followed only when
// their target stays inside fsys (fsys must implement fs.ReadLinkFS to follow
// them at all); links to directories are not followed.
//
// When anything is wrong, Load returns a nil Spec and an ErrorList with every
// problem found, positioned FILE:LINE with FILE relative to the root and
// sorted by file then line. Any other error means the root itself could not
// be read.
func Load(fsys fs.FS) (*Spec, error) {
	return new(Loader).load(fsys, true)
}

// load is Loader.Load; references=false skips the checks that a balancer's
// services and weighted guests exist, so a lone Balancer document can be
// judged on its own (the schema agreement test needs that).
func (ld *Loader) load(fsys fs.FS, references bool) (*Spec, error) {
	l := &loader{fsys: fsys}
	files, err := l.walk()
	if err != nil {
		return nil, err
	}
	readable := l.inspect(files)
	next := make(map[string]*parsedFile, len(readable))
	if l.withinTreeSize(readable) {
		for _, f := range readable {
			if pf := ld.parsed(l, f); pf != nil {
				next[f.path] = pf
				l.add(pf)
			}
		}
	}
	ld.files = next
	l.checkTree(references)
	if len(l.errs) > 0 {
		l.errs.sort()
		return nil, l.errs
	}
	return l.build(), nil
}

// loader accumulates the documents and problems of one Load.
type loader struct {
	fsys      fs.FS
	errs      ErrorList
	hosts     []*hostDef
	balancers []*balancerDef
	fields    fieldCache
	json      []byte // reused by each file's batch (see decodeBatch)
}

// errorf records a problem at file:line.
func (l *loader) errorf(file string, line int, format string, args ...any) {
	l.errs = append(l.errs, Error{Pos: Pos{File: file, Line: line}, Msg: fmt.Sprintf(format, args...)})
}

// specFile is a file the walk selected for reading.
type specFile struct {
	path    string
	symlink bool
	name    string // where path leads inside the tree (set by inspect)
	size    int64  // the size Stat reported (set by inspect)
}

// walk lists the spec files in sorted path order. Sorting the full paths
// (rather than relying on WalkDir's per-directory order) makes "first
// defined at" and error order agree: "a.yaml" comes before "a/b.yaml".
func (l *loader) walk() ([]specFile, error) {
	var files []specFile
	count := 0
	err := fs.WalkDir(l.fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == "." {
				return err
			}
			l.errorf(p, 1, "cannot read: %s", ioText(err))
			return nil
		}
		if p != "." && IsHidden(d.Name()) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		count++
		if count > MaxFiles {
			l.errorf(p, 1, "spec tree has more than %d files; refusing to load it", MaxFiles)
			return fs.SkipAll
		}
		if IsSpecFile(d.Name()) {
			files = append(files, specFile{path: p, symlink: d.Type()&fs.ModeSymlink != 0})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("loading specs: %w", err)
	}
	if count > MaxFiles {
		return nil, nil
	}
	slices.SortFunc(files, func(a, b specFile) int { return strings.Compare(a.path, b.path) })
	return files, nil
}

// inspect resolves and stats every file without opening any, records why a
// file cannot be used, and returns the others with their sizes.
func (l *loader) inspect(files []specFile) []specFile {
	var ok []specFile
	for _, f := range files {
		if l.usable(&f) {
			ok = append(ok, f)
		}
	}
	return ok
}

// usable resolves f and checks what it leads to is a regular file within
// MaxFileSize, setting f.name and f.size. A directory (through a symlink) is
// skipped without an error.
func (l *loader) usable(f *specFile) bool {
	name, ok := l.target(*f)
	if !ok {
		return false
	}
	info, err := fs.Stat(l.fsys, name)
	if err != nil {
		l.errorf(f.path, 1, "cannot read: %s", ioText(err))
		return false
	}
	switch {
	case info.IsDir():
		return false // a symlink to a directory: not followed
	case !info.Mode().IsRegular():
		// Opening a FIFO or device could block, reading it never end: it is
		// refused from its type alone.
		l.errorf(f.path, 1, "not a regular file (%s)", info.Mode().Type())
		return false
	case info.Size() > MaxFileSize:
		l.errorf(f.path, 1, "file is %d bytes, over the %d-byte (1 MiB) limit", info.Size(), MaxFileSize)
		return false
	}
	f.name, f.size = name, info.Size()
	return true
}

// withinTreeSize reports whether files hold at most MaxTreeSize bytes
// together, and records an error at the file that crosses it otherwise.
func (l *loader) withinTreeSize(files []specFile) bool {
	var total int64
	for _, f := range files {
		if total += f.size; total > MaxTreeSize {
			l.errorf(f.path, 1, "the spec tree's files hold over %d bytes (64 MiB) up to this one; refusing to load it", MaxTreeSize)
			return false
		}
	}
	return true
}

// target returns the path inside the tree that f names: f itself, or where
// the symlink f resolves to.
func (l *loader) target(f specFile) (string, bool) {
	if !f.symlink {
		return f.path, true
	}
	links, ok := l.fsys.(fs.ReadLinkFS)
	if !ok {
		// Without ReadLink, Lstat follows links and nothing could
		// tell a target outside the tree from one inside.
		l.errorf(f.path, 1, "symlink cannot be checked: the file system does not support reading links")
		return "", false
	}
	name, err := ResolveInside(links, f.path)
	if err != nil {
		l.errorf(f.path, 1, "%s", err)
		return "", false
	}
	return name, true
}

// readLimited reads the file name, reported as file, up to MaxFileSize.
func (l *loader) readLimited(file, name string) ([]byte, bool) {
	r, err := l.fsys.Open(name)
	if err != nil {
		l.errorf(file, 1, "cannot read: %s", ioText(err))
		return nil, false
	}
	defer r.Close()
	// The size from Stat may be stale or made up (a growing file, an fs.FS
	// that does not know): never read more than the limit.
	data, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		l.errorf(file, 1, "cannot read: %s", ioText(err))
		return nil, false
	}
	if len(data) > MaxFileSize {
		l.errorf(file, 1, "file is over the %d-byte (1 MiB) limit", MaxFileSize)
		return nil, false
	}
	return data, true
}
