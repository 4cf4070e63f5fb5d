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
// and rate-limited (HintBurst at once, then one per HintInterval), so a
// flood of hints costs a handful of fetches.
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
			wait := c.hintBucket.take(c.now())
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
		c.mu.Unlock()
		if rev != "" {
			offerLatest(c.hintsCh, rev)
		}
	}
}

// pruneRecent forgets revisions hinted longer than HintTTL ago.
func (c *Cluster) pruneRecentLocked(now time.Time) {
	for rev, at := range c.recent {
		if now.Sub(at) >= c.cfg.HintTTL {
			delete(c.recent, rev)
		}
	}
}
