package cluster

import "time"

// tokenBucket allows burst events at once and then one per every: the
// classic token bucket, on an injected clock so tests need not sleep, with
// refund for an event that turned out to be worth it.
type tokenBucket struct {
	burst  float64
	every  time.Duration
	tokens float64
	last   time.Time
}

func newTokenBucket(burst int, every time.Duration, now time.Time) tokenBucket {
	return tokenBucket{burst: float64(burst), every: every, tokens: float64(burst), last: now}
}

// take spends a token if one is there and returns 0; otherwise it spends
// nothing and returns how long until the next token.
func (b *tokenBucket) take(now time.Time) time.Duration {
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = min(b.burst, b.tokens+float64(elapsed)/float64(b.every))
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return 0
	}
	return time.Duration((1 - b.tokens) * float64(b.every))
}

// refund gives a token back, up to the burst.
func (b *tokenBucket) refund() { b.tokens = min(b.burst, b.tokens+1) }
