package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"weir/spec"
)

// DefaultDebounce is how long a directory must stay quiet after a file event
// before Watch reports a change: long enough to fold an editor's
// write-temp-then-rename or a `git checkout` into one notification, short
// enough that an operator sees the rules follow an edit at once.
const DefaultDebounce = 100 * time.Millisecond

// DirConfig configures a directory source.
type DirConfig struct {
	// Dir is the spec root. It must exist and be a directory; a symlink to one
	// is followed.
	Dir string
	// Debounce is the quiet time after the last file event before Watch calls
	// changed (default DefaultDebounce).
	Debounce time.Duration
	// MaxDelay bounds how long a stream of events that never pauses can hold
	// a notification back (default 20 × Debounce).
	MaxDelay time.Duration
	// Logger receives watch errors; nil discards them.
	Logger *slog.Logger
}

// Dir is a Source reading a local directory tree, watched with fsnotify.
type Dir struct {
	root     string
	debounce time.Duration
	maxDelay time.Duration
	log      *slog.Logger

	mu       sync.Mutex
	observed string // last revision (or "error:" + message) handed out or notified
	// events counts the file events Watch has seen; settled is the snapshot
	// its last settle read, with the count when that read began. Latest
	// hands it out instead of reading the tree again while no event came
	// since: a change notified is then read once, not twice.
	events  uint64
	settled *settledRead
}

// settledRead is a snapshot Watch read, and the event count before it.
type settledRead struct {
	snap   Snapshot
	events uint64
}

var _ Source = (*Dir)(nil)

// NewDir returns a directory source for cfg.Dir.
func NewDir(cfg DirConfig) (*Dir, error) {
	if cfg.Dir == "" {
		return nil, errors.New("directory source: no directory given")
	}
	abs, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("directory source %s: %w", cfg.Dir, err)
	}
	root, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("directory source %s: %w", cfg.Dir, err)
	}
	fi, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("directory source %s: %w", cfg.Dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("directory source %s: not a directory", cfg.Dir)
	}
	d := &Dir{root: root, debounce: cfg.Debounce, maxDelay: cfg.MaxDelay, log: cfg.Logger}
	if d.debounce <= 0 {
		d.debounce = DefaultDebounce
	}
	if d.maxDelay <= 0 {
		d.maxDelay = 20 * d.debounce
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	return d, nil
}

// Root returns the resolved absolute path of the watched directory.
func (d *Dir) Root() string { return d.root }

// Latest reads the tree now into an in-memory snapshot. Its Revision is
// "dir:" + the content hash described at contentRevision, so it is the same
// for the same spec files whatever their modification times. While Watch
// runs, the snapshot it read to notice the last change is handed out
// instead, once, as long as no file event came since that read began.
func (d *Dir) Latest(ctx context.Context) (Snapshot, error) {
	d.mu.Lock()
	if sr := d.settled; sr != nil && sr.events == d.events {
		// Handed out once: the source keeps no copy of the tree between changes.
		d.settled = nil
		d.observed = sr.snap.Revision
		d.mu.Unlock()
		return sr.snap, nil
	}
	d.mu.Unlock()
	snap, err := d.read(ctx)
	d.mu.Lock()
	d.observed = observation(snap.Revision, err)
	d.mu.Unlock()
	return snap, err
}

func observation(rev string, err error) string {
	if err != nil {
		return "error:" + err.Error()
	}
	return rev
}

// read copies the tree into a snapshot.
func (d *Dir) read(ctx context.Context) (Snapshot, error) {
	b := newSnapshotBuilder()
	err := filepath.WalkDir(d.root, func(p string, de fs.DirEntry, err error) error {
		return d.visit(ctx, b, p, de, err)
	})
	if err == nil {
		err = b.addLinkTargets(osTree(d.root))
	}
	if err != nil {
		return Snapshot{}, fmt.Errorf("reading spec directory %s: %w", d.root, err)
	}
	files, rev := b.finish()
	return Snapshot{Revision: rev, FS: files}, nil
}

