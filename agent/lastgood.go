package agent

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"weir/spec"
)

// The last good revision lives under the state directory as
//
//	last-good -> last-good-XXXX/   (a symlink, swapped by rename)
//	last-good-XXXX/revision        (the revision string)
//	last-good-XXXX/specs/...       (the spec files of that revision)
//
// A new revision is written into a fresh directory and made current by renaming
// a new symlink over the old one, which is atomic: a crash at any point leaves
// either the old or the new revision complete, never a mix.
const (
	lastGoodLink   = "last-good"
	lastGoodPrefix = "last-good-"
	revisionFile   = "revision"
	specsDir       = "specs"
)

// saveLastGood persists the last good revision when it has not been saved
// yet. A failure is reported in status and metrics and tried again by the
// next pass, so a full disk that is freed heals without a new revision.
func (a *Agent) saveLastGood() {
	a.mu.Lock()
	rs := a.unsaved
	a.mu.Unlock()
	if rs == nil {
		return
	}
	saved, err := writeLastGood(a.cfg.StateDir, rs.revision, rs.fsys, a.saved)
	if err == nil {
		a.saved = saved
	}
	if err != nil {
		a.metrics.saveErrors.Inc()
		a.log.Error("persisting the last good revision failed; retrying on the next pass", "revision", rs.revision, "err", err)
		err = fmt.Errorf("saving the last good revision %s: %w", rs.revision, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.saveErr = err
	if err == nil && a.unsaved == rs {
		a.unsaved = nil
		// Saved: the tree's files are needed no more, only its Spec.
		rs.fsys = nil
	}
}

// savedTree is the last good revision as last written: its directory and
// the SHA-256 of every spec file in it whose hash the tree knew, so that the
// next save links the files that did not change instead of writing (and
// syncing) them again.
type savedTree struct {
	dir  string
	sums map[string][sha256.Size]byte
}

// writeLastGood persists the spec files of fsys as the last good revision
// rev, taking the files prev holds with the same content from there, and
// returns what it wrote.
func writeLastGood(stateDir, rev string, fsys fs.FS, prev *savedTree) (*savedTree, error) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating state directory %s: %w", stateDir, err)
	}
	dir, err := os.MkdirTemp(stateDir, lastGoodPrefix)
	if err != nil {
		return nil, fmt.Errorf("creating last good directory: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(dir)
		}
	}()
	saved := &savedTree{dir: dir, sums: map[string][sha256.Size]byte{}}
	c := specCopier{fsys: fsys, dst: filepath.Join(dir, specsDir), prev: prev, saved: saved}
	if err := c.copy(); err != nil {
		return nil, err
	}
	if err := writeFileSync(filepath.Join(dir, revisionFile), []byte(rev+"\n")); err != nil {
		return nil, err
	}
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	tmpLink := filepath.Join(stateDir, lastGoodLink+".tmp")
	os.Remove(tmpLink)
	if err := os.Symlink(filepath.Base(dir), tmpLink); err != nil {
		return nil, fmt.Errorf("linking last good revision: %w", err)
	}
	if err := os.Rename(tmpLink, filepath.Join(stateDir, lastGoodLink)); err != nil {
		os.Remove(tmpLink)
		return nil, fmt.Errorf("switching last good revision: %w", err)
	}
	ok = true
	if err := syncDir(stateDir); err != nil {
		return nil, err
	}
	removeStale(stateDir, filepath.Base(dir))
	return saved, nil
}

// removeStale deletes last-good-* directories other than keep: earlier
// revisions and leftovers of interrupted writes.
func removeStale(stateDir, keep string) {
	entries, err := os.ReadDir(stateDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), lastGoodPrefix) && e.Name() != keep {
			os.RemoveAll(filepath.Join(stateDir, e.Name()))
		}
	}
}

// specCopier copies the spec files of fsys into dst, skipping hidden files
// and directories: what the loader reads (spec.IsSpecFile, spec.IsHidden). A
// symlinked file is copied as its content (the loader has already refused
// links that leave the tree). A file whose hash prev holds for the same path
// is hard-linked from prev's directory: its bytes are on disk already.
type specCopier struct {
	fsys  fs.FS
	dst   string
	prev  *savedTree
	saved *savedTree
}

func (c *specCopier) copy() error {
	if err := os.MkdirAll(c.dst, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", c.dst, err)
	}
	return fs.WalkDir(c.fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("reading spec tree at %s: %w", p, err)
		}
		if p != "." && spec.IsHidden(d.Name()) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if p != "." {
				if err := os.MkdirAll(filepath.Join(c.dst, filepath.FromSlash(p)), 0o700); err != nil {
					return fmt.Errorf("creating %s: %w", p, err)
				}
			}
			return nil
		}
		if !spec.IsSpecFile(d.Name()) || !(d.Type().IsRegular() || d.Type()&fs.ModeSymlink != 0) {
			return nil
		}
		return c.file(p)
	})
}

// file copies or links the spec file p.
func (c *specCopier) file(p string) error {
	to := filepath.Join(c.dst, filepath.FromSlash(p))
	var sum [sha256.Size]byte
	known := false
	if h, ok := c.fsys.(spec.ContentHashFS); ok {
		sum, known = h.ContentSHA256(p)
	}
	if known {
		c.saved.sums[p] = sum
		if c.prev != nil {
			if was, had := c.prev.sums[p]; had && was == sum && os.Link(filepath.Join(c.prev.dir, specsDir, filepath.FromSlash(p)), to) == nil {
				return nil
			}
		}
	}
	b, err := fs.ReadFile(c.fsys, p)
	if err != nil {
		return fmt.Errorf("reading spec file %s: %w", p, err)
	}
	return writeFileSync(to, b)
}

// loadLastGood returns the persisted last good revision and its spec tree; the
// error wraps fs.ErrNotExist when there is none.
func loadLastGood(stateDir string) (string, fs.FS, error) {
	dir := filepath.Join(stateDir, lastGoodLink)
	b, err := os.ReadFile(filepath.Join(dir, revisionFile))
	if err != nil {
		return "", nil, fmt.Errorf("reading last good revision: %w", err)
	}
	rev := strings.TrimSpace(string(b))
	if rev == "" {
		return "", nil, errors.New("reading last good revision: empty revision file")
	}
	return rev, os.DirFS(filepath.Join(dir, specsDir)), nil
}

func writeFileSync(name string, b []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}
