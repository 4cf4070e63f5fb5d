package cluster

import (
	"math/rand/v2"
	"time"
)

// The background loops New starts. Each returns when Shutdown closes done.

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

// debounceLoop turns the raw change signals into Changes.
func (c *Cluster) debounceLoop() {
	defer c.wg.Done()
	debounce(c.raw, c.changes, c.done, c.cfg.Debounce, c.cfg.DebounceMax, c.now)
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

// announceSpacing is the least time between two announcements of this
// node's meta: a burst of changes (an apply, then its error cleared)
// becomes one or two broadcasts instead of many, each of which would
// restart the previous one's retransmissions across the cluster.
const announceSpacing = 100 * time.Millisecond

// updateLoop announces this node's meta after SetLocal changed it, and once
// more Reannounce after the last change. Gossip is probabilistic: with
// memberlist's retransmit limit, a node misses a given broadcast about once
// in 10,000 times (in a 10-node cluster, about 1 state change in 200 left
// some node on the old state), and only the 30 s push/pull would repair it.
// The second announcement, with the error text sent again, is another
// chance, a second later: a node that has both ignores them, one that
// missed the first takes them in (cluster.TestRapidChangesSeenEverywhere).
func (c *Cluster) updateLoop() {
	defer c.wg.Done()
	again := time.NewTimer(time.Hour)
	again.Stop()
	defer again.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-c.update:
			c.announce()
			if c.cfg.Reannounce > 0 {
				again.Reset(c.cfg.Reannounce)
			}
			if !c.wait(announceSpacing) {
				return
			}
		case <-again.C:
			c.announce()
			c.resendError()
		}
	}
}

// announce gossips this node's current meta through memberlist.
func (c *Cluster) announce() {
	select {
	case <-c.done:
		return
	default:
	}
	// UpdateNode applies the new meta at once and queues its broadcast, then
	// waits for the broadcast's last retransmission, several gossip rounds
	// later. Nothing depends on that, so it waits a nanosecond, and its
	// "timeout" error is expected.
	_ = c.ml.UpdateNode(time.Nanosecond)
}

// resendError queues this node's current error text again, with the
// counter it was sent with: receivers that have it refuse it as old and do
// not pass it on.
func (c *Cluster) resendError() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.local.Error != "" && c.ownErrSeq > 0 && !c.closed && !c.left {
		c.queue.QueueBroadcast(newBroadcast(c.ownMessage(msgError, c.ownErrSeq, c.local.Error), nil))
	}
}

// healthLoop sends this node's health transitions once more Reannounce
// after the first of them not sent again yet, with their counters: a node
// that missed one takes it then, the others refuse it as old and pass
// nothing on. Unlike the meta's second announcement it does not wait for
// quiet, so a host whose checks keep changing still has its losses
// repaired within about 2 × Reannounce, not at the 30 s push/pull.
func (c *Cluster) healthLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.done:
			return
		case <-c.resend:
		}
		if c.cfg.Reannounce <= 0 {
			continue
		}
		if !c.wait(c.cfg.Reannounce) {
			return
		}
		c.resendHealth()
	}
}
