package cluster

import (
	"cmp"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// DefaultPort is the gossip port (UDP and TCP) when --bind, --advertise or a
// --join seed names none; it is memberlist's and Serf's usual port.
const DefaultPort = 7946

// Defaults for the Config fields left zero.
const (
	DefaultSettleTime     = 10 * time.Second
	DefaultDebounce       = 200 * time.Millisecond
	DefaultDebounceMax    = 2 * time.Second
	DefaultJoinBackoff    = time.Second
	DefaultJoinBackoffMax = 30 * time.Second
	DefaultRejoinInterval = 10 * time.Second
	DefaultHintTTL        = 2 * time.Minute
	DefaultReapAfter      = 24 * time.Hour
	DefaultReannounce     = time.Second
	DefaultHintBurst      = 3
	DefaultHintInterval   = 3 * time.Second
	DefaultKeyOpTimeout   = 5 * time.Second
)

// Config says how a node joins the gossip cluster. Zero durations take the
// Default* values above.
type Config struct {
	Node      string   // this node's name (--node): the Host name in the specs
	Bind      string   // "IP:PORT" to listen on; the port defaults to 7946, 0 picks a free one
	Advertise string   // optional "IP:PORT" other nodes should use to reach this one
	Join      []string // seeds "IP:PORT" (or "host:port"); retried with backoff
	// Keys are the gossip keys: the first encrypts, all decrypt. Nil means no
	// encryption, which New logs loudly.
	Keys [][]byte
	// Label is the cluster name (--cluster). memberlist puts it on every
	// packet and stream and drops traffic with another label, so two clusters
	// sharing a network never merge. With keys it is also authenticated.
	Label string
	// Profile picks memberlist's timing profile: "lan" (default), "local" or
	// "wan"; see ProfileFigures for what each means for failure detection.
	Profile string
	// Observer marks a `weir status --join` node: it is listed but never a
	// host, so it never appears in AliveHosts or a plan.
	Observer bool
	// SettleTime is how long a node that has seen no peer waits before it
	// trusts it is alone (Settled). Negative means settled at once.
	SettleTime time.Duration
	Logger     *slog.Logger
	// Now is the clock for every timestamp and comparison: Settled, hint and
	// member ages, the debounce limit, the leave deadline and message
	// sequence numbers. Default time.Now.
	Now func() time.Time

	Debounce       time.Duration // quiet time before Changes fires (default 200ms)
	DebounceMax    time.Duration // longest Changes is held back by a flapping member (default 2s)
	JoinBackoff    time.Duration // first delay between failed joins (default 1s)
	JoinBackoffMax time.Duration // cap of the doubling delay (default 30s)
	RejoinInterval time.Duration // how often a joined node checks it is not alone (default 10s)
	HintTTL        time.Duration // how long hints are remembered and re-synced (default 2m)
	// HintBurst hinted revisions are delivered at once, then one per
	// HintInterval; hints arriving faster coalesce into the newest
	// (defaults 3 and 3s: 200 hints in 10 s make at most 6 fetches).
	HintBurst    int
	HintInterval time.Duration
	ReapAfter    time.Duration // how long dead and left members stay listed (default 24h)
	// Reannounce is how long after the last change of its state the node
	// announces it once more (default 1s; negative: never), so that a node
	// that missed the first broadcast has it within about 1.5 s. Sooner, it
	// would compete with the first broadcast's own retransmissions.
	Reannounce time.Duration
	// KeyringFile, when set, is where key operations (InstallKey, UseKey,
	// RemoveKey, by this node or sent by another) persist this node's
	// keyring, mode 0600, so a restart keeps the rotated keys.
	KeyringFile string
	// KeyOpTimeout bounds how long a cluster-wide key operation waits for
	// the members' answers (default 5s).
	KeyOpTimeout time.Duration
	// Tune, if set, may adjust the memberlist configuration last; tests use
	// it to shrink probe and gossip intervals.
	Tune func(*memberlist.Config)
}

func (cfg *Config) defaults() error {
	if cfg.Node == "" {
		return errors.New("cluster config: node name is empty")
	}
	if len(cfg.Label) > memberlist.LabelMaxSize {
		return fmt.Errorf("cluster name %q is longer than %d bytes", cfg.Label, memberlist.LabelMaxSize)
	}
	if cfg.Profile == "" {
		cfg.Profile = "lan"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.SettleTime = cmp.Or(cfg.SettleTime, DefaultSettleTime)
	cfg.Debounce = cmp.Or(cfg.Debounce, DefaultDebounce)
	cfg.DebounceMax = cmp.Or(cfg.DebounceMax, DefaultDebounceMax)
	cfg.JoinBackoff = cmp.Or(cfg.JoinBackoff, DefaultJoinBackoff)
	cfg.JoinBackoffMax = cmp.Or(cfg.JoinBackoffMax, DefaultJoinBackoffMax)
	cfg.RejoinInterval = cmp.Or(cfg.RejoinInterval, DefaultRejoinInterval)
	cfg.HintTTL = cmp.Or(cfg.HintTTL, DefaultHintTTL)
	cfg.ReapAfter = cmp.Or(cfg.ReapAfter, DefaultReapAfter)
	cfg.Reannounce = cmp.Or(cfg.Reannounce, DefaultReannounce)
	cfg.HintInterval = cmp.Or(cfg.HintInterval, DefaultHintInterval)
	cfg.KeyOpTimeout = cmp.Or(cfg.KeyOpTimeout, DefaultKeyOpTimeout)
	if cfg.HintBurst <= 0 {
		cfg.HintBurst = DefaultHintBurst
	}
	for i, k := range cfg.Keys {
		if err := memberlist.ValidateKey(k); err != nil {
			return fmt.Errorf("gossip key %d: %w", i+1, err)
		}
	}
	return nil
}

// ProfileConfig returns memberlist's configuration for a profile name:
// "lan" (the default), "local" or "wan".
func ProfileConfig(profile string) (*memberlist.Config, error) {
	switch profile {
	case "", "lan":
		return memberlist.DefaultLANConfig(), nil
	case "local":
		return memberlist.DefaultLocalConfig(), nil
	case "wan":
		return memberlist.DefaultWANConfig(), nil
	default:
		return nil, fmt.Errorf("gossip profile %q: want lan, local or wan", profile)
	}
}

// memberlistConfig turns cfg into memberlist's configuration, with a log
// writer that carries memberlist's log lines into cfg.Logger.
func (cfg *Config) memberlistConfig() (*memberlist.Config, *logWriter, error) {
	mc, err := ProfileConfig(cfg.Profile)
	if err != nil {
		return nil, nil, err
	}
	mc.Name = cfg.Node
	if err := cfg.setAddresses(mc); err != nil {
		return nil, nil, err
	}
	mc.Label = cfg.Label
	if len(cfg.Keys) > 0 {
		kr, err := memberlist.NewKeyring(cfg.Keys, cfg.Keys[0])
		if err != nil {
			return nil, nil, fmt.Errorf("building gossip keyring: %w", err)
		}
		mc.Keyring = kr
	}
	// A restarted node comes back under the same name, often on another
	// address (a new port in tests, DHCP in life). memberlist refuses a new
	// address for a known name until the old one has been dead this long;
	// Consul sets a near-zero value for the same reason, so a restart rejoins
	// at once instead of waiting out the dead-node timeout. A name held by a
	// node that is still alive or suspect is never taken over.
	mc.DeadNodeReclaimTime = time.Nanosecond
	lw := &logWriter{log: cfg.Logger.With("component", "memberlist")}
	mc.Logger = log.New(lw, "", 0)
	mc.LogOutput = nil
	if cfg.Tune != nil {
		cfg.Tune(mc)
	}
	return mc, lw, nil
}

// setAddresses sets the bind and advertise addresses of mc from cfg.
func (cfg *Config) setAddresses(mc *memberlist.Config) error {
	bind := cfg.Bind
	if bind == "" {
		bind = "0.0.0.0"
	}
	ip, port, err := splitIPPort(bind)
	if err != nil {
		return fmt.Errorf("--bind %q: %w", cfg.Bind, err)
	}
	mc.BindAddr, mc.BindPort, mc.AdvertisePort = ip, port, port
	if cfg.Advertise != "" {
		ip, port, err := splitIPPort(cfg.Advertise)
		if err != nil {
			return fmt.Errorf("--advertise %q: %w", cfg.Advertise, err)
		}
		mc.AdvertiseAddr, mc.AdvertisePort = ip, port
	}
	return nil
}

// seeds returns the join seeds with the default port added, leaving out
// empty ones and this node's own address.
func (cfg *Config) seeds(localAddr string) []string {
	seeds := make([]string, 0, len(cfg.Join))
	for _, s := range cfg.Join {
		s = withDefaultPort(strings.TrimSpace(s))
		if s != "" && s != localAddr {
			seeds = append(seeds, s)
		}
	}
	return seeds
}

// splitIPPort parses "IP:PORT", "[IPv6]:PORT" or a bare "IP" or "[IPv6]"
// (port 7946).
func splitIPPort(s string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		host, portStr = s, strconv.Itoa(DefaultPort)
		if inner, ok := strings.CutPrefix(s, "["); ok && strings.HasSuffix(inner, "]") {
			host = strings.TrimSuffix(inner, "]")
		}
	}
	if net.ParseIP(host) == nil {
		return "", 0, fmt.Errorf("%q is not an IP address", host)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", portStr)
	}
	return host, port, nil
}

// withDefaultPort adds :7946 to a seed that names no port; memberlist would
// otherwise use this node's bind port, which is wrong when that is 0.
func withDefaultPort(s string) string {
	if s == "" {
		return ""
	}
	if _, _, err := net.SplitHostPort(s); err == nil {
		return s
	}
	return net.JoinHostPort(strings.Trim(s, "[]"), strconv.Itoa(DefaultPort))
}
