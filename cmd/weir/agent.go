package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"weir/agent"
	"weir/agent/source"
	"weir/cluster"
	"weir/reconcile/netfilter"
	"weir/spec"
)

// agentOptions are the flags of `weir agent`.
type agentOptions struct {
	node, bind, advertise, join       string
	repo, branch, path, dir           string
	gossipKeyFile, clusterName        string
	gossipProfile, api, stateDir      string
	sshKey, knownHosts                string
	gitUsername, gitPasswordFile      string
	verifyKeys, webhookSecretFile     string
	apiTokenFile                      string
	backend, logFormat, logLevel      string
	poll, resync, settle, minInterval time.Duration
	fetchTimeout                      time.Duration
	insecureGossip                    bool
}

func (c *cli) newAgentCmd() *cobra.Command {
	var o agentOptions
	cmd := &cobra.Command{
		Use:   "agent --node NAME --bind IP:PORT (--repo URL | --dir DIR) (--gossip-key-file FILE | --insecure-gossip)",
		Short: "run the per-host daemon",
		Long: "Runs the per-host daemon: it follows the specs in Git (or a directory), joins the gossip\n" +
			"cluster and applies this host's part of the plan to iptables. Exit 2 for bad flags or\n" +
			"unreadable key and secret files, 1 when the daemon cannot start or stops on an error, 0\n" +
			"after SIGTERM or SIGINT (the rules stay in place). Under systemd (Type=notify) it reports\n" +
			"READY=1 after its first pass, WATCHDOG=1 while the loop makes progress and STOPPING=1 on\n" +
			"the way out (README.md, \"Running as a service\").",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return c.agent(cmd, o) },
	}
	agentFlags(cmd.Flags(), &o)
	noFileArgs(cmd)
	for name, words := range map[string][]string{
		"backend": {netfilter.BackendAuto, netfilter.BackendNFT, netfilter.BackendLegacy}, "gossip-profile": {"lan", "local", "wan"},
		"log-format": {"text", "json"}, "log-level": {"debug", "info", "warn", "error"},
	} {
		completeWords(cmd, name, words...)
	}
	return cmd
}

// agentFlags declares the flags of `weir agent` on fs.
func agentFlags(fs *pflag.FlagSet, o *agentOptions) {
	fs.StringVar(&o.node, "node", "", "this host's name: the Host name in the specs (required)")
	fs.StringVar(&o.bind, "bind", "", "IP:PORT to gossip on, [IPv6]:PORT for IPv6 (required; port default 7946)")
	fs.StringVar(&o.advertise, "advertise", "", "IP:PORT other agents reach this one at (default: the bind address)")
	fs.StringVar(&o.join, "join", "", "comma-separated IP:PORT of agents to join, retried until reachable")
	fs.StringVar(&o.repo, "repo", "", "Git URL of the spec repository (file://, git://, ssh://, https://)")
	fs.StringVar(&o.branch, "branch", source.DefaultBranch, "Git branch to follow")
	fs.StringVar(&o.path, "path", "", "directory of the specs inside the repository")
	fs.StringVar(&o.dir, "dir", "", "local directory of specs, watched for changes (instead of --repo)")
	fs.StringVar(&o.gossipKeyFile, "gossip-key-file", "", "file of base64 gossip keys, one a line, mode 0600: the first encrypts, all decrypt (required unless --insecure-gossip)")
	fs.BoolVar(&o.insecureGossip, "insecure-gossip", false, "gossip in clear text: anyone who reaches the gossip port can forge membership and steer traffic")
	fs.StringVar(&o.clusterName, "cluster", "", "cluster name; agents with another name never merge with this cluster")
	fs.StringVar(&o.gossipProfile, "gossip-profile", "lan", "memberlist timing profile: lan, local or wan")
	fs.StringVar(&o.api, "api", "127.0.0.1:7947", "HTTP API address (/status, /balancers/NAME, /rules, /metrics, /healthz, /refresh, /keys)")
	fs.DurationVar(&o.poll, "poll", source.DefaultPoll, "how often to check the Git branch for new commits")
	fs.DurationVar(&o.resync, "resync", agent.DefaultResync, "how often to check the live rules for drift (checks of large tables are spaced to keep within 0.5% of a core)")
	fs.DurationVar(&o.settle, "settle-time", cluster.DefaultSettleTime, "how long an agent that reaches no peer waits before it treats unseen hosts as dead")
	fs.DurationVar(&o.minInterval, "min-interval", agent.DefaultMinInterval, "least time between two applies; triggers in between coalesce")
	fs.StringVar(&o.stateDir, "state-dir", "", "directory for the Git clone and the last good revision (default /var/lib/weir/NODE)")
	fs.StringVar(&o.sshKey, "ssh-key", "", "private key file for ssh:// repositories")
	fs.StringVar(&o.knownHosts, "known-hosts", "", "known_hosts file for ssh:// repositories")
	fs.StringVar(&o.gitUsername, "git-username", "", "user name for https:// repositories")
	fs.StringVar(&o.gitPasswordFile, "git-password-file", "", "file holding the password or token for https:// repositories")
	fs.StringVar(&o.verifyKeys, "verify-keys", "", "armored OpenPGP public keys; commits not signed by one of them are refused")
	fs.StringVar(&o.webhookSecretFile, "webhook-secret-file", "", "secret required on POST /refresh (GitHub, Gitea or GitLab webhook signature, or bearer token)")
	fs.StringVar(&o.apiTokenFile, "api-token-file", "", "token required as \"Authorization: Bearer\" on GET /status, /balancers/NAME, /rules and /metrics and on /keys (required with a non-loopback --api)")
	fs.DurationVar(&o.fetchTimeout, "fetch-timeout", agent.DefaultFetchTimeout, "deadline of one fetch from the spec source (each Git listing and download)")
	fs.StringVar(&o.backend, "backend", netfilter.BackendAuto, "iptables backend: auto, nft or legacy")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
}

