package health

import (
	"container/heap"
	"context"
	"sync"
	"time"

	"weir/spec"
)

// maxBatchWindow is how early a probe may start so that probes due close
// together start together. Waking the process once per probe costs more
// than the probe itself (BenchmarkProbeCPU: 1,000 endpoints every 2 s cost
// 8% of a core one by one, under 3% in batches); starting a probe up to
// 100 ms early changes nothing about a check of 1 s or more.
const maxBatchWindow = 100 * time.Millisecond

// entry is one check as Run schedules it.
type entry struct {
	Check
	m        *machine
	due      time.Duration // when its next probe starts, after scheduler.base
	window   time.Duration // how early it may start: min(maxBatchWindow, Interval/8)
	inflight bool          // a probe of it is running
	removed  bool          // Update dropped it; its probe's result is ignored
	index    int           // in the scheduler's queue
}

// job is one probe for a worker to run.
type job struct {
	e *entry
	c spec.EndpointCheck
}

// result is what one probe of e found.
type result struct {
	e   *entry
	at  time.Time
	err error
}

// probeFunc runs one check and stamps its result.
type probeFunc func(ctx context.Context, c spec.EndpointCheck) (time.Time, error)

// scheduler holds the checks of a Prober in a queue by due time and hands
// their probes to workers, at most max at once. Workers are goroutines that
// Run starts as the probes in flight need them (never more than max) and
// that end with Run; they are kept rather than started per probe, because
// a fresh goroutine grows its stack anew for every dial. One goroutine
// (Run's) uses the scheduler.
type scheduler struct {
	max      int
	base     time.Time // origin of the due times
	entries  map[spec.CheckID]*entry
	q        queue
	inflight int
	workers  int
	// jobs and results have room for max items, so that neither the
	// scheduler nor a worker ever blocks on them.
	jobs    chan job
	results chan result
	wg      sync.WaitGroup
}

func newScheduler(max int) scheduler {
	return scheduler{max: max, entries: map[spec.CheckID]*entry{}, jobs: make(chan job, max), results: make(chan result, max)}
}

// startDue starts the probes due by now (or within their batch window)
// while slots are free, and returns how long until the next one is due; ok
// is false when nothing is queued or every slot is taken (then a result
// frees one).
func (s *scheduler) startDue(ctx context.Context, now time.Time, probe probeFunc) (wait time.Duration, ok bool) {
	t := now.Sub(s.base)
	for len(s.q) > 0 {
		e := s.q[0]
		if e.due-e.window > t {
			return e.due - t, true
		}
		if !e.inflight && s.inflight == s.max {
			return 0, false
		}
		// The next probe is due one interval after this one was, keeping
		// the check's phase; one that fell more than an interval behind
		// (every slot was taken) starts a fresh one from now. A check still
		// in flight when due again skips that turn.
		e.due += e.Interval
		if e.due <= t {
			e.due = t + e.Interval
		}
		heap.Fix(&s.q, e.index)
		if !e.inflight {
			s.start(ctx, e, probe)
		}
	}
	return 0, false
}

// start hands a probe of e to a worker, starting one if every worker may
// be busy.
func (s *scheduler) start(ctx context.Context, e *entry, probe probeFunc) {
	s.inflight++
	e.inflight = true
	if s.workers < s.inflight {
		s.workers++
		s.wg.Add(1)
		go s.work(ctx, probe)
	}
	s.jobs <- job{e: e, c: e.EndpointCheck}
}

// work runs probes until ctx is done.
func (s *scheduler) work(ctx context.Context, probe probeFunc) {
	defer s.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-s.jobs:
			at, err := probe(ctx, j.c)
			s.results <- result{e: j.e, at: at, err: err}
		}
	}
}

// done accounts for a probe that ended (or never ran); it reports whether
// its result still counts (its check was not dropped meanwhile).
func (s *scheduler) done(e *entry) bool {
	s.inflight--
	e.inflight = false
	return !e.removed
}

// stop cancels the probes in flight with cancel, waits for the workers to
// end and drops the results and jobs left, so that Run leaves nothing
// running and a later Run starts with every slot free.
func (s *scheduler) stop(cancel context.CancelFunc) {
	cancel()
	s.wg.Wait()
	s.workers = 0
	for s.inflight > 0 {
		select {
		case j := <-s.jobs:
			s.done(j.e)
		case r := <-s.results:
			s.done(r.e)
		}
	}
}

// replace makes entries the scheduled set and returns the entries dropped.
func (s *scheduler) replace(entries map[spec.CheckID]*entry) []*entry {
	var dropped []*entry
	for id, e := range s.entries {
		if entries[id] != e {
			e.removed = true
			dropped = append(dropped, e)
		}
	}
	s.entries = entries
	s.q = s.q[:0]
	for _, e := range entries {
		e.index = len(s.q)
		s.q = append(s.q, e)
	}
	heap.Init(&s.q)
	return dropped
}

// queue is a min-heap of entries by due time, ties broken by ID so that the
// order of probes does not depend on map iteration.
type queue []*entry

func (q queue) Len() int { return len(q) }

func (q queue) Less(i, j int) bool {
	if q[i].due != q[j].due {
		return q[i].due < q[j].due
	}
	return string(q[i].ID[:]) < string(q[j].ID[:])
}

func (q queue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}

func (q *queue) Push(x any) {
	e := x.(*entry)
	e.index = len(*q)
	*q = append(*q, e)
}

func (q *queue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return e
}
