package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/go-git/go-git/v5/storage/memory"

	"weir/spec"
)

// Defaults of GitConfig.
const (
	DefaultBranch = "main"
	DefaultPoll   = 15 * time.Second
)

// remoteName is the only remote of the clone.
const remoteName = "origin"

// GitConfig configures a Git source.
type GitConfig struct {
	// URL of the repository: git://, file://, ssh:// (or scp-like user@host:path), http(s)://.
	URL string
	// Branch to follow (default DefaultBranch).
	Branch string
	// Path is the subdirectory holding the specs, slash-separated, relative
	// to the repository root ("" = the root).
	Path string
	// StateDir holds the clone, under StateDir/repo (a normal repository on
	// disk, so a restart does not download it again).
	StateDir string
	// Poll is how often Watch lists the remote branch (default DefaultPoll),
	// each wait stretched by ±Jitter.
	Poll time.Duration
	// Backoff spaces retries while the server cannot be reached.
	Backoff Backoff
	// SSHKeyFile is a private key (PEM/OpenSSH, no passphrase) for ssh URLs;
	// KnownHostsFile the known_hosts the server's key is checked against
	// (default: ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts).
	SSHKeyFile, KnownHostsFile string
	// Username and PasswordFile give HTTP basic auth for http(s) URLs; the
	// file holds a password or an access token and is re-read on every
	// request, so a rotated token needs no restart. Username defaults to "git"
	// (token-based servers accept any non-empty name).
	Username, PasswordFile string
	// VerifyKeysFile holds armored OpenPGP public keys. When set, a branch
	// tip that is unsigned or not signed by one of them is refused.
	VerifyKeysFile string
	// Logger receives fetch and poll events; nil discards them.
	Logger *slog.Logger
	// Now is the clock for Stats (default time.Now).
	Now func() time.Time
	// Rand returns numbers in [0, 1) for the poll jitter (default math/rand/v2).
	Rand func() float64
}

// GitStats counts what a Git source did, for metrics and status.
type GitStats struct {
	// Lists counts remote listings (ls-remote), by Latest and by Watch.
	Lists int
	// Fetches counts fetches that transferred objects (the ref had moved).
	Fetches int
	// Errors counts failed Latest calls and failed listings by Watch.
	Errors int
	// LastSuccess is when Latest last returned a snapshot.
	LastSuccess time.Time
	// LastError is the last failure of Latest ("" after a success).
	LastError string
}

// Git is a Source following one branch of a Git repository.
type Git struct {
	cfg      GitConfig
	ep       *transport.Endpoint
	repoDir  string
	refName  plumbing.ReferenceName // refs/heads/<branch> on the remote
	trackRef plumbing.ReferenceName // refs/remotes/origin/<branch> in the clone
	keyRing  string                 // armored; "" when verification is off
	name     string                 // the URL without credentials, for messages and logs
	log      *slog.Logger

	mu   sync.Mutex // serializes Latest: one fetch and checkout at a time
	repo *git.Repository
	last Snapshot // last good snapshot returned

	smu      sync.Mutex
	observed string // last remote observation, see Watch
	stats    GitStats
}

var _ Source = (*Git)(nil)

