package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	"weir/e2e/lab"
)

// Settings of the convergence rows.
const (
	convergeHosts = 10
	statusEvery   = 25 * time.Millisecond // how often each agent's API is polled
	convergeWait  = 90 * time.Second      // longest wait for one change
	gitPoll       = 15 * time.Second      // --poll of the Git rows: the default
	pollPushes    = 7                     // changes in each poll row (each takes up to a poll)
	// dirChanges is the least number of changes in the --dir row: enough
	// rapid changes to catch a state update lost until the 30 s push/pull
	// (about 1 change in 10 before memberlist's queue was fixed).
	dirChanges = 30
)

// Sample is a set of timings with their percentiles.
type Sample []time.Duration

// Pct returns the p-th percentile (nearest rank).
func (s Sample) Pct(p float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	c := slices.Clone(s)
	slices.Sort(c)
	i := int(p*float64(len(c))+0.999999) - 1
	return c[max(0, min(i, len(c)-1))]
}

// String is "p50 X, max Y (n=N)".
func (s Sample) String() string {
	return fmt.Sprintf("p50 %s, max %s (n=%d)", fmtDur(s.Pct(0.5)), fmtDur(s.Pct(1)), len(s))
}

// writeAll writes files into every dir as an editor saves: a temp file in
// the same directory, renamed over the target.
func writeAll(dirs []string, files map[string]string) error {
	for _, dir := range dirs {
		for name, content := range files {
			p := filepath.Join(dir, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			tmp := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".tmp")
			if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
				return err
			}
			if err := os.Rename(tmp, p); err != nil {
				return err
			}
		}
	}
	return nil
}

func stepConvergeDir(ctx context.Context, s *suite) ([]Row, error) {
	l, err := s.newLab(ctx, convergeHosts, false)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	dirs := make([]string, len(l.Hosts))
	for i, h := range l.Hosts {
		dirs[i] = filepath.Join(l.Dir, "specs", h.Name)
	}
	if err := writeAll(dirs, clusterSpec(convergeHosts, 0)); err != nil {
		return nil, err
	}
	a, err := s.startAgents(ctx, l, "dir", func(h *lab.Host) []string {
		return append(lab.JoinArgs(l.Hosts, h), "--dir", filepath.Join(l.Dir, "specs", h.Name))
	})
	if err != nil {
		return nil, err
	}
	defer a.stop()
	first, err := a.waitAll(ctx, time.Now(), goal{n: convergeHosts})
	if err != nil {
		return nil, fmt.Errorf("first convergence: %w", err)
	}
	rev := first.Revision
	s.log.Info("dir agents converged", "after", first.Converged, "revision", rev)
	var took, applied Sample
	for i := 1; i <= max(s.pushes, dirChanges); i++ {
		files := map[string]string{"balancers.yaml": clusterSpec(convergeHosts, i)["balancers.yaml"]}
		t0 := time.Now()
		if err := writeAll(dirs, files); err != nil {
			return nil, err
		}
		w, err := a.waitAll(ctx, t0, goal{not: rev, n: convergeHosts})
		if err != nil {
			return nil, fmt.Errorf("change %d: %w", i, err)
		}
		s.log.Info("dir change converged", "change", i, "applied everywhere", w.Applied, "converged everywhere", w.Converged)
		took, applied = append(took, w.Converged), append(applied, w.Applied)
		rev = w.Revision
	}
	rows := convergeRows(fmt.Sprintf("%d agents, --dir: spec change written to every dir", convergeHosts), took, applied, false, "go run ./e2e/bench -only converge-dir")
	// Every change must reach every status by gossip, not by the push/pull.
	rows[0].Target, rows[0].Met = "max < 2 s", verdict(took.Pct(1) < 2*time.Second)
	return rows, nil
}

// faster compares a sample's p50 with Flux's 1 m poll.
func faster(s Sample) string {
	return "1 m ÷ p50 = " + fmtRatio(float64(time.Minute)/float64(s.Pct(0.5)))
}

// convergeRows are the two rows of one convergence mode: until every agent
// applied the change, and until every agent's status said the cluster
// converged on it (the measure the target, when given, p50 < 1 s, is on).
func convergeRows(what string, converged, applied Sample, target bool, cmd string) []Row {
	const anchor = "Argo CD 120–180 s, Flux ≥ 60 s (default Git polling)"
	ratio := faster
	rows := []Row{
		{Group: "4", Name: what + " → every agent's status converged on it", Weir: converged.String(), Anchor: anchor, Ratio: ratio(converged), Cmd: cmd},
		{Group: "4", Name: what + " → every agent applied it", Weir: applied.String(), Anchor: anchor, Ratio: ratio(applied), Cmd: cmd},
	}
	if target {
		rows[0].Target, rows[0].Met = "p50 < 1 s", verdict(converged.Pct(0.5) < time.Second)
	}
	return rows
}