// check validates flag combinations; every error is a usage error. set
// reports whether a flag was given (on the command line or through the
// environment).
func (o *agentOptions) check(set func(name string) bool) error {
	var errs []error
	if o.node == "" {
		errs = append(errs, errors.New("--node is required"))
	}
	if o.bind == "" {
		errs = append(errs, errors.New("--bind is required"))
	}
	switch {
	case o.repo == "" && o.dir == "":
		errs = append(errs, errors.New("one of --repo or --dir is required"))
	case o.repo != "" && o.dir != "":
		errs = append(errs, errors.New("--repo and --dir exclude each other"))
	case o.dir != "":
		for _, name := range []string{"branch", "path", "poll", "ssh-key", "known-hosts", "git-username", "git-password-file", "verify-keys"} {
			if set(name) {
				errs = append(errs, fmt.Errorf("--%s needs --repo, not --dir", name))
			}
		}
	}
	switch {
	case o.gossipKeyFile == "" && !o.insecureGossip:
		errs = append(errs, errors.New("--gossip-key-file is required: gossip says which hosts are alive, and so where traffic goes; create a key with `weir keygen > key; chmod 600 key` and give it to every agent (or run unencrypted with --insecure-gossip)"))
	case o.gossipKeyFile != "" && o.insecureGossip:
		errs = append(errs, errors.New("--gossip-key-file and --insecure-gossip exclude each other"))
	}
	if o.gitPasswordFile != "" && o.sshKey != "" {
		errs = append(errs, errors.New("--ssh-key and --git-password-file exclude each other"))
	}
	for name, d := range map[string]time.Duration{"poll": o.poll, "resync": o.resync, "min-interval": o.minInterval, "fetch-timeout": o.fetchTimeout} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("--%s must be positive, not %s", name, d))
		}
	}
	if _, err := cluster.ProfileConfig(o.gossipProfile); err != nil {
		errs = append(errs, err)
	}
	switch o.backend {
	case netfilter.BackendAuto, netfilter.BackendNFT, netfilter.BackendLegacy:
	default:
		errs = append(errs, fmt.Errorf("--backend %q: want auto, nft or legacy", o.backend))
	}
	if o.logFormat != "text" && o.logFormat != "json" {
		errs = append(errs, fmt.Errorf("--log-format %q: want text or json", o.logFormat))
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(o.logLevel)); err != nil {
		errs = append(errs, fmt.Errorf("--log-level %q: want debug, info, warn or error", o.logLevel))
	}
	if err := agent.CheckAPIAddr(o.api, o.webhookSecretFile != "", o.apiTokenFile != ""); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// agentLogger returns the slog logger the flags ask for, writing to w.
