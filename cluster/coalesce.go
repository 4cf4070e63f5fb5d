package cluster

import "time"

// debounce passes bursts of signals from in to out as one signal: once in
// has been quiet for quiet, or at the latest maxWait after the burst's first
// signal, so a flapping member cannot cause a storm. now times the burst;
// the waiting itself uses real timers. It returns when done is closed.
func debounce(in <-chan struct{}, out chan struct{}, done <-chan struct{}, quiet, maxWait time.Duration, now func() time.Time) {
	for {
		select {
		case <-done:
			return
		case <-in:
		}
		if !waitQuiet(in, done, quiet, maxWait, now) {
			return
		}
		signal(out)
	}
}

// waitQuiet waits, after a first signal, until in has been quiet for quiet or
// maxWait has passed since that signal. It reports false when done closes.
func waitQuiet(in <-chan struct{}, done <-chan struct{}, quiet, maxWait time.Duration, now func() time.Time) bool {
	first := now()
	t := time.NewTimer(quiet)
	defer t.Stop()
	for {
		select {
		case <-done:
			return false
		case <-in:
			if rest := maxWait - now().Sub(first); rest > 0 {
				t.Reset(min(quiet, rest))
			}
		case <-t.C:
			return true
		}
	}
}

// signal does a non-blocking send on a coalescing channel.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// offerLatest puts v on a buffer-1 channel, replacing an unread older value.
func offerLatest(ch chan string, v string) {
	for {
		select {
		case ch <- v:
			return
		default:
		}
		select {
		case <-ch:
		default:
		}
	}
}
