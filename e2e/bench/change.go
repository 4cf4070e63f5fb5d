package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"weir/e2e/lab"
	"weir/internal/testsupport"
)

// Settings of the one-change rows.
const (
	changeTarget = 300 * time.Millisecond // the target of the end-to-end rows (nft)
	changeFile   = "balancers/050.yaml"   // the file BigTreeGen changes
)

// stepChangeE2E times one balancer changed in the 10k tree until the agent
// applied it, load included: in dir mode from the editor-style save, in Git
// mode from the push followed by POST /refresh; with every target on the
// agent's own host, then on another host.
func stepChangeE2E(ctx context.Context, s *suite) ([]Row, error) {
	var rows []Row
	var errs []error
	for _, layout := range []testsupport.Layout{testsupport.TargetsLocal, testsupport.TargetsRemote} {
		dir, err := s.changeDir(ctx, layout)
		if err != nil {
			errs = append(errs, fmt.Errorf("targets %s, dir: %w", layout, err))
		}
		git, pushes, err := s.changeGit(ctx, layout)
		if err != nil {
			errs = append(errs, fmt.Errorf("targets %s, Git: %w", layout, err))
		}
		rows = append(rows, changeRows(layout, dir, git, pushes)...)
	}
	return rows, errors.Join(errs...)
}

// changeRows are the rows of the one-change step for one layout; a mode
// that measured nothing has a FAILED row.
func changeRows(layout testsupport.Layout, dir, git, pushes Sample) []Row {
	const cmd = "go run ./e2e/bench -only change-e2e"
	what := fmt.Sprintf("1 balancer changed in a 10k tree (101 files, targets %s), nft", layoutWords(layout))
	row := func(mode, name string, s Sample, anchor string) Row {
		r := Row{Group: "2", Key: "change-" + layout.String() + "-" + mode, Name: what + ", " + name, Weir: s.String(), Anchor: anchor,
			Target: "p50 < 300 ms", Met: verdict(s.Pct(0.5) < changeTarget), Cmd: cmd}
		if len(s) == 0 {
			r.Weir, r.Met = "no figure (see the step's error)", Failed
		}
		return r
	}
	return []Row{
		row("dir", "--dir: file saved (temp + rename) → the agent's status shows it applied", dir, "debounce of file events 100 ms"),
		row("git", "Git: push + POST /refresh → the agent's status shows it applied", git, "git push alone "+pushes.String()),
	}
}

// changeDir runs one agent on the 10k tree in dir mode and times s.pushes
// saves of the changed file.
func (s *suite) changeDir(ctx context.Context, layout testsupport.Layout) (Sample, error) {
	hosts := bigHosts(layout)
	l, a, err := s.startBig(ctx, hosts, "change-dir-"+layout.String(), testsupport.BigTree(bigBalancers, layout))
	if err != nil {
		return nil, err
	}
	defer l.Close()
	defer a.stopAnd(false)
	st, err := a.waitBig(ctx, hosts, time.Now())
	if err != nil {
		return nil, fmt.Errorf("10k agent, dir: %w", err)
	}
	var dirs []string
	for _, h := range l.Hosts {
		dirs = append(dirs, filepath.Join(l.Dir, "specs", h.Name))
	}
	rev := st.Revision
	var took Sample
	for gen := 1; gen <= s.pushes; gen++ {
		files := map[string]string{changeFile: testsupport.BigTreeGen(bigBalancers, layout, gen)[changeFile]}
		t0 := time.Now()
		if err := writeAll(dirs, files); err != nil {
			return took, err
		}
		w, err := a.waitOne(ctx, l.Hosts[0], t0, goal{not: rev, n: hosts})
		if err != nil {
			return took, fmt.Errorf("dir change %d: %w", gen, err)
		}
		s.log.Info("10k dir change applied", "change", gen, "after", w.Applied)
		took, rev = append(took, w.Applied), w.Revision
		if err := settle(ctx); err != nil {
			return took, err
		}
	}
	return took, nil
}

// changeGit runs one agent on the 10k tree from Git and times s.pushes
// pushes of one changed file, each followed by POST /refresh; it also
// returns how long the pushes alone took.
func (s *suite) changeGit(ctx context.Context, layout testsupport.Layout) (took, pushes Sample, err error) {
	hosts := bigHosts(layout)
	l, err := s.newLab(ctx, hosts, true)
	if err != nil {
		return nil, nil, err
	}
	defer l.Close()
	commit, err := l.Git.PushFiles(ctx, "generation 0", testsupport.BigTree(bigBalancers, layout))
	if err != nil {
		return nil, nil, err
	}
	a, err := s.startAgents(ctx, l, "change-git-"+layout.String(), func(h *lab.Host) []string {
		return append(lab.JoinArgs(l.Hosts, h), "--repo", l.Git.URL(), "--poll", gitPoll.String(), "--settle-time", "1s")
	})
	if err != nil {
		return nil, nil, err
	}
	defer a.stopAnd(false)
	if _, err := a.waitBig(ctx, hosts, time.Now()); err != nil {
		return nil, nil, fmt.Errorf("10k agent, Git: %w", err)
	}
	h := l.Hosts[0]
	for gen := 1; gen <= s.pushes; gen++ {
		if commit, err = l.Git.CommitFiles(ctx, fmt.Sprintf("generation %d", gen), testsupport.BigTreeGen(bigBalancers, layout, gen)); err != nil {
			return took, pushes, err
		}
		t0 := time.Now()
		if err := l.Git.Push(ctx); err != nil {
			return took, pushes, err
		}
		pushed := time.Since(t0)
		if err := a.refresh(ctx, h); err != nil {
			return took, pushes, err
		}
		w, err := a.waitOne(ctx, h, t0, goal{want: commit, n: hosts})
		if err != nil {
			return took, pushes, fmt.Errorf("git change %d: %w", gen, err)
		}
		s.log.Info("10k git change applied", "change", gen, "after", w.Applied, "git push took", pushed)
		took, pushes = append(took, w.Applied), append(pushes, pushed)
		if err := settle(ctx); err != nil {
			return took, pushes, err
		}
	}
	return took, pushes, nil
}

// bigHosts is how many hosts run an agent on the 10k tree of layout: the
// targets' host too when they are remote, so that they stay alive.
func bigHosts(layout testsupport.Layout) int {
	if layout == testsupport.TargetsRemote {
		return 2
	}
	return 1
}

// settle waits out the agent's minimum interval between passes and the
// source's debounce, so each change is timed from an idle agent.
func settle(ctx context.Context) error {
	select {
	case <-time.After(time.Second):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
