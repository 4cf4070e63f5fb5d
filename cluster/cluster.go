package cluster

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"weir/spec"
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
	keyring   *memberlist.Keyring // nil without encryption
	queue     *memberlist.TransmitLimitedQueue
	numNodes  atomic.Int64 // alive nodes including self, read by the broadcast queue
	localAddr string
	localIP   netip.Addr
	settleAt  time.Time
	// incarnation is this run's random id, announced in the meta: receivers
	// take this node's messages only with it (see acceptance.go).
	incarnation uint64
	keyMu       sync.Mutex    // serializes keyring changes and their persisting
	keyWorkers  chan struct{} // bounds the key requests served at once

	mu          sync.Mutex
	local       NodeState
	meta        []byte
	members     map[string]*memberRec     // other nodes, by name
	expected    *expectedHosts            // the Hosts of the applied revision; nil before one
	ownHint     hintRec                   // this node's newest hint
	ownErrSeq   uint64                    // counter of the message that sent local.Error
	own         ownReport                 // this node's health report
	resendIDs   map[spec.CheckID]checkRec // own transitions not sent again yet
	pendingHint string                    // newest hint not yet delivered (rate limit)
	hintBucket  tokenBucket               // rate limit of hint deliveries
	unconfirmed map[string]time.Time      // delivered hints no host has applied yet
	recent      map[string]time.Time      // revisions hinted or delivered, for dedupe
	keyOps      map[uint64]*keyOpWait     // key operations this node started, by id
	seenKeyOps  []uint64                  // ids of the last key requests served, to serve each once
	lastSeq     uint64
	settled     bool
	left        bool
	closed      bool

	raw      chan struct{} // undebounced change signals
	changes  chan struct{}
	hintWake chan struct{} // pendingHint was set
	hintsCh  chan string
	update   chan struct{} // meta changed: re-announce
	resend   chan struct{} // a health transition was queued: send it once more later
	done     chan struct{}
	wg       sync.WaitGroup
	stop     sync.Once
}

// memberRec is another node as this one knows it. Its meta is decoded once,
// when memberlist reports it; origin holds what the node said by user
// message during its current incarnation.
type memberRec struct {
	addr    string
	ip      netip.Addr
	state   State
	meta    []byte
	decoded nodeMeta
	metaErr error
	since   time.Time
	origin  originRec
}

// originRec is what one origin's current incarnation has said: the highest
// counter taken in, and the newest hint, error text, health report and leave
// intent.
type originRec struct {
	inc   uint64
	top   uint64
	hint  hintRec
	err   errRec
	leave uint64 // counter of its leave intent; 0 when it has not said goodbye
	// health is what it reported about its own endpoint checks.
	health healthRec
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

	c.keyring = mc.Keyring
	if c.keyring == nil {
		c.log.Warn("GOSSIP ENCRYPTION IS OFF: anyone who can reach the gossip port can read the cluster, join it and forge membership; give --gossip-key-file (see `weir keygen`)",
			"node", cfg.Node)
	}

	ml, err := memberlist.Create(mc)
	if err != nil {
		lw.close()
		return nil, fmt.Errorf("starting gossip on %s: %w", cfg.Bind, err)
	}
	c.ml = ml
	self := ml.LocalNode()
	c.localAddr = net.JoinHostPort(self.Addr.String(), strconv.Itoa(int(self.Port)))
	c.localIP = ipOf(self.Addr)
	seeds := cfg.seeds(c.localAddr)
	c.log.Info("gossip started", "node", cfg.Node, "addr", c.localAddr, "cluster", cfg.Label,
		"profile", cfg.Profile, "encrypted", len(cfg.Keys) > 0, "observer", cfg.Observer, "join", seeds)

	c.wg.Add(7)
	go c.healthLoop()
	go c.debounceLoop()
	go c.settleLoop()
	go c.joinLoop(seeds)
	go c.updateLoop()
	go c.reapLoop()
	go c.hintLoop()
	return c, nil
}

