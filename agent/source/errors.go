package source

import "errors"

// Kinds of Git source failure. Every error Latest returns for one of these
// cases matches its sentinel with errors.Is; the message names the URL,
// branch, path or commit involved, e.g.
//
//	branch "main" not found on git://127.0.0.1:9418/specs.git
//	commit abc1234 is not signed
//	commit abc1234 is signed by unknown key 0x0123456789ABCDEF
var (
	// ErrBranchNotFound: the remote has no such branch (deleted, never pushed, or an empty repository).
	ErrBranchNotFound = errors.New("branch not found")
	// ErrUnreachable: the server could not be reached (refused, timed out, DNS); retried with backoff.
	ErrUnreachable = errors.New("git server unreachable")
	// ErrNotRepository: the server answered but there is no repository at that URL.
	ErrNotRepository = errors.New("not a git repository")
	// ErrAuth: the server wants credentials, or refused the ones given.
	ErrAuth = errors.New("git authentication failed")
	// ErrPathNotFound: the spec path does not exist (or is not a directory) at the fetched commit.
	ErrPathNotFound = errors.New("spec path not found")
	// ErrSignature: the commit is unsigned, or not signed by a key in the verify keys file; it is never returned as a Snapshot.
	ErrSignature = errors.New("commit signature refused")
)

// kindError carries a readable message and one of the sentinels above, and
// keeps the underlying cause reachable for errors.As.
type kindError struct {
	msg   string
	kind  error
	cause error
}

func (e *kindError) Error() string {
	if e.cause != nil {
		return e.msg + ": " + e.cause.Error()
	}
	return e.msg
}

func (e *kindError) Is(target error) bool { return target == e.kind }

func (e *kindError) Unwrap() error { return e.cause }
