package cluster

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/hashicorp/memberlist"
)

// KeyOp is a gossip keyring operation over the cluster, as `weir keys` runs
// it (README.md, "Rotating the gossip key").
type KeyOp string

// The key operations.
const (
	KeyList    KeyOp = "list"    // every member's keys, by fingerprint
	KeyInstall KeyOp = "install" // add a key: members then accept it
	KeyUse     KeyOp = "use"     // make a key primary: members then encrypt with it
	KeyRemove  KeyOp = "remove"  // drop a key that is no member's primary
)

// KeyReport is the outcome of a key operation: every member asked (this
// node and every host that counts) and, for list, every key held.
type KeyReport struct {
	Op      KeyOp        `json:"op"`
	Key     string       `json:"key,omitempty"` // fingerprint of the key operated on
	Members []KeyMember  `json:"members"`
	Keys    []KeyHolding `json:"keys,omitempty"`
}

// KeyMember is one member's answer to a key operation.
type KeyMember struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"` // why it failed, or "no answer"
}

// KeyHolding is one key as `weir keys list` shows it: its fingerprint, how
// many members hold it and on how many it is the primary key.
type KeyHolding struct {
	Fingerprint string `json:"fingerprint"`
	Members     int    `json:"members"`
	Primary     int    `json:"primary"`
}

// Failed counts the members that did not succeed.
func (r KeyReport) Failed() int {
	n := 0
	for _, m := range r.Members {
		if !m.OK {
			n++
		}
	}
	return n
}

// keyOpWait collects the replies to a key operation this node started.
type keyOpWait struct {
	asked   map[string]bool
	replies map[string]keyReply
	done    chan struct{} // closed when every member asked has answered
}

// KeyOperation runs op over the cluster: on this node and, over memberlist's
// encrypted reliable channel, on every alive member that counts as a host,
// waiting for their answers up to KeyOpTimeout (or ctx). key is the raw key
// for install, use and remove, nil for list. It refuses, before changing
// anything, to use a key some member lacks and to remove a key that is some
// member's primary. Strangers and observers are not asked: a rotation shuts
// them out.
func (c *Cluster) KeyOperation(ctx context.Context, op KeyOp, key []byte) (KeyReport, error) {
	code, err := checkKeyOp(op, key)
	if err != nil {
		return KeyReport{}, err
	}
	if c.keyring == nil {
		return KeyReport{}, ErrNotEncrypted
	}
	if code == opUse || code == opRemove {
		if err := c.checkHolders(ctx, code, key); err != nil {
			return KeyReport{}, err
		}
	}
	replies := c.keyRound(ctx, code, key)
	rep := buildKeyReport(op, replies)
	if key != nil {
		rep.Key = Fingerprint(key)
	}
	return rep, nil
}

func checkKeyOp(op KeyOp, key []byte) (byte, error) {
	codes := map[KeyOp]byte{KeyList: opList, KeyInstall: opInstall, KeyUse: opUse, KeyRemove: opRemove}
	code, ok := codes[op]
	if !ok {
		return 0, fmt.Errorf("key operation %q: want list, install, use or remove", op)
	}
	if op == KeyList {
		return code, nil
	}
	if err := memberlist.ValidateKey(key); err != nil {
		return 0, fmt.Errorf("key operation %s: %w", op, err)
	}
	return code, nil
}

