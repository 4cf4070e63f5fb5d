package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

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
	DefaultUpdateTimeout  = 100 * time.Millisecond
)

// ErrClosed is returned by calls made after Leave or Shutdown.
var ErrClosed = errors.New("cluster node has left or shut down")

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
	Now        func() time.Time // clock for timestamps and Settled; default time.Now

	Debounce       time.Duration // quiet time before Changes fires (default 200ms)
	DebounceMax    time.Duration // longest Changes is held back by a flapping member (default 2s)
	JoinBackoff    time.Duration // first delay between failed joins (default 1s)
	JoinBackoffMax time.Duration // cap of the doubling delay (default 30s)
	RejoinInterval time.Duration // how often a joined node checks it is not alone (default 10s)
	HintTTL        time.Duration // how long hints are remembered and re-synced (default 2m)
	ReapAfter      time.Duration // how long dead and left members stay listed (default 24h)
	// UpdateTimeout bounds how long a meta update waits to see its broadcast
	// sent (default 100ms). The update is applied and queued either way; the
	// wait only decides whether a debug line says "not yet confirmed".
	UpdateTimeout time.Duration
	// Tune, if set, may adjust the memberlist configuration last; tests use
	// it to shrink probe and gossip intervals.
	Tune func(*memberlist.Config)
}

// Cluster is this node's membership in the gossip cluster.
type Cluster struct {
	cfg       Config
	log       *slog.Logger
	mlLog     *logWriter
	now       func() time.Time
	ml        *memberlist.Memberlist
	queue     *memberlist.TransmitLimitedQueue
	numNodes  atomic.Int64 // alive nodes including self, read by the broadcast queue
	localAddr string
	settleAt  time.Time

	mu       sync.Mutex
	local    NodeState
	meta     []byte
	members  map[string]*memberRec // other nodes, by name
	hints    map[string]hintRec    // newest hint per origin (self included)
	recent   map[string]time.Time  // revisions hinted or delivered, for dedupe
	errTexts map[string]errRec     // newest error text per origin
	leaves   map[string]uint64     // leave intents per origin
	lastSeq  uint64
	settled  bool
	left     bool
	closed   bool

	raw     chan struct{} // undebounced change signals
	changes chan struct{}
	hintsCh chan string
	update  chan struct{} // meta changed: re-announce
	done    chan struct{}
	wg      sync.WaitGroup
	stop    sync.Once
}

type memberRec struct {
	addr  string
	state State
	meta  []byte
	since time.Time
}

type hintRec struct {
	seq      uint64
	revision string
	at       time.Time
}

type errRec struct {
	seq  uint64
	text string
}

// New starts this node's memberlist, then joins the seeds in the background,
// retrying with backoff until it has a peer and again whenever it finds itself
// alone.
func New(cfg Config) (*Cluster, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	mc, lw, err := cfg.memberlistConfig()
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		cfg:      cfg,
		log:      cfg.Logger,
		mlLog:    lw,
		now:      cfg.Now,
		members:  map[string]*memberRec{},
		hints:    map[string]hintRec{},
		recent:   map[string]time.Time{},
		errTexts: map[string]errRec{},
		leaves:   map[string]uint64{},
		raw:      make(chan struct{}, 1),
		changes:  make(chan struct{}, 1),
		hintsCh:  make(chan string, 1),
		update:   make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	c.numNodes.Store(1)
	c.meta, _ = encodeMeta(metaFromState(NodeState{}, cfg.Observer)) // cannot fail: empty strings
	c.queue = &memberlist.TransmitLimitedQueue{
		NumNodes:       func() int { return int(c.numNodes.Load()) },
		RetransmitMult: mc.RetransmitMult,
	}
	d := &delegate{c}
	mc.Delegate, mc.Events, mc.Conflict = d, d, d

	if len(cfg.Keys) == 0 {
		c.log.Warn("GOSSIP ENCRYPTION IS OFF: anyone who can reach the gossip port can read the cluster and join it; give --gossip-key-file (see `weir keygen`)",
			"node", cfg.Node)
	}
	start := c.now()
	switch {
	case cfg.SettleTime < 0:
		c.settleAt = start
	default:
		c.settleAt = start.Add(cfg.SettleTime)
	}

	ml, err := memberlist.Create(mc)
	if err != nil {
		lw.close()
		return nil, fmt.Errorf("starting gossip on %s: %w", cfg.Bind, err)
	}
	c.ml = ml
	self := ml.LocalNode()
	c.localAddr = net.JoinHostPort(self.Addr.String(), strconv.Itoa(int(self.Port)))

	seeds := make([]string, 0, len(cfg.Join))
	for _, s := range cfg.Join {
		s = withDefaultPort(strings.TrimSpace(s))
		if s != "" && s != c.localAddr {
			seeds = append(seeds, s)
		}
	}
	c.log.Info("gossip started", "node", cfg.Node, "addr", c.localAddr, "cluster", cfg.Label,
		"profile", cfg.Profile, "encrypted", len(cfg.Keys) > 0, "observer", cfg.Observer, "join", seeds)

	c.wg.Add(4)
	go c.debounceLoop()
	go c.settleLoop()
	go c.joinLoop(seeds)
	go c.updateLoop()
	return c, nil
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
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.SettleTime, DefaultSettleTime)
	def(&cfg.Debounce, DefaultDebounce)
	def(&cfg.DebounceMax, DefaultDebounceMax)
	def(&cfg.JoinBackoff, DefaultJoinBackoff)
	def(&cfg.JoinBackoffMax, DefaultJoinBackoffMax)
	def(&cfg.RejoinInterval, DefaultRejoinInterval)
	def(&cfg.HintTTL, DefaultHintTTL)
	def(&cfg.ReapAfter, DefaultReapAfter)
	def(&cfg.UpdateTimeout, DefaultUpdateTimeout)
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

