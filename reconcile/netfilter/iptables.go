package netfilter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"runtime"
	"strings"

	goipt "github.com/coreos/go-iptables/iptables"
	"github.com/vishvananda/netns"
)

// Backends NewIPTables accepts.
const (
	BackendAuto   = "auto"   // whatever the host's `iptables` is (Debian: nft)
	BackendNFT    = "nft"    // iptables-nft, iptables-nft-restore, iptables-nft-save
	BackendLegacy = "legacy" // iptables-legacy and its restore/save
)

// IPTablesOptions configures NewIPTables.
type IPTablesOptions struct {
	// Backend is BackendAuto (also ""), BackendNFT or BackendLegacy. Auto follows
	// the host's `iptables` binary (its --version says "nf_tables" or
	// "legacy"), as go-iptables does, so weir writes where the admin's tools look.
	Backend string
	// Netns, when set, is the name of a network namespace under /run/netns that
	// every operation runs in. Commands are started from an OS thread locked
	// to the goroutine and switched into the namespace (as CNI plugins do), so
	// the iptables binaries, go-iptables and netlink all act inside it without
	// an `ip netns exec` wrapper. Tests and benchmarks use it; the agent does
	// not.
	Netns string
	// Logger receives debug lines for each command; nil discards them.
	Logger *slog.Logger
}

// IPTables is the real Netfilter: whole-table transactions through
// iptables-restore --noflush, reads through iptables-save and iptables -S, and
// jump rules through go-iptables.
type IPTables struct {
	ipt     *goipt.IPTables
	backend string
	restore string // path of the *-restore binary of the backend
	save    string // path of the *-save binary of the backend
	netns   string
	log     *slog.Logger
}

var _ Netfilter = (*IPTables)(nil)