// NewGit checks cfg and returns a Git source. It does not touch the network;
// the first Latest clones.
func NewGit(cfg GitConfig) (*Git, error) {
	if cfg.URL == "" {
		return nil, errors.New("git source: no repository URL")
	}
	name := redactURL(cfg.URL)
	if cfg.StateDir == "" {
		return nil, fmt.Errorf("git source %s: no state directory", name)
	}
	if cfg.Branch == "" {
		cfg.Branch = DefaultBranch
	}
	if !plumbing.NewBranchReferenceName(cfg.Branch).IsBranch() || strings.ContainsAny(cfg.Branch, " ~^:?*[\\") {
		return nil, fmt.Errorf("git source %s: invalid branch name %q", name, cfg.Branch)
	}
	p, err := cleanSpecPath(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("git source %s: %w", name, err)
	}
	cfg.Path = p
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	cfg.Backoff = cfg.Backoff.withDefaults(cfg.Poll)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	ep, err := transport.NewEndpoint(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("git source: parsing URL %q: %w", name, err)
	}
	if cfg.SSHKeyFile != "" && ep.Protocol != "ssh" {
		return nil, fmt.Errorf("git source %s: an SSH key is given but the URL is not an ssh URL", name)
	}
	if cfg.PasswordFile != "" && ep.Protocol != "http" && ep.Protocol != "https" {
		return nil, fmt.Errorf("git source %s: a password file is given but the URL is not an http(s) URL", name)
	}
	g := &Git{
		cfg:      cfg,
		ep:       ep,
		repoDir:  filepath.Join(cfg.StateDir, "repo"),
		refName:  plumbing.NewBranchReferenceName(cfg.Branch),
		trackRef: plumbing.NewRemoteReferenceName(remoteName, cfg.Branch),
		name:     name,
	}
	g.log = cfg.Logger.With("repo", g.name, "branch", cfg.Branch)
	if cfg.VerifyKeysFile != "" {
		data, err := os.ReadFile(cfg.VerifyKeysFile)
		if err != nil {
			return nil, fmt.Errorf("git source: reading verify keys: %w", err)
		}
		ring, err := openpgp.ReadArmoredKeyRing(strings.NewReader(string(data)))
		if err != nil {
			return nil, fmt.Errorf("git source: reading verify keys %s: %w", cfg.VerifyKeysFile, err)
		}
		if len(ring) == 0 {
			return nil, fmt.Errorf("git source: verify keys %s holds no key", cfg.VerifyKeysFile)
		}
		g.keyRing = string(data)
	}
	if _, err := g.auth(); err != nil { // fail at start on an unreadable key file, not at the first poll
		return nil, err
	}
	return g, nil
}

// redactURL drops a password or token embedded in an http(s) URL, so it
// never reaches an error message, a log line or /status.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil || u.Scheme == "" {
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// cleanSpecPath normalizes a --path value to a slash-separated path relative
// to the repository root ("" for the root) and refuses one leaving it.
func cleanSpecPath(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	c := path.Clean(filepath.ToSlash(p))
	if path.IsAbs(c) || c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("spec path %q must be relative to the repository root", p)
	}
	if c == "." {
		return "", nil
	}
	return c, nil
}

// RepoDir returns where the clone lives.
func (g *Git) RepoDir() string { return g.repoDir }

// Last returns the last snapshot Latest returned successfully, if any. It
// survives failures of later calls.
func (g *Git) Last() (Snapshot, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.last, g.last.Revision != ""
}

// Stats returns a copy of the counters.
func (g *Git) Stats() GitStats {
	g.smu.Lock()
	defer g.smu.Unlock()
	return g.stats
}

// auth builds the transport credentials for the URL's protocol; nil means none.
func (g *Git) auth() (transport.AuthMethod, error) {
	switch {
	case g.cfg.SSHKeyFile != "":
		user := g.ep.User
		if user == "" {
			user = "git"
		}
		keys, err := gitssh.NewPublicKeysFromFile(user, g.cfg.SSHKeyFile, "")
		if err != nil {
			return nil, fmt.Errorf("git source %s: reading ssh key %s: %w", g.name, g.cfg.SSHKeyFile, err)
		}
		if g.cfg.KnownHostsFile != "" {
			db, err := gitssh.NewKnownHostsDb(g.cfg.KnownHostsFile)
			if err != nil {
				return nil, fmt.Errorf("git source %s: reading known hosts %s: %w", g.name, g.cfg.KnownHostsFile, err)
			}
			port := g.ep.Port
			if port == 0 {
				port = 22
			}
			keys.HostKeyCallback = db.HostKeyCallback()
			keys.HostKeyAlgorithms = db.HostKeyAlgorithms(net.JoinHostPort(g.ep.Host, strconv.Itoa(port)))
		}
		return keys, nil
	case g.cfg.PasswordFile != "":
		data, err := os.ReadFile(g.cfg.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("git source %s: reading password file: %w", g.name, err)
		}
		user := g.cfg.Username
		if user == "" {
			user = "git"
		}
		return &githttp.BasicAuth{Username: user, Password: strings.TrimRight(string(data), "\r\n")}, nil
	case g.cfg.Username != "":
		return &githttp.BasicAuth{Username: g.cfg.Username}, nil
	}
	return nil, nil
}

