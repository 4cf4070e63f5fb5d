package spec

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
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
	// maxSymlinkHops bounds symlink resolution, like the kernel's ELOOP limit.
	maxSymlinkHops = 40
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
	return load(fsys, true)
}

// load is Load; references=false skips the checks that a balancer's services
// and weighted guests exist, so a lone Balancer document can be judged on its
// own (the schema agreement test needs that).
func load(fsys fs.FS, references bool) (*Spec, error) {
	l := &loader{fsys: fsys}
	files, err := l.walk()
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		data, ok := l.read(f)
		if ok {
			l.parseFile(f.path, data)
		}
	}
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
		if p != "." && strings.HasPrefix(d.Name(), ".") {
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
		if isSpecFile(d.Name()) {
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

// isSpecFile reports whether a file name is one Load reads.
func isSpecFile(name string) bool {
	return strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")
}

// read returns the contents of f, or records why it cannot be used.
func (l *loader) read(f specFile) ([]byte, bool) {
	name := f.path
	if f.symlink {
		if _, ok := l.fsys.(fs.ReadLinkFS); !ok {
			// Without ReadLink, Lstat follows links and nothing could
			// tell a target outside the tree from one inside.
			l.errorf(f.path, 1, "symlink cannot be checked: the file system does not support reading links")
			return nil, false
		}
		target, err := resolveInside(l.fsys, f.path)
		if err != nil {
			l.errorf(f.path, 1, "%s", err)
			return nil, false
		}
		name = target
	}
	info, err := fs.Stat(l.fsys, name)
	if err != nil {
		l.errorf(f.path, 1, "cannot read: %s", ioText(err))
		return nil, false
	}
	switch {
	case info.IsDir():
		return nil, false // a symlink to a directory: not followed
	case !info.Mode().IsRegular():
		// Reading a FIFO or device could block or never end.
		l.errorf(f.path, 1, "not a regular file (%s)", info.Mode().Type())
		return nil, false
	case info.Size() > MaxFileSize:
		l.errorf(f.path, 1, "file is %d bytes, over the %d-byte (1 MiB) limit", info.Size(), MaxFileSize)
		return nil, false
	}
	r, err := l.fsys.Open(name)
	if err != nil {
		l.errorf(f.path, 1, "cannot read: %s", ioText(err))
		return nil, false
	}
	defer r.Close()
	// The size from Stat may be stale or made up (a growing file, an fs.FS
	// that does not know): never read more than the limit.
	data, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		l.errorf(f.path, 1, "cannot read: %s", ioText(err))
		return nil, false
	}
	if len(data) > MaxFileSize {
		l.errorf(f.path, 1, "file is over the %d-byte (1 MiB) limit", MaxFileSize)
		return nil, false
	}
	return data, true
}

// resolveInside follows the symlink name, and every symlink met on the way,
// component by component, and returns the path inside fsys it finally names.
// It fails when any step leaves the root (an absolute target, or ".." above
// the root), when a link is dangling, or after maxSymlinkHops links.
func resolveInside(fsys fs.FS, name string) (string, error) {
	var done []string                // resolved components, none a symlink
	todo := strings.Split(name, "/") // components still to resolve
	first := ""                      // the target of name itself, for messages
	leaves := func() error { return fmt.Errorf("symlink to %s leaves the spec tree", first) }
	for hops := 0; len(todo) > 0; {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(done) == 0 {
				return "", leaves()
			}
			done = done[:len(done)-1]
			continue
		}
		p := path.Join(append(slices.Clone(done), c)...)
		info, err := fs.Lstat(fsys, p)
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("dangling symlink to %s: %s does not exist", first, p)
		}
		if err != nil {
			return "", fmt.Errorf("cannot resolve symlink: %s", ioText(err))
		}
		if info.Mode()&fs.ModeSymlink == 0 {
			done = append(done, c)
			continue
		}
		if hops++; hops > maxSymlinkHops {
			return "", fmt.Errorf("symlink to %s: too many levels of symlinks", first)
		}
		target, err := fs.ReadLink(fsys, p)
		if err != nil {
			return "", fmt.Errorf("cannot read symlink: %s", ioText(err))
		}
		if first == "" {
			first = target
		}
		if strings.HasPrefix(target, "/") || strings.HasPrefix(target, `\`) {
			return "", leaves()
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	if len(done) == 0 {
		return ".", nil
	}
	return path.Join(done...), nil
}

// ioText is the cause of an fs error without the operation and path, which
// the FILE: prefix already gives.
func ioText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
