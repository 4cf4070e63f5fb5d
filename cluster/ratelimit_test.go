package cluster

import (
	"fmt"
	"testing"
	"time"
)

func TestTokenBucket(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	b := newTokenBucket(3, 3*time.Second, t0)
	for i := range 3 {
		if wait := b.take(t0); wait != 0 {
			t.Fatalf("take %d of the burst waits %v; want 0", i+1, wait)
		}
	}
	if wait := b.take(t0); wait != 3*time.Second {
		t.Errorf("take after the burst waits %v; want 3s", wait)
	}
	if wait := b.take(t0.Add(time.Second)); wait != 2*time.Second {
		t.Errorf("take 1s later waits %v; want 2s", wait)
	}
	if wait := b.take(t0.Add(3 * time.Second)); wait != 0 {
		t.Errorf("take 3s later waits %v; want 0", wait)
	}
	if wait := b.take(t0.Add(time.Hour)); wait != 0 || b.tokens != 2 {
		t.Errorf("after an hour: wait %v, %v tokens left; want 0 and 2 (the burst, not more)", wait, b.tokens)
	}
	if wait := b.take(t0); wait != 0 || b.tokens != 1 {
		t.Errorf("a clock going back must not add tokens: wait %v, %v left", wait, b.tokens)
	}
}

// TestHintFloodCostsAHandfulOfFetches sends 200 hints for different
// revisions within a second to a node whose rate is one hint per 300 ms
// after a burst of 3 (the defaults, 3 and 3 s, scaled down tenfold): the
// hints it delivers, each a fetch, must stay a handful, and the newest
// revision must be among them.
func TestHintFloodCostsAHandfulOfFetches(t *testing.T) {
	cfg := testConfig("host-a")
	cfg.HintBurst, cfg.HintInterval = 3, 300*time.Millisecond
	a := start(t, cfg)
	announce(a, "host-b", "127.0.0.1", nodeMeta{Incarnation: 5})
	var got []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case rev := <-a.Hints():
				got = append(got, rev)
			case <-time.After(time.Second):
				return
			}
		}
	}()
	for i := 1; i <= 200; i++ {
		a.receive(message{Kind: msgHint, Origin: "host-b", Inc: 5, Seq: uint64(i), Payload: fmt.Sprintf("rev-%03d", i)}.encode())
		time.Sleep(5 * time.Millisecond)
	}
	<-done
	if len(got) > 3+5 {
		t.Errorf("200 hints in 1 s caused %d deliveries %v; want at most 8 (a burst of 3, one per 300 ms)", len(got), got)
	}
	if len(got) == 0 || got[len(got)-1] != "rev-200" {
		t.Errorf("deliveries %v; want the newest, rev-200, last", got)
	}
}

// TestConfirmedHintsAreNotLimited: a hint whose revision a host then
// applies gives its token back, so a run of real pushes is never slowed,
// even with a burst of one and an hour per token.
func TestConfirmedHintsAreNotLimited(t *testing.T) {
	cfg := testConfig("host-a")
	cfg.HintBurst, cfg.HintInterval = 1, time.Hour
	a := start(t, cfg)
	announce(a, "host-b", "127.0.0.1", nodeMeta{Incarnation: 5})
	for i := 1; i <= 5; i++ {
		rev := fmt.Sprintf("rev-%d", i)
		a.receive(message{Kind: msgHint, Origin: "host-b", Inc: 5, Seq: uint64(i), Payload: rev}.encode())
		select {
		case got := <-a.Hints():
			if got != rev {
				t.Fatalf("hint %d delivered %q; want %q", i, got, rev)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("hint %d (%s) not delivered: the token of the confirmed hint before it was not given back", i, rev)
		}
		announce(a, "host-b", "127.0.0.1", nodeMeta{Incarnation: 5, Revision: rev}) // host-b applied it
	}
}