func (cfg *Config) memberlistConfig() (*memberlist.Config, *logWriter, error) {
	mc, err := ProfileConfig(cfg.Profile)
	if err != nil {
		return nil, nil, err
	}
	mc.Name = cfg.Node
	bind := cfg.Bind
	if bind == "" {
		bind = "0.0.0.0"
	}
	ip, port, err := splitIPPort(bind)
	if err != nil {
		return nil, nil, fmt.Errorf("--bind %q: %w", cfg.Bind, err)
	}
	mc.BindAddr, mc.BindPort, mc.AdvertisePort = ip, port, port
	if cfg.Advertise != "" {
		ip, port, err := splitIPPort(cfg.Advertise)
		if err != nil {
			return nil, nil, fmt.Errorf("--advertise %q: %w", cfg.Advertise, err)
		}
		mc.AdvertiseAddr, mc.AdvertisePort = ip, port
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

// splitIPPort parses "IP:PORT" or a bare "IP" (port 7946).
func splitIPPort(s string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		host, portStr = strings.Trim(s, "[]"), strconv.Itoa(DefaultPort)
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

// SetLocal announces this node's state. The meta (revision, digest, counts,
// error flag) is re-announced at once through memberlist's UpdateNode; the
// error text, cut to 512 bytes, travels as a gossip broadcast and in
// push/pull syncs. Announcing the same state again costs nothing.
func (c *Cluster) SetLocal(s NodeState) error {
	s.Error = truncateUTF8(s.Error, maxErrorText)
	enc, err := encodeMeta(metaFromState(s, c.cfg.Observer))
	if err != nil {
		return fmt.Errorf("announcing state of %s: %w", c.cfg.Node, err)
	}
	c.mu.Lock()
	if c.closed || c.left {
		c.mu.Unlock()
		return ErrClosed
	}
	changed := !bytes.Equal(enc, c.meta)
	if s.Error != c.local.Error {
		seq := c.nextSeqLocked()
		c.errTexts[c.cfg.Node] = errRec{seq: seq, text: s.Error}
		c.queue.QueueBroadcast(newBroadcast(message{Kind: msgError, Origin: c.cfg.Node, Seq: seq, Payload: s.Error}, nil))
	}
	c.local, c.meta = s, enc
	c.mu.Unlock()
	if changed {
		signal(c.update)
	}
	return nil
}

func truncateUTF8(s string, max int) string {
	if len(s) <= max {
		return s
	}
	const ell = "…"
	cut := max - len(ell)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ell
}

// nextSeqLocked returns a sequence number for a message from this node:
// increasing, and (being based on the clock) larger than what this node sent
// before a restart, so receivers do not drop its first messages as old.
func (c *Cluster) nextSeqLocked() uint64 {
	seq := uint64(c.now().UnixNano())
	if seq <= c.lastSeq {
		seq = c.lastSeq + 1
	}
	c.lastSeq = seq
	return seq
}

// Members lists every node this one knows, sorted by name: itself, alive and
// suspect peers, and dead or departed peers seen in the last ReapAfter.
//
// A suspect peer is listed as alive: memberlist does not expose its suspect
// state safely (the State field of its Node copies is never updated), and
// for planning a suspect node counts as alive anyway.
func (c *Cluster) Members() []Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	out := make([]Member, 0, len(c.members)+1)
	selfState := StateAlive
	if c.left {
		selfState = StateLeft
	}
	out = append(out, Member{Name: c.cfg.Node, Address: c.localAddr, State: selfState, Observer: c.cfg.Observer, NodeState: c.local})
	for name, r := range c.members {
		if r.state != StateAlive && now.Sub(r.since) > c.cfg.ReapAfter {
			delete(c.members, name)
			continue
		}
		out = append(out, c.memberLocked(name, r))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (c *Cluster) memberLocked(name string, r *memberRec) Member {
	m := Member{Name: name, Address: r.addr, State: r.state}
	meta, err := decodeMeta(r.meta)
	if err != nil {
		m.Error = err.Error()
		return m
	}
	m.Observer = meta.Observer
	m.Revision, m.Digest, m.Balancers, m.Rules = meta.Revision, meta.Digest, meta.Balancers, meta.Rules
	if meta.HasError {
		if t, ok := c.errTexts[name]; ok && errorCRC(t.text) == meta.ErrorCRC {
			m.Error = t.text
		} else {
			m.Error = "error reported; its text has not arrived yet"
		}
	}
	return m
}

// AliveHosts returns the sorted names of the nodes that count as alive for
// planning: alive or suspect, never observers, this node included unless it
// is an observer or has left.
func (c *Cluster) AliveHosts() []string {
	var out []string
	for _, m := range c.Members() {
		if !m.Observer && (m.State == StateAlive || m.State == StateSuspect) {
			out = append(out, m.Name)
		}
	}
	return out
}

// Settled reports whether this node's member view can be trusted to say who
// is alive: true once it has seen a peer that is not an observer, or once
// SettleTime has passed since New without one (it is alone, or its seeds are
// all down). Until then a caller must not treat unseen hosts as dead.
// It never goes back to false.
func (c *Cluster) Settled() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.settled || !c.now().Before(c.settleAt)
}

// Changes fires (coalesced, buffer 1) after other nodes join, leave, die or
// change their announced state, and when Settled becomes true. Signals are
// debounced: it fires once things have been quiet for Debounce, or at the
// latest DebounceMax after the first change, so a flapping node cannot cause
// a storm. This node's own SetLocal does not fire it.
func (c *Cluster) Changes() <-chan struct{} { return c.changes }

// Hint tells the other nodes that this node fetched revision, so they fetch
// too. Only the newest hint of each node travels. A revision this node has
// already hinted, or has just been hinted by another node, is not hinted again
// (within HintTTL): otherwise every node fetching a revision because of a hint
// would hint it back to everyone.
func (c *Cluster) Hint(revision string) {
	if revision == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.left || c.recentLocked(revision) {
		return
	}
	seq := c.nextSeqLocked()
	now := c.now()
	c.recent[revision] = now
	c.hints[c.cfg.Node] = hintRec{seq: seq, revision: revision, at: now}
	c.queue.QueueBroadcast(newBroadcast(message{Kind: msgHint, Origin: c.cfg.Node, Seq: seq, Payload: revision}, nil))
}

func (c *Cluster) recentLocked(revision string) bool {
	at, ok := c.recent[revision]
	return ok && c.now().Sub(at) < c.cfg.HintTTL
}

// Hints delivers revisions hinted by other nodes (buffer 1, the latest wins).
// A hint is only a reason to fetch: it never carries specs, and the caller
// must apply only what it fetched and validated itself.
func (c *Cluster) Hints() <-chan string { return c.hintsCh }

// LocalAddr is the "IP:PORT" other nodes reach this one at.
func (c *Cluster) LocalAddr() string { return c.localAddr }

// Leave tells the cluster this node is leaving on purpose, so that the others
// list it as left rather than dead, and stops rejoining. Call Shutdown after.
func (c *Cluster) Leave(timeout time.Duration) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if c.left {
		c.mu.Unlock()
		return nil
	}
	c.left = true
	seq := c.nextSeqLocked()
	c.mu.Unlock()

	deadline := time.Now().Add(timeout)
	sent := make(chan struct{}, 1)
	c.queue.QueueBroadcast(newBroadcast(message{Kind: msgLeave, Origin: c.cfg.Node, Seq: seq}, sent))
	if c.ml.NumMembers() > 1 {
		// Give the intent a head start over memberlist's own leave message,
		// so most nodes know it is a departure when the node disappears.
		select {
		case <-sent:
		case <-time.After(timeout / 2):
		}
	}
	remaining := max(time.Until(deadline), time.Millisecond)
	if err := c.ml.Leave(remaining); err != nil {
		return fmt.Errorf("leaving the cluster as %s: %w", c.cfg.Node, err)
	}
	c.log.Info("left the cluster", "node", c.cfg.Node)
	return nil
}

// Shutdown stops gossip at once, without telling anyone: to the others the
// node dies. It is safe to call more than once.
func (c *Cluster) Shutdown() error {
	var err error
	c.stop.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		close(c.done)
		if e := c.ml.Shutdown(); e != nil {
			err = fmt.Errorf("stopping gossip: %w", e)
		}
		c.wg.Wait()
		c.mlLog.close()
	})
	return err
}