// gitMode is one way of running the Git rows' agents.
type gitMode struct {
	name      string
	pushes    int
	clustered bool // the agents gossip (else each is a cluster of its own)
	webhook   bool // a POST /refresh to one agent follows every push
}

// gitRows runs the Git rows on one lab, remembering the spec generation and
// commit last pushed.
type gitRows struct {
	s      *suite
	l      *lab.Lab
	gen    int
	commit string
}

func stepConvergeGit(ctx context.Context, s *suite) ([]Row, error) {
	l, err := s.newLab(ctx, convergeHosts, true)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	g := &gitRows{s: s, l: l}
	if g.commit, err = l.Git.PushFiles(ctx, "generation 0", clusterSpec(convergeHosts, 0)); err != nil {
		return nil, err
	}
	const cmd = "go run ./e2e/bench -only converge-git"
	conv, appl, err := g.run(ctx, gitMode{name: "webhook", pushes: s.pushes, clustered: true, webhook: true})
	if err != nil {
		return nil, err
	}
	rows := convergeRows(fmt.Sprintf("%d agents, Git: push + POST /refresh to one agent, others fetch on its gossiped hint", convergeHosts), conv, appl, true, cmd)
	conv, appl, err = g.run(ctx, gitMode{name: "poll-hint", pushes: min(s.pushes, pollPushes), clustered: true})
	if err != nil {
		return rows, err
	}
	rows = append(rows, convergeRows(fmt.Sprintf("%d agents, Git: push, no webhook: --poll %v (±10 %%) + gossiped hints", convergeHosts, gitPoll), conv, appl, false, cmd)...)
	conv, _, err = g.run(ctx, gitMode{name: "poll-only", pushes: min(s.pushes, pollPushes)})
	if err != nil {
		return rows, err
	}
	// Without gossip each agent's status covers itself only: converged = applied.
	return append(rows, Row{Group: "4", Name: fmt.Sprintf("%d agents, Git: push, polling only (--poll %v ±10 %%, no gossip, no hints) → the last agent applied it", convergeHosts, gitPoll),
		Weir: conv.String(), Anchor: "Argo CD 120–180 s, Flux ≥ 60 s (default Git polling)",
		Ratio: faster(conv), Cmd: cmd}), nil
}

// run starts the agents of mode, waits for them to converge on the last
// commit, then pushes mode.pushes changes and times each.
func (g *gitRows) run(ctx context.Context, mode gitMode) (converged, applied Sample, err error) {
	a, err := g.s.startAgents(ctx, g.l, mode.name, func(h *lab.Host) []string {
		args := []string{"--repo", g.l.Git.URL(), "--poll", gitPoll.String()}
		if mode.clustered {
			return append(args, lab.JoinArgs(g.l.Hosts, h)...)
		}
		// No gossip between the agents: each is a cluster of its own.
		return append(args, "--cluster", "solo-"+h.Name, "--settle-time", "1s")
	})
	if err != nil {
		return nil, nil, err
	}
	defer a.stop()
	members := 1
	if mode.clustered {
		members = convergeHosts
	}
	if _, err := a.waitAll(ctx, time.Now(), goal{want: g.commit, n: members}); err != nil {
		return nil, nil, fmt.Errorf("%s: first convergence: %w", mode.name, err)
	}
	for i := 0; i < mode.pushes; i++ {
		w, err := g.push(ctx, a, mode, members)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: push %d: %w", mode.name, i+1, err)
		}
		converged, applied = append(converged, w.Converged), append(applied, w.Applied)
	}
	return converged, applied, nil
}

// push commits the next generation, pushes it (at a random phase of the
// agents' poll timers unless mode has the webhook) and waits until the
// agents converged on it.
func (g *gitRows) push(ctx context.Context, a *agents, mode gitMode, members int) (wave, error) {
	g.gen++
	c, err := g.l.Git.CommitFiles(ctx, fmt.Sprintf("generation %d", g.gen), clusterSpec(convergeHosts, g.gen))
	if err != nil {
		return wave{}, err
	}
	if !mode.webhook {
		// Pushing right after the last agent polled would always wait a full
		// period for it.
		select {
		case <-time.After(rand.N(gitPoll)):
		case <-ctx.Done():
			return wave{}, ctx.Err()
		}
	}
	t0 := time.Now()
	if err := g.l.Git.Push(ctx); err != nil {
		return wave{}, err
	}
	pushed := time.Since(t0)
	if mode.webhook {
		if err := a.refresh(ctx, g.l.Hosts[0]); err != nil {
			return wave{}, err
		}
	}
	w, err := a.waitAll(ctx, t0, goal{want: c, n: members})
	if err != nil {
		return wave{}, err
	}
	g.commit = c
	g.s.log.Info("git push converged", "mode", mode.name, "generation", g.gen, "applied everywhere", w.Applied, "converged everywhere", w.Converged, "git push took", pushed)
	return w, nil
}