// Latest lists the remote branch and, when it points elsewhere than the last
// snapshot, fetches it (shallow, forced, so a rewritten branch is followed),
// verifies the commit's signature when keys are configured, checks the spec
// path exists, checks the commit out into the clone's worktree and returns
// it. When nothing moved it costs one listing and returns the same snapshot.
//
// The returned FS is an in-memory copy of the spec files under Path taken from
// the commit's own objects, so it is exactly that commit whatever happens to
// the worktree later. On any error the clone, its worktree and Last stay at
// the previous good commit: a refused or broken revision is never checked out.
func (g *Git) Latest(ctx context.Context) (Snapshot, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	snap, obs, err := g.latest(ctx)
	g.smu.Lock()
	defer g.smu.Unlock()
	g.observed = obs
	if err != nil {
		g.stats.Errors++
		g.stats.LastError = err.Error()
		return Snapshot{}, err
	}
	g.stats.LastSuccess = g.cfg.Now()
	g.stats.LastError = ""
	return snap, nil
}

// latest does Latest's work. obs is what Watch compares its listings with: the
// listed hash when the outcome is a property of that commit (accepted,
// refused, no such path), so Watch does not notify again for it; an error
// observation when it was transient, so the next good listing notifies.
func (g *Git) latest(ctx context.Context) (Snapshot, string, error) {
	hash, err := g.list(ctx)
	if err != nil {
		return Snapshot{}, errorObservation(err), err
	}
	if g.last.Revision == hash.String() {
		return g.last, hash.String(), nil
	}
	repo, err := g.open()
	if err != nil {
		return Snapshot{}, errorObservation(err), err
	}
	if _, err := repo.CommitObject(hash); err != nil {
		// Not here yet (a restart keeps the clone, so it may be).
		if hash, err = g.fetch(ctx, repo, hash); err != nil {
			return Snapshot{}, errorObservation(err), err
		}
	}
	commit, err := repo.CommitObject(hash)
	if err != nil {
		err = fmt.Errorf("git source %s: reading fetched commit %s: %w", g.name, hash, err)
		return Snapshot{}, errorObservation(err), err
	}
	if err := g.verify(commit); err != nil {
		return Snapshot{}, hash.String(), err
	}
	tree, err := g.specTree(commit)
	if err != nil {
		return Snapshot{}, hash.String(), err
	}
	snap, err := snapshotTree(repo.Storer, tree)
	if err != nil {
		err = fmt.Errorf("git source %s: reading commit %s: %w", g.name, short(hash), err)
		return Snapshot{}, errorObservation(err), err
	}
	snap.Revision = hash.String()
	if err := g.checkout(repo, hash); err != nil {
		// The snapshot comes from the objects, not the worktree: a worktree
		// that cannot be written (full disk, a path the filesystem refuses)
		// costs the operator's view of it, not the revision.
		g.log.Warn("checking out worktree", "commit", short(hash), "err", err)
	}
	g.log.Info("new revision", "commit", short(hash))
	g.last = snap
	return snap, hash.String(), nil
}

func errorObservation(err error) string {
	for _, k := range []error{ErrUnreachable, ErrBranchNotFound, ErrNotRepository, ErrAuth} {
		if errors.Is(err, k) {
			return "error:" + k.Error()
		}
	}
	return "error:" + err.Error()
}

// list returns the hash the remote branch points to. It uses a detached
// in-memory remote, so Watch can list while Latest holds the clone.
func (g *Git) list(ctx context.Context) (plumbing.Hash, error) {
	g.smu.Lock()
	g.stats.Lists++
	g.smu.Unlock()
	auth, err := g.auth()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	rem := git.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: remoteName, URLs: []string{g.cfg.URL}})
	refs, err := rem.ListContext(ctx, &git.ListOptions{Auth: auth})
	if err != nil {
		return plumbing.ZeroHash, g.classify("listing", err)
	}
	for _, r := range refs {
		if r.Name() == g.refName && r.Type() == plumbing.HashReference {
			return r.Hash(), nil
		}
	}
	return plumbing.ZeroHash, &kindError{msg: fmt.Sprintf("branch %q not found on %s", g.cfg.Branch, g.name), kind: ErrBranchNotFound}
}

// classify turns a transport error into one of the sentinel kinds.
func (g *Git) classify(op string, err error) error {
	var netErr net.Error
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("git source %s: %s: %w", g.name, op, err)
	case errors.Is(err, transport.ErrEmptyRemoteRepository):
		return &kindError{msg: fmt.Sprintf("branch %q not found on %s (the repository is empty)", g.cfg.Branch, g.name), kind: ErrBranchNotFound}
	case errors.Is(err, transport.ErrRepositoryNotFound):
		return &kindError{msg: fmt.Sprintf("%s is not a git repository", g.name), kind: ErrNotRepository, cause: err}
	case errors.Is(err, transport.ErrAuthenticationRequired), errors.Is(err, transport.ErrAuthorizationFailed), errors.Is(err, transport.ErrInvalidAuthMethod):
		return &kindError{msg: fmt.Sprintf("%s %s", op, g.name), kind: ErrAuth, cause: err}
	case errors.As(err, &netErr), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH), errors.Is(err, io.ErrUnexpectedEOF):
		return &kindError{msg: fmt.Sprintf("git server %s unreachable", g.name), kind: ErrUnreachable, cause: err}
	}
	return fmt.Errorf("git source %s: %s: %w", g.name, op, err)
}

