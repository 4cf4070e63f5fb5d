package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// ErrClosed is returned by calls made after Leave or Shutdown.
var ErrClosed = errors.New("cluster node has left or shut down")

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
	c := newCluster(cfg, lw, mc.RetransmitMult)
	d := &delegate{c}
	mc.Delegate, mc.Events, mc.Conflict = d, d, d

	if len(cfg.Keys) == 0 {
		c.log.Warn("GOSSIP ENCRYPTION IS OFF: anyone who can reach the gossip port can read the cluster and join it; give --gossip-key-file (see `weir keygen`)",
			"node", cfg.Node)
	}
	c.settleAt = c.now()
	if cfg.SettleTime > 0 {
		c.settleAt = c.settleAt.Add(cfg.SettleTime)
	}

	ml, err := memberlist.Create(mc)
	if err != nil {
		lw.close()
		return nil, fmt.Errorf("starting gossip on %s: %w", cfg.Bind, err)
	}
	c.ml = ml
	self := ml.LocalNode()
	c.localAddr = net.JoinHostPort(self.Addr.String(), strconv.Itoa(int(self.Port)))
	seeds := cfg.seeds(c.localAddr)
	c.log.Info("gossip started", "node", cfg.Node, "addr", c.localAddr, "cluster", cfg.Label,
		"profile", cfg.Profile, "encrypted", len(cfg.Keys) > 0, "observer", cfg.Observer, "join", seeds)

	c.wg.Add(5)
	go c.debounceLoop()
	go c.settleLoop()
	go c.joinLoop(seeds)
	go c.updateLoop()
	go c.reapLoop()
	return c, nil
}

// newCluster returns a Cluster for cfg (with defaults applied) before its
// memberlist exists.
func newCluster(cfg Config, lw *logWriter, retransmitMult int) *Cluster {
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
		RetransmitMult: retransmitMult,
	}
	return c
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

	deadline := c.now().Add(timeout)
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
	remaining := max(deadline.Sub(c.now()), time.Millisecond)
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
