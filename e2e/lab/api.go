package lab

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"weir/reconcile/netfilter"
)

// DialIn opens a connection from inside network namespace ns without
// starting a process: the socket is created on a thread that has entered ns
// (a socket stays in the namespace it was created in) and the thread then
// returns to the caller's namespace. Polling many agents' APIs this way
// over kept-alive connections costs far less than a process per request.
func DialIn(ctx context.Context, ns, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	// A goroutine of its own: when its thread cannot return from ns,
	// netfilter.InNetns leaves the thread locked, and the runtime destroys it
	// when the goroutine ends instead of running other goroutines in ns.
	go func() {
		var c net.Conn
		err := netfilter.InNetns(ns, func() (err error) {
			var d net.Dialer
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		if err != nil {
			err = fmt.Errorf("dialing %s %s in %s: %w", network, addr, ns, err)
		}
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// HTTPClientIn returns an HTTP client whose connections are made inside
// namespace ns (see DialIn) and kept alive between requests.
func HTTPClientIn(ns string) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return DialIn(ctx, ns, network, addr)
			},
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     time.Minute,
		},
	}
}

// API sends one request to the API of the agent on h (APIAddr on the host's
// loopback, over a kept-alive connection made inside the host) and returns
// the status code and body.
func (w *Weir) API(ctx context.Context, h *Host, method, path string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+APIAddr+path, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := w.client(h).Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s on %s: %w", method, path, h.Name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s on %s: reading the answer: %w", method, path, h.Name, err)
	}
	return resp.StatusCode, body, nil
}

// client returns the API client of host h, made on first use.
func (w *Weir) client(h *Host) *http.Client {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.clients == nil {
		w.clients = map[string]*http.Client{}
	}
	c := w.clients[h.Name]
	if c == nil {
		c = HTTPClientIn(h.NS)
		w.clients[h.Name] = c
	}
	return c
}

// CloseIdleConnections closes the kept-alive API connections to every agent:
// a socket would keep its namespace alive after the lab deletes it.
func (w *Weir) CloseIdleConnections() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.clients {
		c.CloseIdleConnections()
	}
}