// newCluster returns a Cluster for cfg (with defaults applied) before its
// memberlist exists.
func newCluster(cfg Config, lw *logWriter, retransmitMult int) *Cluster {
	c := &Cluster{
		cfg:         cfg,
		log:         cfg.Logger,
		mlLog:       lw,
		now:         cfg.Now,
		incarnation: newIncarnation(),
		hintBucket:  newTokenBucket(cfg.HintBurst, cfg.HintInterval, cfg.Now()),
		members:     map[string]*memberRec{},
		recent:      map[string]time.Time{},
		unconfirmed: map[string]time.Time{},
		resendIDs:   map[spec.CheckID]checkRec{},
		keyOps:      map[uint64]*keyOpWait{},
		keyWorkers:  make(chan struct{}, keyWorkers),
		raw:         make(chan struct{}, 1),
		changes:     make(chan struct{}, 1),
		hintWake:    make(chan struct{}, 1),
		hintsCh:     make(chan string, 1),
		update:      make(chan struct{}, 1),
		resend:      make(chan struct{}, 1),
		done:        make(chan struct{}),
	}
	c.settleAt = c.now()
	if cfg.SettleTime > 0 {
		c.settleAt = c.settleAt.Add(cfg.SettleTime)
	}
	c.numNodes.Store(1)
	c.meta, _ = encodeMeta(metaFromState(NodeState{}, cfg.Observer, c.incarnation)) // cannot fail: empty strings
	c.queue = &memberlist.TransmitLimitedQueue{
		NumNodes:       func() int { return int(c.numNodes.Load()) },
		RetransmitMult: retransmitMult,
	}
	return c
}

// newIncarnation returns a random non-zero id for this run of the node.
func newIncarnation() uint64 {
	for {
		var b [8]byte
		rand.Read(b[:]) // never fails (crypto/rand)
		if v := binary.BigEndian.Uint64(b[:]); v != 0 {
			return v
		}
	}
}

// SetLocal announces this node's state. The meta (revision, digest, counts,
// error flag) is re-announced at once through memberlist's UpdateNode; the
// error text, cut to 512 bytes, travels as a gossip broadcast and in
// push/pull syncs. Announcing the same state again costs nothing.
func (c *Cluster) SetLocal(s NodeState) error {
	s.Error = truncateUTF8(s.Error, maxErrorText)
	enc, err := encodeMeta(metaFromState(s, c.cfg.Observer, c.incarnation))
	if err != nil {
		return fmt.Errorf("announcing state of %s: %w", c.cfg.Node, err)
	}
	c.mu.Lock()
	if c.closed || c.left {
		c.mu.Unlock()
		return ErrClosed
	}
	changed := !bytes.Equal(enc, c.meta)
	c.confirmLocked(s.Revision)
	if s.Error != c.local.Error {
		c.ownErrSeq = c.nextSeqLocked()
		c.queue.QueueBroadcast(newBroadcast(c.ownMessage(msgError, c.ownErrSeq, s.Error), nil))
	}
	c.local, c.meta = s, enc
	c.mu.Unlock()
	if changed {
		signal(c.update)
	}
	return nil
}

// nextSeqLocked returns the next counter for a message from this node: 1,
// 2, 3 … within this incarnation, so receivers need no clock to order them.
func (c *Cluster) nextSeqLocked() uint64 {
	c.lastSeq++
	return c.lastSeq
}

// ownMessage is a message from this node.
func (c *Cluster) ownMessage(kind byte, seq uint64, payload string) message {
	return message{Kind: kind, Origin: c.cfg.Node, Inc: c.incarnation, Seq: seq, Payload: payload}
}

// Settled reports whether this node's member view can be trusted to say who
// is alive: true once it has seen a peer that is neither an observer nor a
// stranger, or once SettleTime has passed since New without one (it is
// alone, or its seeds are all down). Until then a caller must not treat
// unseen hosts as dead. It never goes back to false.
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
	c.queue.QueueBroadcast(newBroadcast(c.ownMessage(msgLeave, seq, ""), sent))
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