// checkHolders lists the keys first: use needs every member to hold the
// key, remove needs it to be nobody's primary.
func (c *Cluster) checkHolders(ctx context.Context, code byte, key []byte) error {
	fp := fingerprintOf(key)
	var missing, primary, silent []string
	for name, p := range c.keyRound(ctx, opList, nil) {
		if !p.OK {
			silent = append(silent, name)
			continue
		}
		i := slices.IndexFunc(p.Keys, func(k heldKey) bool { return k.Fingerprint == fp })
		switch {
		case i < 0:
			missing = append(missing, name)
		case p.Keys[i].Primary:
			primary = append(primary, name)
		}
	}
	slices.Sort(silent)
	slices.Sort(missing)
	slices.Sort(primary)
	switch {
	case code == opUse && len(silent) > 0:
		return fmt.Errorf("not using key %s: no answer from %s, so it may lack the key", Fingerprint(key), strings.Join(silent, ", "))
	case code == opUse && len(missing) > 0:
		return fmt.Errorf("not using key %s: %s lack it; run `weir keys install` first", Fingerprint(key), strings.Join(missing, ", "))
	case code == opRemove && len(primary) > 0:
		return fmt.Errorf("not removing key %s: it is the primary key on %s; `weir keys use` another key first", Fingerprint(key), strings.Join(primary, ", "))
	}
	return nil
}

// keyRound applies one operation here and on every host, and returns the
// answers by member name; a member that did not answer in time has a reply
// with OK false and Error "no answer".
func (c *Cluster) keyRound(ctx context.Context, code byte, key []byte) map[string]keyReply {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.KeyOpTimeout)
	defer cancel()
	id, targets, w := c.startKeyOp()
	defer c.endKeyOp(id)
	req := keyRequest{ID: id, Origin: c.cfg.Node, Inc: c.incarnation, Op: code, Key: key}
	for _, n := range targets {
		go c.sendKeyMessage(n, req.encode())
	}
	keys, err := c.applyKeyOp(code, key)
	c.recordReply(replyFor(id, c.cfg.Node, keys, err))
	select {
	case <-w.done:
	case <-ctx.Done():
	}
	return c.collectReplies(id)
}

// startKeyOp registers a new operation and returns its id, the members to
// ask and the wait for their replies.
func (c *Cluster) startKeyOp() (uint64, []*memberlist.Node, *keyOpWait) {
	id := newIncarnation()
	var targets []*memberlist.Node
	w := &keyOpWait{asked: map[string]bool{c.cfg.Node: true}, replies: map[string]keyReply{}, done: make(chan struct{})}
	// memberlist calls the delegate, which takes c.mu, while it holds its
	// node lock: ask it before taking c.mu, never while holding it.
	nodes := c.ml.Members()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range nodes {
		if r, ok := c.members[n.Name]; ok && n.Name != c.cfg.Node && c.memberLocked(n.Name, r).Counts() {
			targets = append(targets, n)
			w.asked[n.Name] = true
		}
	}
	c.keyOps[id] = w
	return id, targets, w
}

func (c *Cluster) endKeyOp(id uint64) {
	c.mu.Lock()
	delete(c.keyOps, id)
	c.mu.Unlock()
}

// collectReplies returns the replies to operation id, with "no answer" for
// every member asked that did not reply.
func (c *Cluster) collectReplies(id uint64) map[string]keyReply {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.keyOps[id]
	out := make(map[string]keyReply, len(w.asked))
	for name := range w.asked {
		p, ok := w.replies[name]
		if !ok {
			p = keyReply{ID: id, Node: name, Error: "no answer"}
		}
		out[name] = p
	}
	return out
}

// recordReply files a reply to an operation this node started; replies to
// unknown operations or from members not asked are dropped.
func (c *Cluster) recordReply(p keyReply) {
	c.mu.Lock()
	defer c.mu.Unlock()
	w, ok := c.keyOps[p.ID]
	if !ok || !w.asked[p.Node] {
		return
	}
	if _, dup := w.replies[p.Node]; dup {
		return
	}
	w.replies[p.Node] = p
	if len(w.replies) == len(w.asked) {
		close(w.done)
	}
}

func replyFor(id uint64, node string, keys []heldKey, err error) keyReply {
	p := keyReply{ID: id, Node: node, OK: err == nil, Keys: keys}
	if err != nil {
		p.Error = err.Error()
	}
	return p
}