// signal does a non-blocking send on a coalescing channel.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// offerLatest puts v on a buffer-1 channel, replacing an unread older value.
func offerLatest(ch chan string, v string) {
	for {
		select {
		case ch <- v:
			return
		default:
		}
		select {
		case <-ch:
		default:
		}
	}
}

// wait sleeps for d or until shutdown; it reports false on shutdown.
func (c *Cluster) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.done:
		return false
	}
}

func (c *Cluster) debounceLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.done:
			return
		case <-c.raw:
		}
		first := time.Now()
		t := time.NewTimer(c.cfg.Debounce)
	quiet:
		for {
			select {
			case <-c.done:
				t.Stop()
				return
			case <-c.raw:
				if rest := c.cfg.DebounceMax - time.Since(first); rest > 0 {
					t.Reset(min(c.cfg.Debounce, rest))
				}
			case <-t.C:
				break quiet
			}
		}
		signal(c.changes)
	}
}

// settleLoop fires Changes when the settle period ends, so a caller waiting
// for Settled re-evaluates without polling.
func (c *Cluster) settleLoop() {
	defer c.wg.Done()
	d := c.settleAt.Sub(c.now())
	if d <= 0 || c.wait(d) {
		signal(c.raw)
	}
}

// joinLoop joins the seeds, retrying with jittered exponential backoff, and
// whenever the node later finds itself without peers (a partition healed
// badly, every peer restarted) it joins them again.
func (c *Cluster) joinLoop(seeds []string) {
	defer c.wg.Done()
	if len(seeds) == 0 {
		return
	}
	backoff := c.cfg.JoinBackoff
	for {
		c.mu.Lock()
		left := c.left
		c.mu.Unlock()
		if !left && c.alone() {
			n, err := c.ml.Join(seeds)
			if c.alone() {
				c.log.Warn("no gossip seed reachable; retrying", "seeds", seeds, "contacted", n, "err", err, "retry_in", backoff)
				jitter := time.Duration(rand.Int64N(int64(backoff)/5 + 1))
				if !c.wait(backoff + jitter) {
					return
				}
				backoff = min(2*backoff, c.cfg.JoinBackoffMax)
				continue
			}
			c.log.Info("joined the cluster", "seeds", seeds, "contacted", n, "members", c.numNodes.Load())
			backoff = c.cfg.JoinBackoff
		}
		if !c.wait(c.cfg.RejoinInterval) {
			return
		}
	}
}

