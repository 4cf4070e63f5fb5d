package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/go-git/go-git/v5/storage/memory"
)

// auth builds the transport credentials for the URL's protocol; nil means none.
func (g *Git) auth() (transport.AuthMethod, error) {
	switch {
	case g.cfg.SSHKeyFile != "":
		return g.sshAuth()
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
	case g.urlPass != "":
		return &githttp.BasicAuth{Username: g.cfg.Username, Password: g.urlPass}, nil
	case g.cfg.Username != "":
		return &githttp.BasicAuth{Username: g.cfg.Username}, nil
	}
	return nil, nil
}

// sshAuth reads the SSH key and, when one is given, the known hosts the
// server's key must be in.
func (g *Git) sshAuth() (transport.AuthMethod, error) {
	user := g.ep.User
	if user == "" {
		user = "git"
	}
	keys, err := gitssh.NewPublicKeysFromFile(user, g.cfg.SSHKeyFile, "")
	if err != nil {
		return nil, fmt.Errorf("git source %s: reading ssh key %s: %w", g.name, g.cfg.SSHKeyFile, err)
	}
	if g.cfg.KnownHostsFile == "" {
		return keys, nil
	}
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
	return keys, nil
}

// list returns the hash the remote branch points to, within Timeout. It
// uses a detached in-memory remote, so Watch can list while Latest holds the
// clone.
func (g *Git) list(ctx context.Context) (plumbing.Hash, error) {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
	defer cancel()
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
	case errors.Is(err, context.DeadlineExceeded):
		return &kindError{msg: fmt.Sprintf("git server %s: %s got no answer within %s", g.name, op, g.cfg.Timeout), kind: ErrUnreachable, cause: err}
	case errors.Is(err, context.Canceled):
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
	// The state directory is the agent's alone (see agent.PrepareStateDir);
	// create it so before the clone lands in it.
	if err := os.MkdirAll(g.cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("git source %s: creating state directory: %w", g.name, err)
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

// fetch fetches the branch shallow (see fetchDepth), within Timeout, and
// returns the commit it now points to (listed may already be stale when
// someone pushed in between).
func (g *Git) fetch(ctx context.Context, repo *git.Repository, listed plumbing.Hash) (plumbing.Hash, error) {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
	defer cancel()
	auth, err := g.auth()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	start := time.Now()
	err = repo.FetchContext(ctx, &git.FetchOptions{
		RemoteName: remoteName,
		RefSpecs:   []config.RefSpec{g.refSpec()},
		Depth:      g.fetchDepth(repo),
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

// fetchDepth is the depth of the next fetch: 1 into a clone that holds no
// commit of the branch yet, 2 once it does. Asked for depth 1, git
// upload-pack sends the new commit's whole tree although the clone
// announces the commit before it (the new commit becomes a shallow boundary
// whose parent it never walks to): every push of one changed file cost a
// download and a pack of the whole tree (TestGitFetchesOnlyWhatChanged). At
// depth 2 the boundary of a single new commit is the commit the clone
// holds, so only what changed comes; several commits pushed at once cost one
// whole tree, as depth 1 always did.
func (g *Git) fetchDepth(repo *git.Repository) int {
	ref, err := repo.Reference(g.trackRef, true)
	if err != nil {
		return 1
	}
	if _, err := repo.CommitObject(ref.Hash()); err != nil {
		return 1
	}
	return 2
}

func errorObservation(err error) string {
	for _, k := range []error{ErrUnreachable, ErrBranchNotFound, ErrNotRepository, ErrAuth} {
		if errors.Is(err, k) {
			return "error:" + k.Error()
		}
	}
	return "error:" + err.Error()
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
