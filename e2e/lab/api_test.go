package lab

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"weir/internal/testsupport"
)

// TestDialIn proves that DialIn and HTTPClientIn reach a listener inside the
// namespace, which a plain dial from here cannot, and that the calling
// thread is back in its own namespace afterwards.
func TestDialIn(t *testing.T) {
	ns := testsupport.NewNetns(t)
	ns.Run("ip", "link", "set", "lo", "up")
	var ln net.Listener
	if err := ns.Do(func() (err error) {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
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
		resp, err := HTTPClientIn(ns.Name).Get("http://" + addr + "/")
		if err != nil {
			t.Fatalf("GET %s in %s (try %d): %v", addr, ns.Name, i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got, want := string(body), "inside"; got != want {
			t.Errorf("GET in %s = %q; want %q", ns.Name, got, want)
		}
		if c, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", addr); err == nil {
			c.Close()
			t.Fatalf("after DialIn a plain dial reached the namespace: a thread stayed in %s", ns.Name)
		}
	}
	if _, err := DialIn(ctx, testsupport.NetnsPrefix()+"missing", "tcp", addr); err == nil {
		t.Errorf("DialIn into a missing namespace: no error")
	}
}