// visit adds the entry p of the walk to b when it is a spec file or a
// symlink with a spec file's name, and skips hidden entries.
func (d *Dir) visit(ctx context.Context, b *snapshotBuilder, p string, de fs.DirEntry, err error) error {
	if err != nil {
		if p == d.root {
			return err
		}
		return unlessGone(err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if p == d.root {
		return nil
	}
	if spec.IsHidden(de.Name()) {
		if de.IsDir() {
			return fs.SkipDir
		}
		return nil
	}
	if de.IsDir() || !spec.IsSpecFile(de.Name()) {
		return nil
	}
	rel, err := filepath.Rel(d.root, p)
	if err != nil {
		return err
	}
	rel = filepath.ToSlash(rel)
	var err2 error
	switch {
	case de.Type()&fs.ModeSymlink != 0:
		err2 = addDirSymlink(b, p, rel)
	case de.Type().IsRegular():
		err2 = addDirFile(b, p, rel)
	default:
		// A FIFO, socket or device is never opened: the snapshot keeps its
		// type, and the loader refuses it as `weir validate` does.
		b.addOther(rel, de.Type())
	}
	if err2 == nil && b.full() {
		return fs.SkipAll
	}
	return err2
}

// addDirSymlink adds the symlink at p to b as rel.
func addDirSymlink(b *snapshotBuilder, p, rel string) error {
	target, err := os.Readlink(p)
	if err != nil {
		return unlessGone(err)
	}
	b.addSymlink(rel, target)
	return nil
}

// addDirFile adds the regular file at p to b as rel. It is opened without
// blocking and without following a link, and checked again once open, so a
// FIFO swapped in after the directory was listed cannot hold the read.
func addDirFile(b *snapshotBuilder, p, rel string) error {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, syscall.ELOOP) {
		return addDirSymlink(b, p, rel) // became a link since the listing
	}
	if err != nil {
		return unlessGone(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		b.addOther(rel, fi.Mode().Type())
		return nil
	}
	return b.addFile(rel, f, fi.Size())
}

// unlessGone drops the error of an entry removed since the walk listed it:
// it is simply not part of this snapshot.
func unlessGone(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// Watch watches the tree recursively until ctx ends and calls changed once a
// burst of file events has settled (Debounce after the last one) and the
// tree's revision differs from the one last returned by Latest or notified, or
// the tree became unreadable (so the caller's Latest reports why). Directories
// that appear are watched as they come, removed ones are dropped; hidden
// directories are not watched.
func (d *Dir) Watch(ctx context.Context, changed func()) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		d.log.Error("watching spec directory", "dir", d.root, "err", err)
		return
	}
	defer w.Close()
	defer d.forgetSettled() // unwatched, nothing would tell it is stale
	d.addTree(w, d.root)
	// Settle once at start: edits made between the caller's first Latest and
	// the watches being in place produced no event.
	q := newQuiet(d.debounce, d.maxDelay)
	defer q.timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if d.handle(w, ev) {
				d.noteEvent()
				q.touch()
			}
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			if d.watchError(w, err) {
				d.noteEvent()
				q.touch()
			}
		case <-q.timer.C:
			q.pending = false
			d.settle(ctx, changed)
		}
	}
}

// watchError logs a watcher error and reports whether the tree must be read
// again.
func (d *Dir) watchError(w *fsnotify.Watcher, err error) bool {
	d.log.Warn("watching spec directory", "dir", d.root, "err", err)
	if !errors.Is(err, fsnotify.ErrEventOverflow) {
		return false
	}
	// Events were lost, possibly the creation of a directory: watch
	// everything again and re-read.
	d.addTree(w, d.root)
	return true
}

// quiet is the debounce timer of Watch: it fires debounce after the last
// touch, but no later than maxDelay after the first touch since it last fired.
type quiet struct {
	debounce, maxDelay time.Duration
	timer              *time.Timer
	pending            bool      // touched since the timer last fired
	first              time.Time // the first of those touches
}