// open opens the clone, creating it empty when it does not exist, is not a
// repository, or belongs to another URL (the --repo flag changed).
func (g *Git) open() (*git.Repository, error) {
	if g.repo != nil {
		return g.repo, nil
	}
	repo, err := git.PlainOpen(g.repoDir)
	if err == nil {
		if rem, rerr := repo.Remote(remoteName); rerr == nil && len(rem.Config().URLs) == 1 && rem.Config().URLs[0] == g.cfg.URL {
			g.repo = repo
			return repo, nil
		}
		g.log.Info("clone belongs to another repository; cloning again", "dir", g.repoDir)
	} else if !errors.Is(err, git.ErrRepositoryNotExists) {
		g.log.Warn("clone unreadable; cloning again", "dir", g.repoDir, "err", err)
	}
	if err := os.RemoveAll(g.repoDir); err != nil {
		return nil, fmt.Errorf("git source %s: removing old clone: %w", g.name, err)
	}
	// Init plus a remote, rather than PlainClone: the first fetch is then the
	// same code as every later one, and a failed first clone leaves a valid
	// empty repository instead of a half-written directory.
	repo, err = git.PlainInit(g.repoDir, false)
	if err != nil {
		return nil, fmt.Errorf("git source %s: creating clone in %s: %w", g.name, g.repoDir, err)
	}
	_, err = repo.CreateRemote(&config.RemoteConfig{
		Name:  remoteName,
		URLs:  []string{g.cfg.URL},
		Fetch: []config.RefSpec{g.refSpec()},
	})
	if err != nil {
		return nil, fmt.Errorf("git source %s: configuring clone: %w", g.name, err)
	}
	g.repo = repo
	return repo, nil
}

// refSpec maps only the followed branch, forced ("+"): a force-pushed branch
// replaces the tracking ref instead of failing as a non-fast-forward.
func (g *Git) refSpec() config.RefSpec {
	return config.RefSpec(fmt.Sprintf("+%s:%s", g.refName, g.trackRef))
}

// fetch fetches the branch with depth 1 and returns the commit it now points
// to (listed may already be stale when someone pushed in between).
func (g *Git) fetch(ctx context.Context, repo *git.Repository, listed plumbing.Hash) (plumbing.Hash, error) {
	auth, err := g.auth()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	start := time.Now()
	err = repo.FetchContext(ctx, &git.FetchOptions{
		RemoteName: remoteName,
		RefSpecs:   []config.RefSpec{g.refSpec()},
		Depth:      1,
		Force:      true,
		Tags:       git.NoTags,
		Auth:       auth,
	})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		if errors.Is(err, git.NoMatchingRefSpecError{}) {
			return plumbing.ZeroHash, &kindError{msg: fmt.Sprintf("branch %q not found on %s", g.cfg.Branch, g.name), kind: ErrBranchNotFound}
		}
		return plumbing.ZeroHash, g.classify("fetching", err)
	}
	g.smu.Lock()
	g.stats.Fetches++
	g.smu.Unlock()
	ref, err := repo.Reference(g.trackRef, true)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("git source %s: reading %s after fetch: %w", g.name, g.trackRef, err)
	}
	g.log.Debug("fetched", "listed", short(listed), "fetched", short(ref.Hash()), "took", time.Since(start))
	return ref.Hash(), nil
}

// verify refuses the commit unless it carries an OpenPGP signature by one of
// the configured keys. Only the tip is checked, as Flux does: it is the
// revision that gets applied, and with a shallow clone its ancestors are not
// even present.
func (g *Git) verify(c *object.Commit) error {
	if g.keyRing == "" {
		return nil
	}
	if strings.TrimSpace(c.PGPSignature) == "" {
		return &kindError{msg: fmt.Sprintf("commit %s is not signed", short(c.Hash)), kind: ErrSignature}
	}
	if _, err := c.Verify(g.keyRing); err != nil {
		key := signatureKey(c.PGPSignature)
		if errors.Is(err, pgperrors.ErrUnknownIssuer) {
			return &kindError{msg: fmt.Sprintf("commit %s is signed by unknown key %s", short(c.Hash), key), kind: ErrSignature}
		}
		return &kindError{msg: fmt.Sprintf("commit %s has an invalid signature (key %s)", short(c.Hash), key), kind: ErrSignature, cause: err}
	}
	return nil
}