// alone reports whether no other non-observer node is alive in this node's view.
func (c *Cluster) alone() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.members {
		if r.state == StateAlive && !metaIsObserver(r.meta) {
			return false
		}
	}
	return true
}

func metaIsObserver(b []byte) bool {
	m, err := decodeMeta(b)
	return err == nil && m.Observer
}

func (c *Cluster) updateLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.done:
			return
		case <-c.update:
		}
		select {
		case <-c.done:
			return
		default:
		}
		// UpdateNode applies the new meta at once and gossips it; the error
		// only says the broadcast was not confirmed within the timeout.
		if err := c.ml.UpdateNode(c.cfg.UpdateTimeout); err != nil {
			c.log.Debug("node meta update not yet confirmed", "err", err)
		}
	}
}

// recountLocked refreshes the alive count the broadcast queue scales with.
func (c *Cluster) recountLocked() {
	n := int64(1)
	for _, r := range c.members {
		if r.state == StateAlive {
			n++
		}
	}
	c.numNodes.Store(n)
}

// delegate receives memberlist's callbacks. It is a separate type so that
// Cluster's method set stays the API. Event callbacks run while memberlist
// holds its node lock: they only touch Cluster's own state and never call back
// into memberlist.
type delegate struct{ c *Cluster }

var (
	_ memberlist.Delegate         = (*delegate)(nil)
	_ memberlist.EventDelegate    = (*delegate)(nil)
	_ memberlist.ConflictDelegate = (*delegate)(nil)
)

