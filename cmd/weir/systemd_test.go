package main

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"weir/agent"
)

// fakeLife is an agent as the notifier sees it.
type fakeLife struct {
	ready chan struct{}
	live  atomic.Bool
}

func (f *fakeLife) Ready() <-chan struct{} { return f.ready }
func (f *fakeLife) Live() agent.Health {
	if f.live.Load() {
		return agent.Health{OK: true}
	}
	return agent.Health{Reason: "stuck"}
}

// TestNotifySystemd plays systemd: READY=1 once the agent is ready,
// WATCHDOG=1 every half WatchdogSec while it is live and never while it is
// stuck, STOPPING=1 when the agent stops.
func TestNotifySystemd(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msgs := make(chan string, 100)
	go func() {
		buf := make([]byte, 512)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "60000") // pings every 30 ms
	l := &fakeLife{ready: make(chan struct{})}
	l.live.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	wait := notifySystemd(ctx, l, slog.New(slog.DiscardHandler))

	expect := func(want string) {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case m := <-msgs:
				if m == want {
					return
				}
			case <-deadline:
				t.Fatalf("systemd never got %q", want)
			}
		}
	}
	expect("WATCHDOG=1")
	close(l.ready)
	expect("READY=1")
	l.live.Store(false)
	// A ping already on its way may still arrive: wait (at most 5 s) for a
	// quiet moment, then no ping for ten intervals.
	for deadline := time.Now().Add(5 * time.Second); !quiet(msgs, 100*time.Millisecond); {
		if time.Now().After(deadline) {
			t.Fatal("the watchdog pings never stopped while the agent was stuck")
		}
	}
	if !quiet(msgs, 300*time.Millisecond) {
		t.Errorf("systemd got a watchdog ping while the agent was stuck")
	}
	l.live.Store(true)
	expect("WATCHDOG=1")
	cancel()
	wait()
	expect("STOPPING=1")
}

// quiet reports whether no message arrives on msgs for d.
func quiet(msgs <-chan string, d time.Duration) bool {
	select {
	case <-msgs:
		return false
	case <-time.After(d):
		return true
	}
}
