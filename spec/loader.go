package spec

import (
	"crypto/sha256"
	"io/fs"
	"sync"
)

// A Loader loads successive revisions of one spec tree, as an agent does,
// and decodes and validates again only the files whose content changed
// since its previous Load: every file's documents are kept, keyed by path
// and content hash, and the checks that span files run again over all of
// them. The result is Load's, errors and their FILE:LINE included. A
// Loader is safe for concurrent use; loads run one at a time.
type Loader struct {
	mu    sync.Mutex
	files map[string]*parsedFile // by path: every file the previous Load decoded
}

// ContentHashFS is a file system that knows the SHA-256 of its files'
// contents (as a snapshot does that hashed them while copying), so that a
// Loader can tell an unchanged file without reading it.
type ContentHashFS interface {
	fs.FS
	// ContentSHA256 returns the SHA-256 of the content of the regular file
	// name (symlinks resolved as Open resolves them), or false when it does
	// not know it.
	ContentSHA256(name string) ([sha256.Size]byte, bool)
}

// parsedFile is one file's documents as decoded and validated on their own,
// with the problems found in them.
type parsedFile struct {
	sum       [sha256.Size]byte
	errs      ErrorList
	hosts     []*hostDef
	balancers []*balancerDef
}

// Load loads fsys as the package's Load does.
func (ld *Loader) Load(fsys fs.FS) (*Spec, error) {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	return ld.load(fsys, true)
}

// parsed returns the documents of f: those of the previous Load when the
// content is the same, else decoded now. It returns nil when f cannot be
// read, which l records.
func (ld *Loader) parsed(l *loader, f specFile) *parsedFile {
	var data []byte
	sum, known := [sha256.Size]byte{}, false
	if h, ok := l.fsys.(ContentHashFS); ok {
		sum, known = h.ContentSHA256(f.name)
	}
	if !known {
		var ok bool
		if data, ok = l.readLimited(f.path, f.name); !ok {
			return nil
		}
		sum = sha256.Sum256(data)
	}
	if pf := ld.files[f.path]; pf != nil && pf.sum == sum {
		return pf
	}
	if data == nil {
		var ok bool
		if data, ok = l.readLimited(f.path, f.name); !ok {
			return nil
		}
	}
	pf := l.parseOne(f.path, data)
	pf.sum = sum
	return pf
}

// parseOne decodes and validates the documents of one file into a
// parsedFile of their own.
func (l *loader) parseOne(file string, data []byte) *parsedFile {
	fl := &loader{fsys: l.fsys, fields: l.fields, json: l.json}
	fl.parseFile(file, data)
	l.fields, l.json = fl.fields, fl.json
	return &parsedFile{errs: fl.errs, hosts: fl.hosts, balancers: fl.balancers}
}

// add takes a file's documents and problems into the load.
func (l *loader) add(pf *parsedFile) {
	l.errs = append(l.errs, pf.errs...)
	l.hosts = append(l.hosts, pf.hosts...)
	l.balancers = append(l.balancers, pf.balancers...)
}