func (d *delegate) NodeMeta(limit int) []byte {
	d.c.mu.Lock()
	defer d.c.mu.Unlock()
	if len(d.c.meta) > limit { // cannot happen: encodeMeta bounds it far lower
		return nil
	}
	return append([]byte(nil), d.c.meta...)
}

func (d *delegate) NotifyMsg(b []byte) {
	m, err := decodeMessage(b)
	if err != nil {
		d.c.log.Debug("dropping gossip message", "err", err)
		return
	}
	c := d.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.applyLocked(m, c.now()) {
		c.queue.QueueBroadcast(newBroadcast(m, nil))
	}
}

// applyLocked takes in a message from another node and reports whether it
// was new (and so worth passing on).
func (c *Cluster) applyLocked(m message, at time.Time) bool {
	if m.Origin == c.cfg.Node || c.closed {
		return false
	}
	switch m.Kind {
	case msgHint:
		if h, ok := c.hints[m.Origin]; ok && h.seq >= m.Seq {
			return false
		}
		c.hints[m.Origin] = hintRec{seq: m.Seq, revision: m.Payload, at: at}
		if !c.recentLocked(m.Payload) {
			c.recent[m.Payload] = c.now()
			offerLatest(c.hintsCh, m.Payload)
		}
		return true
	case msgError:
		if e, ok := c.errTexts[m.Origin]; ok && e.seq >= m.Seq {
			return false
		}
		c.errTexts[m.Origin] = errRec{seq: m.Seq, text: m.Payload}
		signal(c.raw)
		return true
	case msgLeave:
		if s, ok := c.leaves[m.Origin]; ok && s >= m.Seq {
			return false
		}
		c.leaves[m.Origin] = m.Seq
		if r, ok := c.members[m.Origin]; ok && r.state == StateDead {
			// memberlist's leave message overtook the intent.
			r.state = StateLeft
			signal(c.raw)
		}
		return true
	}
	return false
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.c.queue.GetBroadcasts(overhead, limit)
}

func (d *delegate) LocalState(join bool) []byte {
	c := d.c
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	st := pushState{V: 1}
	for _, origin := range sortedKeys(c.hints) {
		h := c.hints[origin]
		if age := now.Sub(h.at); age < c.cfg.HintTTL {
			st.Hints = append(st.Hints, pushHint{Origin: origin, Seq: h.seq, Revision: h.revision, AgeMS: age.Milliseconds()})
		}
	}
	for _, origin := range sortedKeys(c.errTexts) {
		if e := c.errTexts[origin]; e.text != "" {
			st.Errors = append(st.Errors, pushError{Origin: origin, Seq: e.seq, Text: e.text})
		}
	}
	for _, name := range sortedKeys(c.members) {
		r := c.members[name]
		if r.state == StateAlive {
			continue
		}
		st.Gone = append(st.Gone, pushMember{Name: name, Address: r.addr, State: r.state, Meta: r.meta})
		if seq, ok := c.leaves[name]; ok && r.state == StateLeft {
			st.Leaves = append(st.Leaves, pushLeave{Origin: name, Seq: seq})
		}
	}
	b, err := json.Marshal(st)
	if err != nil { // cannot happen for these types
		return nil
	}
	return b
}

