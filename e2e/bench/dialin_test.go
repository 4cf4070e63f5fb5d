package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"weir/e2e/lab"
)

// listenIn opens a TCP listener inside namespace ns, the way DialIn dials.
func listenIn(t *testing.T, ns string) net.Listener {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	target, err := os.Open(filepath.Join(lab.NetnsDir, ns))
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		t.Fatal(err)
	}
	ln, lerr := net.Listen("tcp", "127.0.0.1:0")
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		panic(fmt.Sprintf("cannot return to the test's network namespace: %v", err))
	}
	if lerr != nil {
		t.Fatal(lerr)
	}
	return ln
}

// TestDialIn proves that lab.DialIn and lab.HTTPClientIn reach a listener
// inside the namespace, which a plain dial from here cannot, and that the
// calling thread is back in its own namespace afterwards.
func TestDialIn(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to create a network namespace")
	}
	ns := fmt.Sprintf("wbench%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	if out, err := exec.Command("ip", "-n", ns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v: %s", err, out)
	}
	ln := listenIn(t, ns)
	defer ln.Close()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "inside") })}
	go srv.Serve(ln)
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addr := ln.Addr().String()
	if c, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", addr); err == nil {
		c.Close()
		t.Fatalf("plain dial to %s reached the namespace's loopback; want it refused", addr)
	}
	for i := range 3 { // the same threads are reused: each must have come back
		resp, err := lab.HTTPClientIn(ns).Get("http://" + addr + "/")
		if err != nil {
			t.Fatalf("GET %s in %s (try %d): %v", addr, ns, i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got, want := string(body), "inside"; got != want {
			t.Errorf("GET in %s = %q; want %q", ns, got, want)
		}
		if c, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", addr); err == nil {
			c.Close()
			t.Fatalf("after DialIn a plain dial reached the namespace: a thread stayed in %s", ns)
		}
	}
	if _, err := lab.DialIn(ctx, "wbench-missing", "tcp", addr); err == nil {
		t.Errorf("DialIn into a missing namespace: no error")
	}
}