func agentLogger(format, level string, w io.Writer) *slog.Logger {
	var lvl slog.Level
	lvl.UnmarshalText([]byte(level)) // checked by check
	opts := &slog.HandlerOptions{Level: lvl}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// agent is `weir agent`: exit 2 for bad flags or unreadable key and
// secret files, 1 when the daemon cannot start or stops on an error, 0
// after a signal (the rules stay in place).
func (c *cli) agent(cmd *cobra.Command, o agentOptions) error {
	if err := o.check(cmd.Flags().Changed); err != nil {
		return usageErr("%w", err)
	}
	if o.stateDir == "" {
		o.stateDir = filepath.Join("/var/lib/weir", o.node)
	}
	log := agentLogger(o.logFormat, o.logLevel, c.stderr)

	api, err := apiSecrets(o)
	if err != nil {
		return failed(exitUsage, err)
	}
	keys, err := gossipKeys(o, log)
	if err != nil {
		return failed(exitUsage, err)
	}
	if err := startAgent(c.ctx, o, api, keys, log); err != nil {
		log.Error("agent stopped", "err", err)
		return exit(exitFail)
	}
	return nil
}

// netfilters is what newSyncers sets up: the agent's Syncer over iptables
// and ip6tables, and per family the live rules' reader (nil when
// unavailable).
type netfilters struct {
	syncer agent.Syncer
	live   [2]agent.LiveRules
}

// newSyncers sets up the netfilters of both families. A host without
// iptables cannot run the agent; one without a working ip6tables runs it
// for IPv4, and fails a pass only when it has IPv6 balancers to set
// (README.md, "IPv6").
func newSyncers(backend string, log *slog.Logger) (netfilters, error) {
	var syncers [2]*netfilter.Syncer
	var errs [2]error
	var out netfilters
	for _, f := range spec.Families() {
		nf, err := netfilter.NewIPTables(netfilter.IPTablesOptions{Family: f, Backend: backend, Logger: log.With("component", netfilter.Command(f))})
		if err != nil {
			if f == spec.IPv4 {
				return out, fmt.Errorf("netfilter: %w", err)
			}
			log.Warn("ip6tables unavailable: IPv6 balancers cannot be set on this host", "err", err)
			errs[f] = err
			continue
		}
		syncers[f] = netfilter.NewSyncer(nf, netfilter.SyncerOptions{Logger: log.With("component", "syncer", "family", f.Name())})
		out.live[f] = nf
	}
	out.syncer = agent.NewSyncers(syncers[spec.IPv4], syncers[spec.IPv6], errs[spec.IPv4], errs[spec.IPv6])
	return out, nil
}

// startAgent wires the source, netfilter, gossip and API together and runs
// the agent until ctx ends.
func startAgent(ctx context.Context, o agentOptions, api agent.APIConfig, keys [][]byte, log *slog.Logger) error {
	nfs, err := newSyncers(o.backend, log)
	if err != nil {
		return err
	}

	if err := agent.PrepareStateDir(o.stateDir, log); err != nil {
		return err
	}
	src, err := newSource(o, log.With("component", "source"))
	if err != nil {
		return fmt.Errorf("spec source: %w", err)
	}

	// Listen before joining, so a busy API port fails the start cleanly.
	ln, err := net.Listen("tcp", o.api)
	if err != nil {
		return fmt.Errorf("API: %w", err)
	}
	defer ln.Close()

	cfg := cluster.Config{
		Node: o.node, Bind: o.bind, Advertise: o.advertise, Join: splitList(o.join), Keys: keys,
		Label: o.clusterName, Profile: o.gossipProfile, SettleTime: o.settle,
		Logger: log.With("component", "cluster"),
	}
	if len(keys) > 0 {
		cfg.KeyringFile = keyringFile(o.stateDir)
	}
	cl, err := cluster.New(cfg)
	if err != nil {
		return fmt.Errorf("gossip: %w", err)
	}
	defer cl.Shutdown()

	a, err := agent.New(agent.Config{
		Node: o.node, StateDir: o.stateDir, Resync: o.resync, MinInterval: o.minInterval,
		FetchTimeout: o.fetchTimeout, API: api, GossipEncrypted: len(keys) > 0, Build: agentBuild(), Logger: log,
		ReturnMemory: true,
	}, agent.Deps{Source: src, Cluster: cl, Syncer: nfs.syncer, Keys: cl, Live: nfs.live})
	if err != nil {
		return err
	}
	if err := agent.InstallGossipMetrics(a.GossipMetrics()); err != nil {
		return fmt.Errorf("memberlist metrics: %w", err)
	}

	ctx, cancel := context.WithCancel(ctx)
	notified := notifySystemd(ctx, a, log.With("component", "systemd"))
	defer func() { cancel(); notified() }()
	serveErr := make(chan error, 1)
	go func() {
		err := a.Serve(ctx, ln)
		if err != nil {
			cancel() // the API is part of the contract: stop rather than run without it
		}
		serveErr <- err
	}()
	log.Info("agent started", "node", o.node, "gossip", cl.LocalAddr(), "api", ln.Addr().String(),
		"source", firstNonEmpty(source.RedactURL(o.repo), o.dir), "state_dir", o.stateDir)
	runErr := a.Run(ctx)
	cancel()
	return errors.Join(runErr, <-serveErr)
}

// newSource returns the spec source the flags name: a directory or a Git
// branch.
func newSource(o agentOptions, log *slog.Logger) (source.Source, error) {
	if o.dir != "" {
		return source.NewDir(source.DirConfig{Dir: o.dir, Logger: log})
	}
	return source.NewGit(source.GitConfig{
		URL: o.repo, Branch: o.branch, Path: o.path, StateDir: o.stateDir, Poll: o.poll, Timeout: o.fetchTimeout,
		SSHKeyFile: o.sshKey, KnownHostsFile: o.knownHosts,
		Username: o.gitUsername, PasswordFile: o.gitPasswordFile,
		VerifyKeysFile: o.verifyKeys, Logger: log,
	})
}

// apiSecrets reads the webhook secret and the API token the flags name.
func apiSecrets(o agentOptions) (agent.APIConfig, error) {
	var c agent.APIConfig
	for _, f := range []struct {
		what, file string
		dst        *[]byte
	}{{"webhook secret", o.webhookSecretFile, &c.WebhookSecret}, {"API token", o.apiTokenFile, &c.Token}} {
		if f.file == "" {
			continue
		}
		b, err := agent.ReadSecretFile(f.what, f.file)
		if err != nil {
			return c, err
		}
		*f.dst = b
	}
	return c, nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