func (d *delegate) MergeRemoteState(buf []byte, join bool) {
	if len(buf) == 0 {
		return
	}
	var st pushState
	if err := json.Unmarshal(buf, &st); err != nil || st.V != 1 {
		d.c.log.Debug("ignoring push/pull state", "err", err, "version", st.V)
		return
	}
	c := d.c
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for _, e := range st.Errors {
		c.applyLocked(message{Kind: msgError, Origin: e.Origin, Seq: e.Seq, Payload: truncateUTF8(e.Text, maxErrorText)}, now)
	}
	for _, l := range st.Leaves {
		c.applyLocked(message{Kind: msgLeave, Origin: l.Origin, Seq: l.Seq}, now)
	}
	for _, h := range st.Hints {
		age := time.Duration(h.AgeMS) * time.Millisecond
		if age >= 0 && age < c.cfg.HintTTL {
			c.applyLocked(message{Kind: msgHint, Origin: h.Origin, Seq: h.Seq, Payload: h.Revision}, now.Add(-age))
		}
	}
	for _, g := range st.Gone {
		// Only introduce members this node has never seen; its own view of a
		// known member always wins over a second-hand one.
		if _, known := c.members[g.Name]; known || g.Name == c.cfg.Node {
			continue
		}
		if g.State != StateDead && g.State != StateLeft {
			continue
		}
		c.members[g.Name] = &memberRec{addr: g.Address, state: g.State, meta: g.Meta, since: now}
		signal(c.raw)
	}
}

func (d *delegate) NotifyJoin(n *memberlist.Node) { d.c.nodeEvent(n, StateAlive) }

func (d *delegate) NotifyUpdate(n *memberlist.Node) { d.c.nodeEvent(n, StateAlive) }

func (d *delegate) NotifyLeave(n *memberlist.Node) { d.c.nodeEvent(n, StateDead) }

// nodeEvent records a memberlist event. memberlist does not say whether a
// node that disappeared left or died (a Node's State field is never set), so
// a node is recorded as left when its leave intent arrived first, and
// applyLocked turns dead into left when the intent arrives after.
func (c *Cluster) nodeEvent(n *memberlist.Node, state State) {
	if n.Name == c.cfg.Node {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	r, ok := c.members[n.Name]
	if !ok {
		r = &memberRec{}
		c.members[n.Name] = r
	}
	r.addr = n.Address()
	r.meta = append([]byte(nil), n.Meta...)
	observer := metaIsObserver(r.meta)
	switch state {
	case StateAlive:
		if r.state != StateAlive {
			r.since = now
			delete(c.leaves, n.Name)
			c.log.Info("member alive", "member", n.Name, "addr", r.addr, "observer", observer)
		}
		r.state = StateAlive
		if !observer && !c.settled {
			c.settled = true
		}
	case StateDead:
		if _, ok := c.leaves[n.Name]; ok {
			state = StateLeft
		}
		r.state, r.since = state, now
		c.log.Info("member gone", "member", n.Name, "addr", r.addr, "state", state, "observer", observer)
		if observer && state == StateLeft {
			// An observer that said goodbye leaves no trace worth listing.
			delete(c.members, n.Name)
		}
	}
	c.recountLocked()
	signal(c.raw)
}

// NotifyConflict is called when another node claims this node's name from a
// different address: two agents were given the same --node.
func (d *delegate) NotifyConflict(existing, other *memberlist.Node) {
	d.c.log.Error("two nodes claim one name; give each agent its own --node",
		"name", existing.Name, "known_addr", existing.Address(), "other_addr", other.Address())
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// logWriter turns memberlist's "[LEVEL] memberlist: text" log lines into
// structured records at the matching level. memberlist's goroutines outlive
// its Shutdown by a moment and then log send errors; close makes the writer
// drop them, and waits for a write in progress, so nothing is logged after
// Cluster.Shutdown returns.
type logWriter struct {
	log    *slog.Logger
	mu     sync.RWMutex
	closed bool
}

func (w *logWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return len(p), nil
	}
	line := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	for prefix, l := range map[string]slog.Level{
		"[DEBUG]": slog.LevelDebug, "[INFO]": slog.LevelInfo,
		"[WARN]": slog.LevelWarn, "[ERR]": slog.LevelError, "[ERROR]": slog.LevelError,
	} {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			level, line = l, strings.TrimSpace(rest)
			break
		}
	}
	line = strings.TrimPrefix(line, "memberlist: ")
	w.log.Log(context.Background(), level, line)
	return len(p), nil
}
