package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"weir/e2e/lab"
	"weir/internal/testsupport"
)

// agents is a running set of lab agents, one on every host of a lab.
type agents struct {
	weir  *lab.Weir
	hosts []*lab.Host
	log   *slog.Logger
}

// newLab builds a lab of n hosts without guests (the rows measure the
// control plane; no traffic is sent) and a Git server when git is set.
func (s *suite) newLab(ctx context.Context, hosts int, git bool) (*lab.Lab, error) {
	return lab.New(ctx, lab.Options{Hosts: hosts, Git: git, Dir: filepath.Join(s.rawDir, "lab-"+lab.NewPrefix()), Logger: s.log})
}

// startAgents starts an agent on every host of l with extra(h) flags plus a
// gossip key and --state-dir under the lab dir for mode.
func (s *suite) startAgents(ctx context.Context, l *lab.Lab, mode string, extra func(h *lab.Host) []string) (*agents, error) {
	keyFile, err := s.gossipKey(ctx, l)
	if err != nil {
		return nil, err
	}
	a := &agents{weir: &lab.Weir{Bin: s.bin, Lab: l, StatusFromAPI: true}, hosts: l.Hosts, log: s.log}
	err = a.weir.StartAgents(l.Hosts, func(h *lab.Host) []string {
		args := append([]string{"--gossip-key-file", keyFile, "--state-dir", filepath.Join(l.Dir, "state-"+mode, h.Name)}, extra(h)...)
		return append(args, s.agentArgs...)
	})
	if err != nil {
		a.stop()
		return nil, err
	}
	return a, nil
}

// gossipKey returns the lab's gossip key file, made by `weir keygen` on
// first use.
func (s *suite) gossipKey(ctx context.Context, l *lab.Lab) (string, error) {
	keyFile := filepath.Join(l.Dir, "gossip.key")
	if _, err := os.Stat(keyFile); err == nil {
		return keyFile, nil
	}
	key, err := runCmd(ctx, "", s.bin, "keygen")
	if err != nil {
		return "", fmt.Errorf("weir keygen: %w", err)
	}
	return keyFile, os.WriteFile(keyFile, []byte(key), 0o600)
}

// stop ends every agent (SIGTERM) and removes weir's rules from the hosts
// (weir cleanup), so the next row starts from clean tables.
func (a *agents) stop() { a.stopAnd(true) }

// stopAnd ends every agent, running weir cleanup on each host when cleanup
// is set; without it the rules go with the lab's namespaces.
func (a *agents) stopAnd(cleanup bool) {
	a.weir.StopAgents(a.hosts, 10*time.Second)
	if !cleanup {
		return
	}
	for _, h := range a.hosts {
		_, _, _ = a.weir.Run(context.Background(), h, "cleanup")
	}
}

// refresh sends POST /refresh (the push webhook) to the agent on h.
func (a *agents) refresh(ctx context.Context, h *lab.Host) error {
	code, body, err := a.weir.API(ctx, h, http.MethodPost, "/refresh")
	if err != nil {
		return err
	}
	if code >= 300 {
		return fmt.Errorf("POST /refresh on %s: %d %s", h.Name, code, body)
	}
	return nil
}

// goal is what a row waits for: every agent reports converged with n
// members alive, all on revision want (or, when want is empty, on one
// revision other than not).
type goal struct {
	want, not string
	n         int
}

// applied reports whether the agent itself applied the goal's revision.
func (g goal) applied(st lab.Status) bool {
	if g.want != "" {
		return st.Revision == g.want
	}
	return st.Revision != "" && st.Revision != g.not
}

// converged checks the whole view and returns the revision it is on.
func (g goal) converged(st lab.Status) (string, error) {
	if !st.Converged {
		return "", errors.New("not converged: " + st.Brief())
	}
	alive := st.AliveNames()
	if len(alive) != g.n {
		return "", fmt.Errorf("%d alive; want %d", len(alive), g.n)
	}
	if !g.applied(st) {
		return "", fmt.Errorf("on %.16s; want another revision", st.Revision)
	}
	for _, m := range st.Members {
		if m.State == "alive" && m.Revision != st.Revision {
			return "", fmt.Errorf("%s on %.16s; want %.16s", m.Name, m.Revision, st.Revision)
		}
	}
	return st.Revision, nil
}

// wave is how one change spread: the time from its start until the last
// agent had applied it, and until the last agent's status reported the whole
// cluster converged on it.
type wave struct {
	Applied, Converged time.Duration
	Revision           string
}

// waitAll polls every agent concurrently until its status meets g and
// returns the wave; every agent must end on the same revision.
func (a *agents) waitAll(ctx context.Context, t0 time.Time, g goal) (wave, error) {
	seen := make([]wave, len(a.hosts))
	errs := make([]error, len(a.hosts))
	var wg sync.WaitGroup
	for i, h := range a.hosts {
		wg.Go(func() { seen[i], errs[i] = a.waitOne(ctx, h, t0, g) })
	}
	wg.Wait()
	var w wave
	for i, r := range seen {
		if errs[i] != nil {
			return wave{}, errs[i]
		}
		if w.Revision == "" {
			w.Revision = r.Revision
		} else if r.Revision != w.Revision {
			return wave{}, fmt.Errorf("%s converged on %.16s, another agent on %.16s", a.hosts[i].Name, r.Revision, w.Revision)
		}
		w.Applied, w.Converged = max(w.Applied, r.Applied), max(w.Converged, r.Converged)
	}
	return w, nil
}

// waitOne polls the agent on h every statusEvery until its status meets g,
// and returns when, since t0, it first showed the goal's revision applied
// and the whole goal met.
func (a *agents) waitOne(ctx context.Context, h *lab.Host, t0 time.Time, g goal) (wave, error) {
	w := wave{Applied: -1}
	nextReport := 5 * time.Second
	err := testsupport.Eventually(ctx, convergeWait, statusEvery, func() error {
		st, err := a.weir.Status(ctx, h)
		now := time.Since(t0)
		if err == nil {
			if w.Applied < 0 && g.applied(st) {
				w.Applied = now
			}
			if w.Revision, err = g.converged(st); err == nil {
				w.Converged = now
				return nil
			}
		}
		if now > nextReport {
			nextReport += 5 * time.Second
			a.log.Info("still waiting", "host", h.Name, "after", now.Round(time.Millisecond), "reason", err)
		}
		return errors.Join(a.weir.CheckRunning(h), err)
	})
	if err != nil {
		return wave{}, fmt.Errorf("%s not converged: %w", h.Name, err)
	}
	return w, nil
}