// NewIPTables finds the binaries of the chosen backend and checks that they run.
func NewIPTables(opts IPTablesOptions) (*IPTables, error) {
	t := &IPTables{netns: opts.Netns, log: opts.Logger}
	if t.log == nil {
		t.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	bin, backend, err := backendBinary(opts.Backend)
	if err != nil {
		return nil, err
	}
	t.backend = backend
	err = t.do(func() error {
		ipt, err := goipt.New(goipt.Path(bin))
		if err != nil {
			return fmt.Errorf("opening %s: %w", bin, err)
		}
		t.ipt = ipt
		if t.backend == "" {
			t.backend, err = detectBackend(bin)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if t.restore, err = lookBackend("iptables-"+t.backend+"-restore", "iptables-restore", opts.Backend); err != nil {
		return nil, err
	}
	if t.save, err = lookBackend("iptables-"+t.backend+"-save", "iptables-save", opts.Backend); err != nil {
		return nil, err
	}
	return t, nil
}

// backendBinary returns the iptables binary of the requested backend, and
// the backend unless it is to be detected ("").
func backendBinary(requested string) (bin, backend string, err error) {
	switch requested {
	case "", BackendAuto:
		return "iptables", "", nil
	case BackendNFT:
		return "iptables-nft", BackendNFT, nil
	case BackendLegacy:
		return "iptables-legacy", BackendLegacy, nil
	}
	return "", "", fmt.Errorf("unknown iptables backend %q (want auto, nft or legacy)", requested)
}

// detectBackend asks bin which backend it is. go-iptables v0.8.0 parses the
// mode from --version but does not export it, so this asks the same binary
// the same question.
func detectBackend(bin string) (string, error) {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("detecting the backend of %s: %w", bin, err)
	}
	if strings.Contains(string(out), "nf_tables") {
		return BackendNFT, nil
	}
	return BackendLegacy, nil
}

// lookBackend finds name, or fallback when the backend was auto-detected and
// the host has no backend-specific binaries (older distributions).
func lookBackend(name, fallback, requested string) (string, error) {
	p, err := exec.LookPath(name)
	if err == nil {
		return p, nil
	}
	if requested == "" || requested == BackendAuto {
		if p, err2 := exec.LookPath(fallback); err2 == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("finding %s: %w", name, err)
}

// Backend returns BackendNFT or BackendLegacy.
func (t *IPTables) Backend() string { return t.backend }

// do runs fn in the configured network namespace, if any (see InNetns).
func (t *IPTables) do(fn func() error) error {
	if t.netns == "" {
		return fn()
	}
	return InNetns(t.netns, fn)
}

// InNetns runs fn with the calling goroutine locked to an OS thread that is
// switched into the named network namespace (under /run/netns), and switches
// it back afterwards. Go starts child processes from the calling thread and
// sockets belong to the namespace of the thread that creates them, so every
// command fn starts and every socket it opens is in the namespace; fn must
// not start goroutines that expect the same.
func InNetns(name string, fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("getting the current network namespace: %w", err)
	}
	defer orig.Close()
	target, err := netns.GetFromName(name)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("opening network namespace %q: %w", name, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("entering network namespace %q: %w", name, err)
	}
	defer func() {
		// If the thread cannot go back it stays locked, so no other goroutine
		// ever runs in the wrong namespace on it.
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
	}()
	return fn()
}

// run runs one binary with stdin and returns its stdout.
func (t *IPTables) run(ctx context.Context, stdin []byte, bin string, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	err := t.do(func() error {
		cmd := exec.CommandContext(ctx, bin, args...)
		if stdin != nil {
			cmd.Stdin = bytes.NewReader(stdin)
		}
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		return cmd.Run()
	})
	t.log.Debug("iptables command", "bin", bin, "args", args, "stdin_bytes", len(stdin), "err", err)
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 512 {
			msg = msg[:512] + "…"
		}
		return nil, fmt.Errorf("running %s %s: %w: %s", bin, strings.Join(args, " "), err, msg)
	}
	return stdout.Bytes(), nil
}

// Restore implements Netfilter with `iptables-restore --noflush -w`.
func (t *IPTables) Restore(ctx context.Context, text []byte) error {
	_, err := t.run(ctx, text, t.restore, "--noflush", "-w")
	return err
}

// Save implements Netfilter with `iptables-save -t table`.
func (t *IPTables) Save(ctx context.Context, table string) ([]byte, error) {
	return t.run(ctx, nil, t.save, "-t", table)
}

// ListRules implements Netfilter. On nft, `iptables -S CHAIN` reads only that
// chain (about 5 ms with 70,000 rules in the table), so chains are listed one by
// one; on legacy every read copies the whole table out of the kernel (about
// 130 ms of system time at that size), so one save serves all chains.
func (t *IPTables) ListRules(ctx context.Context, table string, chains []string) (map[string][]string, error) {
	out := make(map[string][]string, len(chains))
	if t.backend == BackendLegacy {
		text, err := t.Save(ctx, table)
		if err != nil {
			return nil, err
		}
		var scratch []byte
		ix, err := indexSave(text, &scratch)
		if err != nil {
			return nil, err
		}
		for _, c := range chains {
			rules, ok := ix.rules(c)
			if !ok {
				return nil, fmt.Errorf("listing chain %s in table %s: no such chain", c, table)
			}
			out[c] = rules
		}
		return out, nil
	}
	for _, c := range chains {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var lines []string
		err := t.do(func() error {
			var err error
			lines, err = t.ipt.List(table, c)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("listing chain %s in table %s: %w", c, table, err)
		}
		rules := []string{}
		prefix := "-A " + c + " "
		for _, l := range lines {
			if r, ok := strings.CutPrefix(l, prefix); ok {
				rules = append(rules, r)
			}
		}
		out[c] = rules
	}
	return out, nil
}

// EnsureJump implements Netfilter with go-iptables Exists and Insert.
func (t *IPTables) EnsureJump(ctx context.Context, table, chain string, rule []string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	inserted := false
	err := t.do(func() error {
		ok, err := t.ipt.Exists(table, chain, rule...)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		inserted = true
		return t.ipt.Insert(table, chain, 1, rule...)
	})
	if err != nil {
		return false, fmt.Errorf("ensuring jump %q in %s/%s: %w", JoinRule(rule), table, chain, err)
	}
	return inserted, nil
}

// DeleteJump implements Netfilter with go-iptables DeleteIfExists.
func (t *IPTables) DeleteJump(ctx context.Context, table, chain string, rule []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := t.do(func() error { return t.ipt.DeleteIfExists(table, chain, rule...) })
	var e *goipt.Error
	if errors.As(err, &e) && e.IsNotExist() {
		return nil
	}
	if err != nil {
		return fmt.Errorf("deleting jump %q from %s/%s: %w", JoinRule(rule), table, chain, err)
	}
	return nil
}
