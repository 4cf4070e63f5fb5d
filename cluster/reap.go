package cluster

import "time"

// reapInterval is how often the reap loop deletes expired members. Members
// and the push/pull state already leave expired members out, so the interval
// only bounds how long their records take up memory.
const reapInterval = 15 * time.Second

// expiredLocked reports whether r is a dead or departed member older than
// ReapAfter: no longer listed, and deleted at the next reap.
func (c *Cluster) expiredLocked(r *memberRec, now time.Time) bool {
	return r.state != StateAlive && now.Sub(r.since) > c.cfg.ReapAfter
}

// reap deletes the members that have been dead or departed for longer than
// ReapAfter, with everything they said, and forgets old hinted revisions.
func (c *Cluster) reap() {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for name, r := range c.members {
		if c.expiredLocked(r, now) {
			delete(c.members, name)
		}
	}
	c.pruneRecentLocked(now)
}

// reapLoop reaps every reapInterval until shutdown.
func (c *Cluster) reapLoop() {
	defer c.wg.Done()
	for c.wait(reapInterval) {
		c.reap()
	}
}
