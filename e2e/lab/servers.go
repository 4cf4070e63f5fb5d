package lab

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// servers start the listeners of serve by kind: each listens on port, serves
// in the background and sends a fatal error to errc.
var servers = map[string]func(name, port string, errc chan<- error) error{
	"tcp":  serveTCP,
	"udp":  serveUDP,
	"echo": serveEcho,
	"http": serveHTTP,
}

// serveTCP writes name on every connection and closes it.
func serveTCP(name, port string, errc chan<- error) error {
	return acceptLoop(port, errc, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.WriteString(c, name+"\n")
	})
}

// serveEcho writes name on every connection, then echoes every line back
// until the client closes it: a connection that stays established, as long
// as its client wants.
func serveEcho(name, port string, errc chan<- error) error {
	return acceptLoop(port, errc, func(c net.Conn) {
		if _, err := io.WriteString(c, name+"\n"); err != nil {
			return
		}
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if _, err := io.WriteString(c, line); err != nil {
				return
			}
		}
	})
}

// acceptLoop listens on TCP port and serves every connection with handle,
// closing it after.
func acceptLoop(port string, errc chan<- error, handle func(net.Conn)) error {
	// Both families: a dual-stack lab's guests are reached over IPv6 too.
	addr := net.JoinHostPort("::", port)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				errc <- fmt.Errorf("accepting on %s: %w", addr, err)
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return nil
}

// serveUDP answers every datagram with name.
func serveUDP(name, port string, errc chan<- error) error {
	addr := net.JoinHostPort("::", port)
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return err
	}
	go func() {
		buf := make([]byte, 2048)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				errc <- fmt.Errorf("reading on udp %s: %w", addr, err)
				return
			}
			_, _ = pc.WriteTo([]byte(name+"\n"), from)
		}
	}()
	return nil
}

// serveHTTP answers every request with name and status 200, or the code
// after "=" in port ("8081=500"): a health endpoint that passes or fails.
func serveHTTP(name, port string, errc chan<- error) error {
	code := http.StatusOK
	if p, c, ok := strings.Cut(port, "="); ok {
		n, err := strconv.Atoi(c)
		if err != nil || n < 100 || n > 599 {
			return fmt.Errorf("status code %q", c)
		}
		port, code = p, n
	}
	ln, err := net.Listen("tcp4", net.JoinHostPort("0.0.0.0", port))
	if err != nil {
		return err
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(code)
		_, _ = io.WriteString(w, name+"\n")
	})}
	go func() { errc <- srv.Serve(ln) }()
	return nil
}
