package netfilter_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strings"
	"testing"

	ts "weir/internal/testsupport"
	"weir/reconcile/netfilter"
	"weir/reconcile/render"
)

// harness is one Netfilter implementation under the behaviour suite, with an
// independent way to act as the admin (exec, like `iptables -t TABLE ARGS`)
// and to read the tables (save, like `iptables-save -t TABLE`).
type harness struct {
	name string
	nf   netfilter.Netfilter
	exec func(table string, args ...string) error
	save func(table string) (string, error)
	ns   *ts.Netns // network namespace of a kernel harness
}

func fakeHarness() *harness {
	f := ts.NewFake()
	return &harness{
		name: "fake",
		nf:   f,
		exec: f.Run,
		save: func(table string) (string, error) {
			b, err := f.Save(context.Background(), table)
			return string(b), err
		},
	}
}

func (h *harness) mustExec(t *testing.T, table string, args ...string) {
	t.Helper()
	if err := h.exec(table, args...); err != nil {
		t.Fatalf("%s: iptables -t %s %s: %v", h.name, table, strings.Join(args, " "), err)
	}
}

var counters = regexp.MustCompile(`\[\d+:\d+\]`)

// snapshot returns the filter and nat tables as iptables-save prints them,
// without comment lines and counters, so two snapshots of the same state are
// equal.
func (h *harness) snapshot(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, table := range []string{"filter", "nat"} {
		text, err := h.save(table)
		if err != nil {
			t.Fatalf("%s: save %s: %v", h.name, table, err)
		}
		for _, l := range strings.Split(text, "\n") {
			if l == "" || strings.HasPrefix(l, "#") {
				continue
			}
			b.WriteString(counters.ReplaceAllString(l, "[0:0]") + "\n")
		}
	}
	return b.String()
}

// foreign returns the snapshot lines that weir does not own.
func foreign(snapshot string) []string {
	var out []string
	for _, l := range strings.Split(snapshot, "\n") {
		if l != "" && !strings.Contains(l, netfilter.OwnedPrefix) {
			out = append(out, l)
		}
	}
	return out
}

// checkOwned fails unless the live owned chains and jumps are exactly rs's,
// compared after normalization.
func (h *harness) checkOwned(t *testing.T, rs *render.Ruleset) {
	t.Helper()
	for _, table := range []string{"filter", "nat"} {
		text, err := h.save(table)
		if err != nil {
			t.Fatalf("%s: save %s: %v", h.name, table, err)
		}
		chains, rules, err := netfilter.SavedTable([]byte(text), table)
		if err != nil {
			t.Fatal(err)
		}
		want := tableOf(rs, table)
		got := map[string][]string{}
		for _, c := range chains {
			if strings.HasPrefix(c, netfilter.OwnedPrefix) {
				got[c] = normalizeAll(rules[c])
			}
		}
		wantChains := map[string][]string{}
		for _, c := range want.Chains {
			wantChains[c.Name] = normalizeAll(c.Rules)
		}
		if len(got) != len(wantChains) {
			t.Errorf("%s: %s has %d owned chains; want %d", h.name, table, len(got), len(wantChains))
		}
		for name, w := range wantChains {
			if fmt.Sprint(got[name]) != fmt.Sprint(w) {
				t.Errorf("%s: %s/%s = %q; want %q", h.name, table, name, got[name], w)
			}
		}
		if d := netfilter.JumpDrift(table, want.Jumps, rules); len(d) > 0 {
			t.Errorf("%s: jumps differ: %v", h.name, d)
		}
	}
}

// tableOf returns the table of rs named name, or an empty one.
func tableOf(rs *render.Ruleset, name string) *render.Table {
	for i := range rs.Tables {
		if rs.Tables[i].Name == name {
			return &rs.Tables[i]
		}
	}
	return &render.Table{Name: name}
}

func normalizeAll(rules []string) []string {
	out := make([]string, len(rules))
	for i, r := range rules {
		out[i] = netfilter.NormalizeRule(r)
	}
	return out
}

// reconcileUntil calls Reconcile up to n times until it repairs, and fails if
// it never does.
func reconcileUntil(t *testing.T, s *netfilter.Syncer, n int, what string) {
	t.Helper()
	for i := 1; i <= n; i++ {
		repaired, err := s.Reconcile(context.Background())
		if err != nil {
			t.Fatalf("%s: Reconcile: %v", what, err)
		}
		if repaired {
			return
		}
	}
	t.Fatalf("%s: Reconcile did not repair within %d calls", what, n)
}

