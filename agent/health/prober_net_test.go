package health_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"weir/agent/health"
	ts "weir/internal/testsupport"
	"weir/spec"
)

// TestProberOverNetwork runs a Prober with the real NetProbe against a
// loopback http server whose answer the test switches, and a closed port:
// the states follow, and when Run returns every socket is closed (and,
// checked by TestMain, every goroutine gone).
func TestProberOverNetwork(t *testing.T) {
	fds := openFDs(t)
	var status atomic.Int32
	status.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(status.Load()))
	}))
	addr := strings.TrimPrefix(srv.URL, "http://")
	const interval = 50 * time.Millisecond
	mk := func(proto spec.CheckProtocol, addr string) health.Check {
		ec := checkOf(t, proto, addr, "/healthz", interval/2)
		ec.Interval = interval
		return health.Check{ID: ec.ID(), EndpointCheck: ec}
	}
	web, tcp, closed := mk(spec.CheckHTTP, addr), mk(spec.CheckTCP, addr), mk(spec.CheckTCP, ts.FreeAddr(t))
	var tr transitions
	p := health.New(health.Config{OnTransition: tr.add})
	p.Update([]health.Check{web, tcp, closed})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	state := func(c health.Check) string {
		for _, st := range p.Snapshot() {
			if st.ID == c.ID {
				return st.State.String()
			}
		}
		return "absent"
	}
	waitFor(t, 5*time.Second, "http and tcp healthy, the closed port unhealthy", func() bool {
		return state(web) == "healthy" && state(tcp) == "healthy" && state(closed) == "unhealthy"
	})
	status.Store(http.StatusInternalServerError)
	waitFor(t, 5*time.Second, "the http check to fail on 500", func() bool { return state(web) == "unhealthy" })
	status.Store(http.StatusFound)
	waitFor(t, 5*time.Second, "the http check to pass on 302", func() bool { return state(web) == "healthy" })
	if got := state(tcp); got != "healthy" {
		t.Errorf("the tcp check of the same server is %s; want healthy throughout", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	srv.Close()
	waitFor(t, 2*time.Second, "every socket to close", func() bool { return openFDs(t) <= fds })
}
