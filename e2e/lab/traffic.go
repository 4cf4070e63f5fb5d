package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"weir/internal/testsupport"
)

// The servers and clients below run inside guests by re-executing the
// current binary (a test binary, the bench or the demo) under `ip netns
// exec` with one of these variables set; MaybeServe, called first thing from
// TestMain or main, turns such a process into the helper. A guest's traffic
// thus comes from a process of its own, as it would on a real guest.
const (
	envServe     = "WEIR_LAB_SERVE"      // "tcp:8080,udp:8053": serve on these ports
	envServeName = "WEIR_LAB_SERVE_NAME" // the name every reply carries
	envDial      = "WEIR_LAB_DIAL"       // "network|addr|count|interval|timeout"
)

// MaybeServe runs the helper named by the environment and exits; it returns at
// once in a normal run. Call it before anything else in TestMain and main.
func MaybeServe() {
	switch {
	case os.Getenv(envServe) != "":
		exitWith(serve(os.Getenv(envServeName), os.Getenv(envServe), os.Stdout))
	case os.Getenv(envDial) != "":
		exitWith(dialMain(os.Getenv(envDial), os.Stdin, os.Stdout))
	}
}

func exitWith(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "weir lab helper:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// serve answers on the given ports with name, and writes "ready" to ready
// once all listeners are open: see Serve for the kinds of port.
func serve(name, spec string, ready io.Writer) error {
	if name == "" {
		return errors.New("serve: empty name")
	}
	errc := make(chan error, 8)
	for _, s := range strings.Split(spec, ",") {
		kind, port, ok := strings.Cut(s, ":")
		if !ok {
			return fmt.Errorf("serve %q: want kind:port", s)
		}
		start, ok := servers[kind]
		if !ok {
			return fmt.Errorf("serve %q: kind must be tcp, udp, echo or http", s)
		}
		if err := start(name, port, errc); err != nil {
			return fmt.Errorf("serve %q: %w", s, err)
		}
	}
	fmt.Fprintln(ready, "ready")
	return <-errc
}

// Serve starts a server in guest g that answers name on each of ports, and
// returns once it listens. A port is "tcp:8080" (write the name, close),
// "udp:8053" (answer each datagram with the name), "echo:9000" (write the
// name, then echo every line until the client closes: a connection that
// stays established) or "http:8081" (answer every request 200 with the
// name; "http:8081=500" answers 500).
func (l *Lab) Serve(ctx context.Context, g *Guest, name string, ports ...string) (*Proc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding own executable: %w", err)
	}
	p := l.newProc("serve-"+name, g.NS, []string{exe}, envServe+"="+strings.Join(ports, ","), envServeName+"="+name)
	if err := l.track(p); err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	if err := p.start(pw); err != nil {
		return nil, err
	}
	ready := make(chan error, 1)
	go func() {
		br := bufio.NewReader(pr)
		line, err := br.ReadString('\n')
		if err == nil && strings.TrimSpace(line) != "ready" {
			err = fmt.Errorf("unexpected %q", line)
		}
		ready <- err
		_, _ = io.Copy(io.Discard, br) // keep the pipe drained so Wait can finish
	}()
	go func() {
		<-p.Done()
		pw.Close()
	}()
	select {
	case err := <-ready:
		if err != nil {
			return nil, fmt.Errorf("server %s in %s not ready: %w (log %s)", name, g.NS, err, p.Log)
		}
		return p, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("server %s in %s: %w", name, g.NS, ctx.Err())
	case <-time.After(20 * time.Second):
		return nil, fmt.Errorf("server %s in %s not ready after 20s (log %s)", name, g.NS, p.Log)
	}
}

// Result is what a client saw: the reply (a server's name) of every attempt in
// order, "" for a failed one.
type Result struct {
	Replies []string
	Errors  []string // the error of each failed attempt, in order
}

// Counts is the number of replies per server name.
func (r Result) Counts() map[string]int {
	m := map[string]int{}
	for _, s := range r.Replies {
		if s != "" {
			m[s]++
		}
	}
	return m
}

// Failures is the number of failed attempts.
func (r Result) Failures() int { return len(r.Errors) }

// String summarises counts in name order, and the first error.
func (r Result) String() string {
	c := r.Counts()
	var b strings.Builder
	for _, n := range slices.Sorted(maps.Keys(c)) {
		fmt.Fprintf(&b, "%s=%d ", n, c[n])
	}
	fmt.Fprintf(&b, "failed=%d", r.Failures())
	if len(r.Errors) > 0 {
		fmt.Fprintf(&b, " (first: %s)", r.Errors[0])
	}
	return b.String()
}

