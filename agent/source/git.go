package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// Defaults of GitConfig.
const (
	DefaultBranch = "main"
	DefaultPoll   = 15 * time.Second
	// DefaultTimeout bounds each listing and each download: a server that
	// stops answering (SIGSTOP, a black-holed route) costs one timeout, not
	// the agent's attention for good.
	DefaultTimeout = time.Minute
)

// remoteName is the only remote of the clone.
const remoteName = "origin"

// GitConfig configures a Git source.
type GitConfig struct {
	// URL of the repository: git://, file://, ssh:// (or scp-like user@host:path), http(s)://.
	// A user name and password in an http(s) URL are taken out of it and
	// sent as basic auth, so that the clone's .git/config, logs, errors and
	// status only ever hold the URL without them.
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
	// Timeout bounds each listing and each fetch (default DefaultTimeout).
	Timeout time.Duration
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
	urlPass  string                 // a password that came in the URL, sent as basic auth
	log      *slog.Logger

	mu    sync.Mutex // serializes Latest: one fetch and checkout at a time
	repo  *git.Repository
	last  Snapshot  // last good snapshot returned
	blobs blobNodes // the files of last, by blob: the next snapshot reads only new blobs

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
	cfg, urlPass, err := cfg.withoutCredentials()
	if err != nil {
		return nil, err
	}
	name := RedactURL(cfg.URL)
	cfg, err = cfg.withDefaults(name)
	if err != nil {
		return nil, err
	}
	ep, err := cfg.endpoint(name)
	if err != nil {
		return nil, err
	}
	g := &Git{
		cfg:      cfg,
		ep:       ep,
		repoDir:  filepath.Join(cfg.StateDir, "repo"),
		refName:  plumbing.NewBranchReferenceName(cfg.Branch),
		trackRef: plumbing.NewRemoteReferenceName(remoteName, cfg.Branch),
		name:     name,
		urlPass:  urlPass,
	}
	g.log = cfg.Logger.With("repo", g.name, "branch", cfg.Branch)
	if cfg.VerifyKeysFile != "" {
		if g.keyRing, err = readKeyRing(cfg.VerifyKeysFile); err != nil {
			return nil, err
		}
	}
	if _, err := g.auth(); err != nil { // fail at start on an unreadable key file, not at the first poll
		return nil, err
	}
	return g, nil
}

// withDefaults checks the state directory, branch and path of c and fills
// in the defaults; name is the URL for messages.
func (c GitConfig) withDefaults(name string) (GitConfig, error) {
	if c.StateDir == "" {
		return c, fmt.Errorf("git source %s: no state directory", name)
	}
	if c.Branch == "" {
		c.Branch = DefaultBranch
	}
	if !plumbing.NewBranchReferenceName(c.Branch).IsBranch() || strings.ContainsAny(c.Branch, " ~^:?*[\\") {
		return c, fmt.Errorf("git source %s: invalid branch name %q", name, c.Branch)
	}
	p, err := cleanSpecPath(c.Path)
	if err != nil {
		return c, fmt.Errorf("git source %s: %w", name, err)
	}
	c.Path = p
	if c.Poll <= 0 {
		c.Poll = DefaultPoll
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	c.Backoff = c.Backoff.withDefaults(c.Poll)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	return c, nil
}

// endpoint parses the URL and checks that the credentials given suit it.
func (c GitConfig) endpoint(name string) (*transport.Endpoint, error) {
	ep, err := transport.NewEndpoint(c.URL)
	if err != nil {
		return nil, fmt.Errorf("git source: parsing URL %q: %w", name, withoutURL(err))
	}
	if c.SSHKeyFile != "" && ep.Protocol != "ssh" {
		return nil, fmt.Errorf("git source %s: an SSH key is given but the URL is not an ssh URL", name)
	}
	if c.PasswordFile != "" && ep.Protocol != "http" && ep.Protocol != "https" {
		return nil, fmt.Errorf("git source %s: a password file is given but the URL is not an http(s) URL", name)
	}
	return ep, nil
}

// RedactURL hides a password or token embedded in a repository URL (also
// an scp-like one), so it never reaches an error message, a log line or
// /status. It is the one place weir prints a URL given by the user.
func RedactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Scheme != "" && u.Opaque == "" {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
		return u.String()
	}
	// Unparsable or scp-like (user@host:path): a ':' before the last '@'
	// starts what could be a password.
	if at := strings.LastIndex(raw, "@"); at > 0 {
		if c := strings.Index(raw[:at], ":"); c >= 0 {
			return raw[:c+1] + "xxxxx" + raw[at:]
		}
	}
	return raw
}

// withoutCredentials takes a user name and password out of an http(s) URL:
// the URL go-git sees, stores in the clone and puts in its errors has
// none, and the password is returned to be sent as basic auth. A password
// in any other URL, or one given twice, is refused.
func (c GitConfig) withoutCredentials() (GitConfig, string, error) {
	u, err := url.Parse(c.URL)
	if err != nil && strings.Contains(c.URL, "://") {
		return c, "", fmt.Errorf("git source: parsing URL %q: %w", RedactURL(c.URL), withoutURL(err))
	}
	if err != nil || u.Scheme == "" || u.User == nil {
		return c, "", nil // scp-like, or nothing to take out
	}
	pass, hasPass := u.User.Password()
	name := RedactURL(c.URL)
	if u.Scheme != "http" && u.Scheme != "https" {
		if hasPass {
			return c, "", fmt.Errorf("git source %s: a password in a %s URL is not supported (use --ssh-key for ssh)", name, u.Scheme)
		}
		return c, "", nil
	}
	switch user := u.User.Username(); {
	case hasPass && c.PasswordFile != "":
		return c, "", fmt.Errorf("git source %s: a password both in the URL and in a password file", name)
	case c.Username != "" && user != "" && user != c.Username:
		return c, "", fmt.Errorf("git source %s: user %q in the URL but %q given as the user name", name, user, c.Username)
	case c.Username == "":
		c.Username = user
	}
	u.User = nil
	c.URL = u.String()
	return c, pass, nil
}

// withoutURL drops the URL a *url.Error quotes (with any password in it),
// keeping its cause.
func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
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
	repo, commit, err := g.commitAt(ctx, hash)
	if err != nil {
		return Snapshot{}, errorObservation(err), err
	}
	hash = commit.Hash
	if err := g.verify(commit); err != nil {
		return Snapshot{}, hash.String(), err
	}
	tree, err := g.specTree(commit)
	if err != nil {
		return Snapshot{}, hash.String(), err
	}
	snap, blobs, err := snapshotTree(repo.Storer, tree, g.blobs)
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
	g.last, g.blobs = snap, blobs
	return snap, hash.String(), nil
}

// commitAt returns the clone and the commit the branch points to, fetching
// when the listed hash is not in the clone yet (a restart keeps the clone,
// so it may be); the branch may have moved on by then.
func (g *Git) commitAt(ctx context.Context, listed plumbing.Hash) (*git.Repository, *object.Commit, error) {
	repo, err := g.open()
	if err != nil {
		return nil, nil, err
	}
	hash := listed
	if _, err := repo.CommitObject(hash); err != nil {
		if hash, err = g.fetch(ctx, repo, listed); err != nil {
			return nil, nil, err
		}
	}
	commit, err := repo.CommitObject(hash)
	if err != nil {
		return nil, nil, fmt.Errorf("git source %s: reading fetched commit %s: %w", g.name, hash, err)
	}
	return repo, commit, nil
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
