package source

import "time"

// Backoff spaces out retries while the Git server cannot be listed. The n-th
// consecutive failure waits Initial·2^(n-1), capped at Max; success returns to
// the normal poll interval.
type Backoff struct {
	// Initial is the wait after the first failure (default 1s): a short blip,
	// such as a server restart, is bridged quickly.
	Initial time.Duration
	// Max caps the wait (default 5m, and never below the poll interval), so a
	// long outage costs one attempt per Max per agent, not one per poll.
	Max time.Duration
}

// Jitter is the fraction by which every wait is randomly stretched or shrunk,
// so that agents started together do not poll the server in lockstep.
const Jitter = 0.10

// withDefaults fills zero fields.
func (b Backoff) withDefaults(poll time.Duration) Backoff {
	if b.Initial <= 0 {
		b.Initial = time.Second
	}
	if b.Max <= 0 {
		b.Max = 5 * time.Minute
	}
	b.Max = max(b.Max, poll, b.Initial)
	return b
}

// nextDelay returns how long to wait before the next listing of the remote,
// given the poll interval, the number of consecutive failures so far and a
// random number r in [0, 1): the base wait is poll (no failure) or the
// backoff step, scaled by 1 ± Jitter.
func nextDelay(poll time.Duration, b Backoff, failures int, r float64) time.Duration {
	base := poll
	if failures > 0 {
		base = b.Initial
		for i := 1; i < failures && base < b.Max; i++ {
			base *= 2
		}
		base = min(base, b.Max)
	}
	return time.Duration(float64(base) * (1 - Jitter + 2*Jitter*r))
}
