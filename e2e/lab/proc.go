package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"weir/internal/testsupport"
)

// ErrNotRunning is returned when signalling a process that has exited.
var ErrNotRunning = errors.New("process not running")

// Proc is a long-running process inside a namespace (an agent, git daemon, a
// guest's server). Its stdout and stderr are appended to the lab's log file
// for its name, one header line per start.
type Proc struct {
	Name string
	NS   string
	Args []string // the program and its arguments, run with `ip netns exec NS`
	Env  []string // added to the environment
	Log  string   // log file path

	lab *Lab

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start runs args inside namespace ns as a process called name (unique within
// the lab: it names the log file). The process is killed by Close, and by the
// kernel if this process dies (parent-death signal), so a killed test leaves
// no processes behind.
func (l *Lab) Start(name, ns string, args []string, env ...string) (*Proc, error) {
	p := l.newProc(name, ns, args, env...)
	if err := l.track(p); err != nil {
		return nil, err
	}
	if err := p.start(nil); err != nil {
		return nil, err
	}
	return p, nil
}

// newProc describes a process of the lab; it does not start it.
func (l *Lab) newProc(name, ns string, args []string, env ...string) *Proc {
	return &Proc{Name: name, NS: ns, Args: args, Env: env, Log: l.LogPath(name), lab: l}
}

// track adds p to the processes Close kills; it fails once the lab is closed.
func (l *Lab) track(p *Proc) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return fmt.Errorf("starting %s: lab closed", p.Name)
	}
	l.procs = append(l.procs, p)
	return nil
}

// start launches the process; when stdout is non-nil it receives the
// process's standard output instead of the log file.
func (p *Proc) start(stdout io.Writer) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && !p.exited() {
		return fmt.Errorf("starting %s: already running as pid %d", p.Name, p.cmd.Process.Pid)
	}
	if err := os.MkdirAll(filepath.Dir(p.Log), 0o755); err != nil {
		return fmt.Errorf("creating log dir: %w", err)
	}
	f, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening log of %s: %w", p.Name, err)
	}
	fmt.Fprintf(f, "=== %s start in %s: %v\n", time.Now().Format(time.RFC3339Nano), p.NS, p.Args)
	cmd := testsupport.NetnsCommand(context.Background(), p.NS, p.Args...)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Stdout = f
	if stdout != nil {
		cmd.Stdout = stdout
	}
	cmd.Stderr = f
	// `ip netns exec` execs the program in place (no fork), so the pid is the
	// program's. Pdeathsig kills it with us; the own process group lets Kill
	// take any children along.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("starting %s in %s: %w", p.Name, p.NS, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.err = cmd, done, nil
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(f, "=== %s exit: %v\n", time.Now().Format(time.RFC3339Nano), err)
		f.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

func (p *Proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Pid is the process id of the current run.
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.Process.Pid
}

// Running reports whether the process has not exited.
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil && !p.exited()
}

// Done is closed when the current run exits.
func (p *Proc) Done() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// ExitErr is the current run's wait error, valid after Done is closed.
func (p *Proc) ExitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Kill sends SIGKILL to the process group and waits for the exit.
func (p *Proc) Kill() error {
	return p.signal(syscall.SIGKILL, 10*time.Second)
}

// Stop sends SIGTERM and waits up to timeout, then kills.
func (p *Proc) Stop(timeout time.Duration) error {
	err := p.signal(syscall.SIGTERM, timeout)
	if err != nil && !errors.Is(err, ErrNotRunning) {
		return errors.Join(err, p.Kill())
	}
	return err
}

func (p *Proc) signal(sig syscall.Signal, timeout time.Duration) error {
	p.mu.Lock()
	if p.cmd == nil || p.exited() {
		p.mu.Unlock()
		return ErrNotRunning
	}
	pid, done := p.cmd.Process.Pid, p.done
	p.mu.Unlock()
	if err := syscall.Kill(-pid, sig); err != nil {
		return fmt.Errorf("sending %v to %s (pid %d): %w", sig, p.Name, pid, err)
	}
	select {
	case <-done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("%s (pid %d) still running %v after %v", p.Name, pid, timeout, sig)
	}
}

// Restart starts the process again with the same arguments; it must have exited.
func (p *Proc) Restart() error {
	return p.start(nil)
}