// buildKeyReport turns the replies into a report sorted by member name and,
// for keys, by how many members hold them.
func buildKeyReport(op KeyOp, replies map[string]keyReply) KeyReport {
	rep := KeyReport{Op: op}
	holdings := map[[fingerprintLen]byte]*KeyHolding{}
	for _, name := range slices.Sorted(maps.Keys(replies)) {
		p := replies[name]
		rep.Members = append(rep.Members, KeyMember{Name: name, OK: p.OK, Error: p.Error})
		for _, k := range p.Keys {
			h := holdings[k.Fingerprint]
			if h == nil {
				h = &KeyHolding{Fingerprint: formatFingerprint(k.Fingerprint)}
				holdings[k.Fingerprint] = h
			}
			h.Members++
			if k.Primary {
				h.Primary++
			}
		}
	}
	if op == KeyList {
		for _, h := range holdings {
			rep.Keys = append(rep.Keys, *h)
		}
		slices.SortFunc(rep.Keys, func(a, b KeyHolding) int {
			if a.Primary != b.Primary {
				return b.Primary - a.Primary
			}
			return strings.Compare(a.Fingerprint, b.Fingerprint)
		})
	}
	return rep
}

// sendKeyMessage sends b to node over memberlist's reliable channel.
func (c *Cluster) sendKeyMessage(n *memberlist.Node, b []byte) {
	if err := c.ml.SendReliable(n, b); err != nil {
		c.log.Warn("sending a key operation message failed", "to", n.Name, "err", err)
	}
}

// receiveKeyMessage handles a key operation from another member, or a reply
// to one this node started. Requests are handled off memberlist's handler
// goroutine, at most keyWorkers at a time; more are dropped (their origin
// reports no answer).
func (c *Cluster) receiveKeyMessage(b []byte) {
	if b[0] == msgKeyReply {
		if p, err := decodeKeyReply(b); err == nil {
			c.recordReply(p)
		} else {
			c.log.Debug("dropping key operation reply", "err", err)
		}
		return
	}
	q, err := decodeKeyRequest(b)
	if err == nil {
		err = c.admitKeyRequest(q)
	}
	if err != nil {
		c.log.Warn("refusing key operation", "err", err)
		return
	}
	select {
	case c.keyWorkers <- struct{}{}:
	default:
		c.wg.Done()
		c.log.Warn("dropping key operation: too many at once", "origin", q.Origin)
		return
	}
	go func() {
		defer c.wg.Done()
		defer func() { <-c.keyWorkers }()
		c.serveKeyRequest(q)
	}()
}

// admitKeyRequest accepts a request only from a current member that counts
// as a host, in the incarnation its meta announces, and only once; on
// success it registers the worker with the wait group.
func (c *Cluster) admitKeyRequest(q keyRequest) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.members[q.Origin]
	switch {
	case c.closed:
		return ErrClosed
	case !ok || r.state != StateAlive || !c.memberLocked(q.Origin, r).Counts():
		return fmt.Errorf("key operation from %s: %w", q.Origin, errStrangerOrigin)
	case r.decoded.Incarnation != q.Inc:
		return fmt.Errorf("key operation from %s: %w", q.Origin, errOtherIncarnation)
	case slices.Contains(c.seenKeyOps, q.ID):
		return fmt.Errorf("key operation %x from %s: %w", q.ID, q.Origin, errOldMessage)
	}
	c.seenKeyOps = append(c.seenKeyOps[max(0, len(c.seenKeyOps)-63):], q.ID)
	c.wg.Add(1)
	return nil
}

// serveKeyRequest applies a request and answers its origin.
func (c *Cluster) serveKeyRequest(q keyRequest) {
	keys, err := c.applyKeyOp(q.Op, q.Key)
	reply := replyFor(q.ID, c.cfg.Node, keys, err).encode()
	for _, n := range c.ml.Members() {
		if n.Name == q.Origin {
			c.sendKeyMessage(n, reply)
			return
		}
	}
	c.log.Warn("cannot answer a key operation: its origin is gone", "origin", q.Origin)
}

// keyWorkers bounds the key requests handled at once.
const keyWorkers = 4