// dialMain makes count attempts (count 0: until stdin closes) one after the
// other, interval apart, and prints "ok NAME" or "fail ERROR" per attempt.
func dialMain(spec string, stdin io.Reader, stdout io.Writer) error {
	f := strings.Split(spec, "|")
	if len(f) != 5 {
		return fmt.Errorf("dial %q: want network|addr|count|interval|timeout", spec)
	}
	network, addr := f[0], f[1]
	count, err := strconv.Atoi(f[2])
	if err != nil {
		return fmt.Errorf("dial count: %w", err)
	}
	interval, err := time.ParseDuration(f[3])
	if err != nil {
		return fmt.Errorf("dial interval: %w", err)
	}
	timeout, err := time.ParseDuration(f[4])
	if err != nil {
		return fmt.Errorf("dial timeout: %w", err)
	}
	stop := make(chan struct{})
	if count == 0 {
		go func() {
			_, _ = io.Copy(io.Discard, stdin)
			close(stop)
		}()
	}
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	for i := 0; count == 0 || i < count; i++ {
		select {
		case <-stop:
			return nil
		default:
		}
		name, err := attempt(network, addr, timeout)
		if err != nil {
			fmt.Fprintf(w, "fail %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		} else {
			fmt.Fprintf(w, "ok %s\n", name)
		}
		if count == 0 {
			w.Flush() // a continuous dialer's reader follows along
		}
		if interval > 0 {
			time.Sleep(interval) // pacing between attempts, not waiting for a condition
		}
	}
	return nil
}

// attempt opens one connection (or sends one datagram from a fresh socket, so
// each attempt is a new conntrack entry) and returns the name in the reply.
func attempt(network, addr string, timeout time.Duration) (string, error) {
	c, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if network == "udp" {
		if _, err := c.Write([]byte("hello\n")); err != nil {
			return "", err
		}
	}
	buf := make([]byte, 256)
	n, err := c.Read(buf)
	if n == 0 && err != nil {
		return "", err
	}
	name := strings.TrimSpace(string(buf[:n]))
	if name == "" {
		return "", errors.New("empty reply")
	}
	return name, nil
}

func helperCmd(ctx context.Context, ns string, env ...string) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding own executable: %w", err)
	}
	cmd := testsupport.NetnsCommand(ctx, ns, exe)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd, nil
}

// DialOptions tunes Dial and StartDialer; zero values mean the defaults.
type DialOptions struct {
	Interval time.Duration // pause between attempts (default none for Dial, 20ms for StartDialer)
	Timeout  time.Duration // per attempt (default 2s)
}

// Dial makes n attempts from guest g to addr over network ("tcp" or "udp"),
// one after the other, and returns what came back.
func (l *Lab) Dial(ctx context.Context, g *Guest, network, addr string, n int, opts ...DialOptions) (Result, error) {
	if n <= 0 {
		return Result{}, fmt.Errorf("dial: count %d must be positive", n)
	}
	o := dialOpts(opts, 0)
	cmd, err := helperCmd(ctx, g.NS, fmt.Sprintf("%s=%s|%s|%d|%s|%s", envDial, network, addr, n, o.Interval, o.Timeout))
	if err != nil {
		return Result{}, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return Result{}, fmt.Errorf("dialing %s %s from %s: %w: %s", network, addr, g.NS, err, stderr.String())
	}
	var r Result
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		r.add(line)
	}
	if len(r.Replies) != n {
		return r, fmt.Errorf("dialing %s from %s: %d results for %d attempts", addr, g.NS, len(r.Replies), n)
	}
	return r, nil
}

func dialOpts(opts []DialOptions, interval time.Duration) DialOptions {
	var o DialOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.Interval == 0 {
		o.Interval = interval
	}
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Second
	}
	return o
}

func (r *Result) add(line string) {
	kind, rest, _ := strings.Cut(line, " ")
	switch kind {
	case "ok":
		r.Replies = append(r.Replies, rest)
	case "fail":
		r.Replies = append(r.Replies, "")
		r.Errors = append(r.Errors, rest)
	}
}

// Dialer dials continuously from a guest until stopped.
type Dialer struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{}

	mu  sync.Mutex
	res Result
}

// StartDialer starts continuous attempts from guest g to addr.
func (l *Lab) StartDialer(ctx context.Context, g *Guest, network, addr string, opts ...DialOptions) (*Dialer, error) {
	o := dialOpts(opts, 20*time.Millisecond)
	cmd, err := helperCmd(ctx, g.NS, fmt.Sprintf("%s=%s|%s|0|%s|%s", envDial, network, addr, o.Interval, o.Timeout))
	if err != nil {
		return nil, err
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("dialer stdin: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("dialer stdout: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting dialer in %s: %w", g.NS, err)
	}
	d := &Dialer{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	go func() {
		defer close(d.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			d.mu.Lock()
			d.res.add(sc.Text())
			d.mu.Unlock()
		}
	}()
	return d, nil
}

// Result returns the attempts so far.
func (d *Dialer) Result() Result {
	d.mu.Lock()
	defer d.mu.Unlock()
	return Result{Replies: append([]string(nil), d.res.Replies...), Errors: append([]string(nil), d.res.Errors...)}
}

// Stop ends the dialer and returns every attempt it made.
func (d *Dialer) Stop() (Result, error) {
	d.stdin.Close()
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
	err := d.cmd.Wait()
	if err != nil {
		err = fmt.Errorf("dialer: %w", err)
	}
	return d.Result(), err
}
