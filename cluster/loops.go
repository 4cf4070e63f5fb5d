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

// updateLoop re-announces this node's meta after SetLocal changed it.
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