// behaviourSuite is the contract every Netfilter must keep under a Syncer:
// full apply, idempotent re-apply, partial sync, drift repair, failure → full,
// foreign rules untouched, Cleanup.
func behaviourSuite(t *testing.T, h *harness) {
	ctx := context.Background()
	const fullEvery = 3
	s := netfilter.NewSyncer(h.nf, netfilter.SyncerOptions{FullCheckEvery: fullEvery, CanaryChains: 2, CanarySample: 2})

	// Foreign rules and chains exist before weir starts.
	h.mustExec(t, "nat", "-N", "FOREIGN")
	h.mustExec(t, "nat", "-A", "FOREIGN", "-j", "RETURN")
	h.mustExec(t, "nat", "-A", "PREROUTING", "-s", "10.99.0.0/16", "-j", "FOREIGN")
	h.mustExec(t, "filter", "-A", "FORWARD", "-s", "10.98.0.0/16", "-j", "ACCEPT")
	wantForeign := foreign(h.snapshot(t))
	checkForeign := func(step string) {
		t.Helper()
		if got := foreign(h.snapshot(t)); fmt.Sprint(got) != fmt.Sprint(wantForeign) {
			t.Fatalf("%s: after %s foreign rules = %q; want %q", h.name, step, got, wantForeign)
		}
	}

	base := fixture{n: 40, targets: 3, empty: map[int]bool{5: true}}
	rs1 := base.build()
	res, err := s.Apply(ctx, rs1)
	if err != nil {
		t.Fatalf("first Apply: %v", err)
	}
	if !res.Full || res.ChainsWritten != chainCount(rs1) || res.JumpsAdded != 5 {
		t.Errorf("first Apply = full %v, %d chains, %d jumps; want full, %d chains, 5 jumps",
			res.Full, res.ChainsWritten, res.JumpsAdded, chainCount(rs1))
	}
	h.checkOwned(t, rs1)
	checkForeign("first apply")

	// The same ruleset again: no kernel call at all, nothing changes.
	before := h.snapshot(t)
	var calls ts.FakeCalls
	if f, ok := h.nf.(*ts.Fake); ok {
		calls = f.Calls()
	}
	res, err = s.Apply(ctx, rs1)
	if err != nil {
		t.Fatalf("second Apply: %v", err)
	}
	if res.Full || res.ChainsWritten != 0 || res.Rules != 0 || res.JumpsAdded != 0 {
		t.Errorf("second Apply = %+v; want nothing written", res)
	}
	if f, ok := h.nf.(*ts.Fake); ok && f.Calls() != calls {
		t.Errorf("second Apply made kernel calls: %+v → %+v", calls, f.Calls())
	}
	if after := h.snapshot(t); after != before {
		t.Errorf("second Apply changed the tables:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// Partial: one balancer's targets change → only its chain is written.
	changed := base
	changed.shift = map[int]int{7: 1}
	rs2 := changed.build()
	res, err = s.Apply(ctx, rs2)
	if err != nil {
		t.Fatalf("partial Apply: %v", err)
	}
	if want := []string{"nat/" + svcChain(7)}; res.Full || fmt.Sprint(res.Written) != fmt.Sprint(want) || len(res.Deleted) != 0 {
		t.Errorf("partial Apply wrote %v, deleted %v (full %v); want %v only", res.Written, res.Deleted, res.Full, want)
	}
	h.checkOwned(t, rs2)
	checkForeign("partial apply")

	// A balancer goes, another comes: its group chain is rewritten, its own
	// chain deleted, the new one declared.
	moved := changed
	moved.n, moved.drop = 41, map[int]bool{3: true}
	rs3 := moved.build()
	res, err = s.Apply(ctx, rs3)
	if err != nil {
		t.Fatalf("Apply with a balancer removed and one added: %v", err)
	}
	wantW := []string{"nat/" + dstChain(0), "nat/" + dstChain(2), "nat/" + svcChain(40)}
	wantD := []string{"nat/" + svcChain(3)}
	if fmt.Sprint(res.Written) != fmt.Sprint(wantW) || fmt.Sprint(res.Deleted) != fmt.Sprint(wantD) {
		t.Errorf("Apply wrote %v, deleted %v; want %v, %v", res.Written, res.Deleted, wantW, wantD)
	}
	h.checkOwned(t, rs3)
	checkForeign("add and remove")

	// No drift: Reconcile repairs nothing, through canary and full checks.
	for i := 0; i < fullEvery+1; i++ {
		repaired, err := s.Reconcile(ctx)
		if err != nil || repaired {
			t.Fatalf("Reconcile without drift = %v, %v; want false, nil", repaired, err)
		}
	}

	// Drift, made by hand, is repaired within FullCheckEvery calls; drift in
	// the top chains and jumps at the next call (the canary).
	drifts := []struct {
		what   string
		table  string
		args   []string
		within int
	}{
		{"flushed top chain", "nat", []string{"-F", "WEIR-SERVICES"}, 1},
		{"deleted jump", "nat", []string{"-D", "PREROUTING", "-m", "comment", "--comment", "weir", "-j", "WEIR-SERVICES"}, 1},
		{"flushed leaf chain", "nat", []string{"-F", svcChain(11)}, fullEvery},
		{"rule added to owned chain", "nat", []string{"-A", svcChain(12), "-j", "RETURN"}, fullEvery},
		{"stale owned chain", "nat", []string{"-N", "WEIR-STRAY"}, fullEvery},
		{"flushed reject chain", "filter", []string{"-F", "WEIR-REJECT"}, fullEvery},
	}
	for i, d := range drifts {
		h.mustExec(t, d.table, d.args...)
		reconcileUntil(t, s, d.within, d.what)
		if got := s.Repairs(); got != i+1 {
			t.Errorf("after %s Repairs() = %d; want %d", d.what, got, i+1)
		}
		h.checkOwned(t, rs3)
		checkForeign(d.what)
	}
	repairs := s.Repairs()
	for i := 0; i < fullEvery+1; i++ {
		if repaired, err := s.Reconcile(ctx); err != nil || repaired {
			t.Fatalf("Reconcile after repairs = %v, %v; want false, nil", repaired, err)
		}
	}

	// A failed apply (a foreign rule still jumps to a chain weir deletes)
	// leaves the Syncer dirty; once the obstacle is gone the next apply is full.
	h.mustExec(t, "nat", "-A", "FOREIGN", "-j", svcChain(9))
	gone := moved
	gone.drop = map[int]bool{3: true, 9: true}
	rs4 := gone.build()
	if _, err := s.Apply(ctx, rs4); err == nil {
		t.Fatalf("Apply deleting a chain a foreign rule references succeeded; want an error")
	}
	if _, err := s.Reconcile(ctx); err == nil {
		t.Fatalf("Reconcile while the obstacle remains succeeded; want an error")
	}
	h.mustExec(t, "nat", "-D", "FOREIGN", "-j", svcChain(9))
	res, err = s.Apply(ctx, rs4)
	if err != nil {
		t.Fatalf("Apply after the obstacle went: %v", err)
	}
	if !res.Full || fmt.Sprint(res.Deleted) != fmt.Sprint([]string{"nat/" + svcChain(9)}) {
		t.Errorf("Apply after a failure = full %v, deleted %v; want full, [nat/%s]", res.Full, res.Deleted, svcChain(9))
	}
	if s.Repairs() != repairs {
		t.Errorf("Repairs() = %d; want %d (failures are not repairs)", s.Repairs(), repairs)
	}
	h.checkOwned(t, rs4)
	checkForeign("failed apply")

	// Cleanup leaves exactly the foreign rules, and a second one finds nothing.
	cres, err := netfilter.Cleanup(ctx, h.nf)
	if err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	if len(cres.Chains) != chainCount(rs4) || len(cres.Jumps) != 5 {
		t.Errorf("Cleanup removed %d chains, %d jumps; want %d, 5", len(cres.Chains), len(cres.Jumps), chainCount(rs4))
	}
	if got := h.snapshot(t); strings.Contains(got, netfilter.OwnedPrefix) {
		t.Errorf("after Cleanup owned rules remain:\n%s", got)
	}
	checkForeign("cleanup")
	cres, err = netfilter.Cleanup(ctx, h.nf)
	if err != nil || len(cres.Chains)+len(cres.Jumps) != 0 {
		t.Errorf("second Cleanup = %+v, %v; want nothing removed", cres, err)
	}
}

func TestSyncerFake(t *testing.T) {
	behaviourSuite(t, fakeHarness())
}

// TestSyncerAdoptsLeftovers starts a Syncer on a table an earlier run left
// behind: stale owned chains and a stale jump go, foreign rules stay.
func TestSyncerAdoptsLeftovers(t *testing.T) {
	ctx := context.Background()
	h := fakeHarness()
	old := fixture{n: 6, targets: 2}.build()
	if _, err := netfilter.NewSyncer(h.nf, netfilter.SyncerOptions{}).Apply(ctx, old); err != nil {
		t.Fatal(err)
	}
	h.mustExec(t, "nat", "-N", "WEIR-OLD")
	h.mustExec(t, "nat", "-A", "WEIR-OLD", "-j", svcChain(1))
	h.mustExec(t, "nat", "-I", "OUTPUT", "-j", "WEIR-OLD")
	h.mustExec(t, "nat", "-A", "OUTPUT", "-d", "10.1.0.0/16", "-j", "ACCEPT")
	rs := fixture{n: 4, targets: 2}.build()
	res, err := netfilter.NewSyncer(h.nf, netfilter.SyncerOptions{}).Apply(ctx, rs)
	if err != nil {
		t.Fatal(err)
	}
	wantD := []string{"nat/WEIR-OLD", "nat/" + svcChain(4), "nat/" + svcChain(5)}
	if !res.Full || fmt.Sprint(res.Deleted) != fmt.Sprint(wantD) || res.JumpsDeleted != 1 || res.JumpsAdded != 0 {
		t.Errorf("Apply over leftovers = full %v, deleted %v, jumps -%d +%d; want full, %v, -1 +0",
			res.Full, res.Deleted, res.JumpsDeleted, res.JumpsAdded, wantD)
	}
	h.checkOwned(t, rs)
	if !strings.Contains(h.snapshot(t), "-A OUTPUT -d 10.1.0.0/16 -j ACCEPT") {
		t.Errorf("foreign OUTPUT rule lost")
	}
}

// TestSyncerFailureMakesNextApplyFull injects a restore failure in a partial
// apply.
func TestSyncerFailureMakesNextApplyFull(t *testing.T) {
	ctx := context.Background()
	f := ts.NewFake()
	s := netfilter.NewSyncer(f, netfilter.SyncerOptions{})
	base := fixture{n: 10, targets: 2}
	if _, err := s.Apply(ctx, base.build()); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	f.RestoreHook = func([]byte) error { return boom }
	changed := base
	changed.shift = map[int]int{2: 1}
	if _, err := s.Apply(ctx, changed.build()); !errors.Is(err, boom) {
		t.Fatalf("Apply with failing restore = %v; want %v", err, boom)
	}
	f.RestoreHook = nil
	res, err := s.Apply(ctx, changed.build())
	if err != nil {
		t.Fatal(err)
	}
	if !res.Full || res.ChainsWritten != chainCount(changed.build()) {
		t.Errorf("Apply after failure = full %v, %d chains; want full, all", res.Full, res.ChainsWritten)
	}
}

// TestSyncerConntrack checks which conntrack entries an apply deletes: only
// those of UDP targets that left, for each way of leaving.
func TestSyncerConntrack(t *testing.T) {
	ctx := context.Background()
	f := ts.NewFake()
	s := netfilter.NewSyncer(f, netfilter.SyncerOptions{})
	base := fixture{n: 4, targets: 3, udp: map[int]bool{0: true, 1: true, 2: true}}
	rs := base.build()
	if _, err := s.Apply(ctx, rs); err != nil {
		t.Fatal(err)
	}
	for _, fl := range rs.Flows {
		fe := netip.AddrPortFrom(fl.Frontend.Address, fl.Frontend.Port)
		for _, to := range fl.Targets {
			f.AddConntrack(netfilter.ConntrackFlow{Protocol: fl.Frontend.Protocol, Frontend: fe, Target: to})
		}
	}
	// Balancer 0 loses its last target (one fewer), 1 moves every target,
	// 2 is removed, 3 is TCP and moves: UDP entries go, TCP ones stay.
	next := base
	next.shift = map[int]int{1: 10, 3: 10}
	next.drop = map[int]bool{2: true}
	nrs := next.build()
	nrs.Flows[0].Targets = nrs.Flows[0].Targets[:2]
	res, err := s.Apply(ctx, nrs)
	if err != nil {
		t.Fatal(err)
	}
	if want := uint(1 + 3 + 3); res.ConntrackDeleted != want {
		t.Errorf("ConntrackDeleted = %d; want %d", res.ConntrackDeleted, want)
	}
	var left []string
	for _, c := range f.Conntrack() {
		left = append(left, c.String())
	}
	sort.Strings(left)
	want := []string{
		"tcp 198.20.0.4:1000->198.19.1.4:8080", "tcp 198.20.0.4:1000->198.19.2.4:8080", "tcp 198.20.0.4:1000->198.19.3.4:8080",
		"udp 198.20.0.1:1000->198.19.1.1:8080", "udp 198.20.0.1:1000->198.19.2.1:8080",
	}
	if fmt.Sprint(left) != fmt.Sprint(want) {
		t.Errorf("conntrack left = %q; want %q", left, want)
	}
}