// signatureKey names the key an armored signature claims to be made by:
// its fingerprint when present, else its 64-bit key ID.
func signatureKey(armored string) string {
	block, err := armor.Decode(strings.NewReader(armored))
	if err != nil {
		return "(not an OpenPGP signature)"
	}
	p, err := packet.Read(block.Body)
	if err != nil {
		return "(unreadable signature)"
	}
	sig, ok := p.(*packet.Signature)
	if !ok {
		return "(unreadable signature)"
	}
	switch {
	case len(sig.IssuerFingerprint) > 0:
		return fmt.Sprintf("%X", sig.IssuerFingerprint)
	case sig.IssuerKeyId != nil:
		return fmt.Sprintf("%016X", *sig.IssuerKeyId)
	}
	return "(no issuer)"
}

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

// snapshotTree copies the spec files and symlinks of tree into a snapshot.
func snapshotTree(objects storer.EncodedObjectStorer, tree *object.Tree) (Snapshot, error) {
	b := newSnapshotBuilder()
	w := object.NewTreeWalker(tree, true, nil)
	defer w.Close()
	for {
		name, e, err := w.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Snapshot{}, err
		}
		if e.Mode == filemode.Dir || e.Mode == filemode.Submodule || !spec.IsSpecFile(name) || spec.IsHiddenPath(name) {
			continue
		}
		blob, err := object.GetBlob(objects, e.Hash)
		if err != nil {
			return Snapshot{}, fmt.Errorf("%s: %w", name, err)
		}
		r, err := blob.Reader()
		if err != nil {
			return Snapshot{}, fmt.Errorf("%s: %w", name, err)
		}
		if e.Mode == filemode.Symlink {
			target, err := io.ReadAll(io.LimitReader(r, 4096))
			r.Close()
			if err != nil {
				return Snapshot{}, fmt.Errorf("%s: %w", name, err)
			}
			b.addSymlink(name, string(target))
			continue
		}
		err = b.addFile(name, r)
		r.Close()
		if err != nil {
			return Snapshot{}, fmt.Errorf("%s: %w", name, err)
		}
	}
	if err := b.addLinkTargets(gitTree{objects, tree}); err != nil {
		return Snapshot{}, err
	}
	files, _ := b.finish()
	return Snapshot{FS: files}, nil
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
	b, err := io.ReadAll(io.LimitReader(r, 4096))
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

// checkout points the worktree at hash, discarding anything else, so the
// clone under the state directory shows what is applied.
func (g *Git) checkout(repo *git.Repository, hash plumbing.Hash) error {
	wt, err := repo.Worktree()
	if err != nil {
		return err
	}
	return wt.Checkout(&git.CheckoutOptions{Hash: hash, Force: true})
}

// Watch lists the remote branch every Poll (±Jitter) until ctx ends and calls
// changed when the listing differs from the last observation — a moved or
// rewritten branch, or a branch, server or repository that disappeared or came
// back — so that the caller's Latest fetches or reports it. It never fetches
// itself. Consecutive listing failures back off as Backoff says.
func (g *Git) Watch(ctx context.Context, changed func()) {
	failures := 0
	timer := time.NewTimer(nextDelay(g.cfg.Poll, g.cfg.Backoff, 0, g.cfg.Rand()))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		hash, err := g.list(ctx)
		if ctx.Err() != nil {
			return
		}
		obs := hash.String()
		if err != nil {
			failures++
			obs = errorObservation(err)
			level := slog.LevelDebug
			if failures == 1 {
				level = slog.LevelWarn
			}
			g.log.Log(ctx, level, "polling remote", "err", err, "failures", failures)
		} else {
			failures = 0
		}
		g.smu.Lock()
		if err != nil {
			g.stats.Errors++
		}
		moved := obs != g.observed
		g.observed = obs
		g.smu.Unlock()
		if moved {
			changed()
		}
		timer.Reset(nextDelay(g.cfg.Poll, g.cfg.Backoff, failures, g.cfg.Rand()))
	}
}

// short abbreviates a commit hash as git log --oneline does.
func short(h plumbing.Hash) string { return h.String()[:7] }
