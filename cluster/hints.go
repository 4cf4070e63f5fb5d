package cluster

import "time"

// Hint tells the other nodes that this node fetched revision, so they fetch
// too. Only the newest hint of each node travels. A revision this node has
// already hinted, or has just been hinted by another node, is not hinted again
// (within HintTTL): otherwise every node fetching a revision because of a hint
// would hint it back to everyone.
func (c *Cluster) Hint(revision string) {
	if revision == "" || len(revision) > maxMetaString {
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
	c.ownHint = hintRec{seq: seq, revision: revision, at: now}
	c.queue.QueueBroadcast(newBroadcast(c.ownMessage(msgHint, seq, revision), nil))
}

func (c *Cluster) recentLocked(revision string) bool {
	at, ok := c.recent[revision]
	return ok && c.now().Sub(at) < c.cfg.HintTTL
}

// Hints delivers revisions hinted by other nodes (buffer 1, the latest wins).
// A hint is only a reason to fetch: it never carries specs, and the caller
// must apply only what it fetched and validated itself. Hints are coalesced
// and rate-limited: each delivery spends a token (HintBurst at once, then
// one per HintInterval), and gets it back once a host that counts, this one
// included, announces that revision as applied. Real pushes are so never
// slowed, while a flood of hints for revisions nobody applies costs a
// handful of fetches.
func (c *Cluster) Hints() <-chan string { return c.hintsCh }

// offerHintLocked passes a hinted revision on to the rate-limited delivery,
// unless it was hinted or delivered within HintTTL.
func (c *Cluster) offerHintLocked(revision string) {
	if c.recentLocked(revision) {
		return
	}
	c.recent[revision] = c.now()
	c.pendingHint = revision
	signal(c.hintWake)
}

// hintLoop delivers the newest pending hint whenever the token bucket
// allows, so that hints arriving faster than that coalesce into the latest.
func (c *Cluster) hintLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.done:
			return
		case <-c.hintWake:
		}
		for {
			wait := c.takeHintToken()
			if wait == 0 {
				break
			}
			if !c.wait(wait) {
				return
			}
		}
		c.mu.Lock()
		rev := c.pendingHint
		c.pendingHint = ""
		if rev != "" {
			c.unconfirmed[rev] = c.now()
		} else {
			c.hintBucket.refund() // nothing to deliver after all
		}
		c.mu.Unlock()
		if rev != "" {
			offerLatest(c.hintsCh, rev)
		}
	}
}

// takeHintToken spends a token for a delivery and returns 0, or returns how
// long until the next token.
func (c *Cluster) takeHintToken() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hintBucket.take(c.now())
}

// confirmLocked gives back the token of a delivered hint for revision, now
// that a host that counts announces it applied: the hint was true.
func (c *Cluster) confirmLocked(revision string) {
	if _, ok := c.unconfirmed[revision]; ok && revision != "" {
		delete(c.unconfirmed, revision)
		c.hintBucket.refund()
	}
}

// pruneRecentLocked forgets revisions hinted, delivered or left
// unconfirmed longer than HintTTL ago.
func (c *Cluster) pruneRecentLocked(now time.Time) {
	for _, m := range []map[string]time.Time{c.recent, c.unconfirmed} {
		for rev, at := range m {
			if now.Sub(at) >= c.cfg.HintTTL {
				delete(m, rev)
			}
		}
	}
}
