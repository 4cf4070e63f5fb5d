package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"weir/agent"
)

// lifecycle is what the systemd notifier watches (agent.Agent).
type lifecycle interface {
	Ready() <-chan struct{}
	Live() agent.Health
}

// notifySystemd tells systemd how the agent is doing when it runs as a
// Type=notify service (README.md, "Running as a service"), through
// $NOTIFY_SOCKET: READY=1 once the agent is ready (its first pass ended or
// the cluster settled), WATCHDOG=1 every half WatchdogSec while the loop
// makes progress (agent.Live: a hanging Git server does not stop the
// pings, a stuck loop does), and STOPPING=1 when ctx ends. Without
// $NOTIFY_SOCKET it sends nothing. The returned function waits until
// STOPPING=1 is sent.
func notifySystemd(ctx context.Context, a lifecycle, log *slog.Logger) (wait func()) {
	done := make(chan struct{})
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		log.Warn("ignoring the systemd watchdog settings", "err", err)
	}
	go func() {
		defer close(done)
		notifyLoop(ctx, a, interval/2, log)
	}()
	return func() { <-done }
}

// notifyLoop is notifySystemd's goroutine; every is the watchdog ping
// interval, 0 for none.
func notifyLoop(ctx context.Context, a lifecycle, every time.Duration, log *slog.Logger) {
	send := func(state string) {
		if _, err := daemon.SdNotify(false, state); err != nil {
			log.Warn("notifying systemd", "state", state, "err", err)
		}
	}
	var tick <-chan time.Time
	if every > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		tick = t.C
	}
	ready, stuck := a.Ready(), false
	for {
		select {
		case <-ctx.Done():
			send(daemon.SdNotifyStopping)
			return
		case <-ready:
			send(daemon.SdNotifyReady)
			ready = nil
		case <-tick:
			h := a.Live()
			if h.OK {
				send(daemon.SdNotifyWatchdog)
			} else if !stuck {
				log.Error("not pinging the systemd watchdog: the loop makes no progress", "reason", h.Reason)
			}
			stuck = !h.OK
		}
	}
}
