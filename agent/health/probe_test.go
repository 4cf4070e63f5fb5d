package health_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"weir/agent/health"
	ts "weir/internal/testsupport"
	"weir/spec"
)

// checkOf returns a check of protocol proto against the loopback address
// and port of addr ("127.0.0.1:port"), with the given timeout.
func checkOf(t testing.TB, proto spec.CheckProtocol, addr, path string, timeout time.Duration) spec.EndpointCheck {
	t.Helper()
	ap := netip.MustParseAddrPort(addr)
	hc := ts.DefaultCheck(proto, ap.Port())
	if proto == spec.CheckHTTP {
		hc.Path = path
	}
	hc.Timeout = timeout
	return spec.EndpointCheck{Address: ap.Addr(), HealthCheck: hc}
}

// openFDs counts this process's open file descriptors.
func openFDs(t testing.TB) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count file descriptors: %v", err)
	}
	return len(entries)
}

func TestNetProbe(t *testing.T) {
	fds := openFDs(t)
	hang := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("User-Agent") != "weir-health-check/1" || r.URL.RawQuery != "full=1" {
			http.Error(w, "bad request "+r.URL.String(), http.StatusBadRequest)
		}
	})
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) {
		// A redirect passes and is not followed (its target is closed).
		http.Redirect(w, r, "http://"+ts.FreeAddr(t)+"/", http.StatusFound)
	})
	mux.HandleFunc("/error", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) })
	mux.HandleFunc("/missing", http.NotFound)
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) { <-hang })
	mux.HandleFunc("/endless", func(w http.ResponseWriter, r *http.Request) {
		// A body that never ends: the check reads a few KB, then hangs up.
		chunk := []byte(strings.Repeat("x", 1<<10))
		for r.Context().Err() == nil {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/big-headers", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Big", strings.Repeat("y", 64<<10))
	})
	srv := httptest.NewServer(mux)
	stop := sync.OnceFunc(func() { close(hang); srv.Close() })
	defer stop()
	addr := strings.TrimPrefix(srv.URL, "http://")
	closed := ts.FreeAddr(t)
	const timeout = 300 * time.Millisecond
	tests := []struct {
		name    string
		check   spec.EndpointCheck
		wantErr string // "" passes
	}{
		{"tcp open", checkOf(t, spec.CheckTCP, addr, "", timeout), ""},
		{"tcp closed", checkOf(t, spec.CheckTCP, closed, "", timeout), "connection refused"},
		{"http 200 with a query", checkOf(t, spec.CheckHTTP, addr, "/ok?full=1", timeout), ""},
		{"http 302", checkOf(t, spec.CheckHTTP, addr, "/moved", timeout), ""},
		{"http 500", checkOf(t, spec.CheckHTTP, addr, "/error", timeout), "status 500"},
		{"http 404", checkOf(t, spec.CheckHTTP, addr, "/missing", timeout), "status 404"},
		{"http closed", checkOf(t, spec.CheckHTTP, closed, "/", timeout), "connection refused"},
		{"http hangs", checkOf(t, spec.CheckHTTP, addr, "/hang", timeout), "timeout"},
		{"http endless body", checkOf(t, spec.CheckHTTP, addr, "/endless", timeout), ""},
		{"http huge headers", checkOf(t, spec.CheckHTTP, addr, "/big-headers", timeout), "response headers over 16384 bytes"},
	}
	np := health.NewNetProbe()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), tt.check.Timeout)
			defer cancel()
			start := time.Now()
			err := np.Probe(ctx, tt.check)
			if took := time.Since(start); took > tt.check.Timeout+200*time.Millisecond {
				t.Errorf("Probe took %v; want about the timeout %v at most", took, tt.check.Timeout)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Probe(%s) = %v; want it to pass", tt.check, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Probe(%s) = %v; want an error containing %q", tt.check, err, tt.wantErr)
			}
		})
	}
	// Cancelling a check (the prober stopping) ends it at once, long
	// before its timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	if err := np.Probe(ctx, checkOf(t, spec.CheckHTTP, addr, "/hang", 10*time.Second)); err == nil {
		t.Errorf("a cancelled check passed")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("a check cancelled after 50ms took %v", took)
	}
	// Every socket a probe opened is closed again (the server's too, once
	// it is stopped).
	stop()
	waitFor(t, 2*time.Second, "the probes' sockets to close", func() bool { return openFDs(t) <= fds })
}

// fullListener returns the address of a loopback TCP listener whose accept
// queue is full, so that a new connection to it hangs: the kernel drops
// its SYN instead of answering.
func fullListener(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(sa.(*syscall.SockaddrInet4).Port)).String()
	// Fill the queue: connections complete until it is full, then hang.
	for range 8 {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			return addr
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Fatalf("the accept queue of %s never filled", addr)
	return ""
}

func TestNetProbeTCPTimeout(t *testing.T) {
	c := checkOf(t, spec.CheckTCP, fullListener(t), "", 200*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	start := time.Now()
	err := health.NewNetProbe().Probe(ctx, c)
	if err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("Probe(%s) = %v; want a timeout", c, err)
	}
	if took := time.Since(start); took < c.Timeout-20*time.Millisecond || took > c.Timeout+200*time.Millisecond {
		t.Errorf("Probe took %v; want about the timeout %v", took, c.Timeout)
	}
}