// newQuiet returns a quiet timer that fires at once.
func newQuiet(debounce, maxDelay time.Duration) *quiet {
	return &quiet{debounce: debounce, maxDelay: maxDelay, timer: time.NewTimer(0), pending: true, first: time.Now()}
}

// touch (re)arms the timer for one more event.
func (q *quiet) touch() {
	now := time.Now()
	if !q.pending {
		q.pending, q.first = true, now
	}
	wait := min(q.debounce, q.first.Add(q.maxDelay).Sub(now))
	q.timer.Reset(max(wait, 0))
}

// handle updates the watch list for one event and reports whether the event
// may have changed the snapshot.
func (d *Dir) handle(w *fsnotify.Watcher, ev fsnotify.Event) bool {
	rel, err := filepath.Rel(d.root, ev.Name)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return false
	}
	if rel != "." && spec.IsHiddenPath(filepath.ToSlash(rel)) {
		return false
	}
	if ev.Has(fsnotify.Create) {
		// A new directory (made here or moved in) may already hold files and
		// subdirectories; watch all of it. Lstat so a symlinked directory is
		// not followed out of the tree.
		if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() {
			d.addTree(w, ev.Name)
		}
	}
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		// inotify drops the watch of a deleted directory by itself, but one
		// moved out of the tree would keep reporting under its old name.
		d.dropTree(w, ev.Name)
	}
	return true
}

// addTree watches dir and every non-hidden directory below it.
func (d *Dir) addTree(w *fsnotify.Watcher, dir string) {
	filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return nil // vanished while walking; its removal event follows
		}
		if !de.IsDir() {
			return nil
		}
		if p != d.root && spec.IsHidden(de.Name()) {
			return fs.SkipDir
		}
		if err := w.Add(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			d.log.Warn("watching spec directory", "dir", p, "err", err)
		}
		return nil
	})
}

// dropTree stops watching p and anything watched below it.
func (d *Dir) dropTree(w *fsnotify.Watcher, p string) {
	if p == d.root {
		return
	}
	prefix := p + string(filepath.Separator)
	for _, watched := range w.WatchList() {
		if watched == p || strings.HasPrefix(watched, prefix) {
			_ = w.Remove(watched) // already gone when the directory was deleted
		}
	}
}

// settle re-reads the tree and calls changed when what Latest would return
// differs from what was last handed out.
func (d *Dir) settle(ctx context.Context, changed func()) {
	d.mu.Lock()
	events := d.events
	d.mu.Unlock()
	snap, err := d.read(ctx)
	if ctx.Err() != nil {
		return
	}
	obs := observation(snap.Revision, err)
	d.mu.Lock()
	moved := obs != d.observed
	d.observed = obs
	d.settled = nil
	if err == nil {
		d.settled = &settledRead{snap: snap, events: events}
	}
	d.mu.Unlock()
	if moved {
		d.log.Debug("spec directory changed", "dir", d.root, "revision", snap.Revision, "err", err)
		changed()
	}
}

// forgetSettled drops the snapshot Watch read.
func (d *Dir) forgetSettled() {
	d.mu.Lock()
	d.settled = nil
	d.mu.Unlock()
}

// noteEvent counts a file event: a snapshot read before it is stale.
func (d *Dir) noteEvent() {
	d.mu.Lock()
	d.events++
	d.mu.Unlock()
}

// osTree is a linkTree over a directory on disk.
type osTree string

func (t osTree) path(p string) string { return filepath.Join(string(t), filepath.FromSlash(p)) }

func (t osTree) Lstat(p string) (fs.FileInfo, error) { return os.Lstat(t.path(p)) }

func (t osTree) ReadLink(p string) (string, error) { return os.Readlink(t.path(p)) }

func (t osTree) open(p string) (io.ReadCloser, error) {
	return os.OpenFile(t.path(p), os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
}
