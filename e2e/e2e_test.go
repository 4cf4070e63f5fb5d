// Package e2e proves weir end to end on a real kernel: real `git daemon`, real
// `bin/weir agent` processes in host namespaces, real TCP and UDP from guest
// namespaces to frontends, with faults. The tests need root and skip otherwise.
package e2e

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"weir/e2e/lab"
	"weir/internal/testsupport"
)

const frontend = "198.20.0.10:80"

// TestPushConvergesAndSplitsByWeight: a push makes every agent converge on
// that commit, and 1,000 connections split 1:3 by weight. It measures the
// time from `git push` to convergence, by polling and by the /refresh webhook.
func TestPushConvergesAndSplitsByWeight(t *testing.T) {
	e := newBasicEnv(t)
	c := e.push("basic 1:3", renderSpecs(basicHosts(), []balancerSpec{ordersBalancer(map[string]int{"orders-1": 1, "orders-2": 3})}))
	e.startAgents()
	d := e.waitConverged(c)
	figure(t, "agents start → converged", d, "")
	st := e.status(e.host("host-a"))
	if st.Revision != c {
		t.Errorf("status revision = %.12s; want %.12s", st.Revision, c)
	}
	if m, _ := st.Member("host-a"); m.Balancers != 1 || m.Rules < 2 {
		t.Errorf("host-a sets %d balancers with %d rules; want 1 balancer, at least 2 rules", m.Balancers, m.Rules)
	}
	web := e.lab.Guest(1, 1)
	r := e.dial(web, "tcp", frontend, 1000)
	assertSplit(t, "1,000 connections at 1:3", r, map[string]float64{"orders-1": 0.25, "orders-2": 0.75})

	// Push → converged, by polling alone and with the push webhook.
	var polled, hooked []time.Duration
	for i := range 6 {
		w := map[string]int{"orders-1": 1 + i%2, "orders-2": 3}
		c := e.push(fmt.Sprintf("weights %v", w), renderSpecs(basicHosts(), []balancerSpec{ordersBalancer(w)}))
		start := time.Now()
		if i%2 == 1 {
			code, body, err := e.weir.API(e.ctx, e.host("host-b"), "POST", "/refresh")
			if err != nil || code/100 != 2 {
				t.Fatalf("POST /refresh = %d %q, %v; want 2xx", code, body, err)
			}
		}
		if _, err := e.weir.WaitConverged(e.ctx, waitFor, e.lab.Hosts, c, lab.Names(e.lab.Hosts)); err != nil {
			t.Fatalf("push %d: %v", i, err)
		}
		if i%2 == 1 {
			hooked = append(hooked, time.Since(start))
		} else {
			polled = append(polled, time.Since(start))
		}
	}
	figure(t, "git push → all converged (poll "+poll.String()+", median of 3)", median(polled), fmt.Sprint(polled))
	figure(t, "git push + POST /refresh on one agent → all converged (median of 3)", median(hooked), fmt.Sprint(hooked))
	r = e.dial(web, "tcp", frontend, 400)
	assertSplit(t, "400 connections at 2:3 after the pushes", r, map[string]float64{"orders-1": 0.4, "orders-2": 0.6})
}

// TestRoundRobinAndUDP: roundrobin alternates exactly; a UDP balancer works.
func TestRoundRobinAndUDP(t *testing.T) {
	e := newBasicEnv(t)
	rr := ordersBalancer(nil)
	rr.name, rr.addr, rr.strategy = "orders-rr", "198.20.0.11", "roundrobin"
	udp := balancerSpec{name: "orders-udp", source: "frontend", target: "orders", addr: "198.20.0.12", port: 53, protocol: "udp", targetPort: 8053}
	c := e.push("rr and udp", renderSpecs(basicHosts(), []balancerSpec{rr, udp}))
	e.startAgents()
	e.waitConverged(c)
	web := e.lab.Guest(1, 1)

	r := e.dial(web, "tcp", "198.20.0.11:80", 40)
	if r.Failures() != 0 {
		t.Fatalf("roundrobin: %v; want no failures", r)
	}
	for i := 1; i < len(r.Replies); i++ {
		if r.Replies[i] == r.Replies[i-1] {
			t.Fatalf("roundrobin replies %v: %d and %d are both %s; want strict alternation", r.Replies, i-1, i, r.Replies[i])
		}
	}
	if got := r.Counts(); got["orders-1"] != 20 || got["orders-2"] != 20 {
		t.Errorf("roundrobin counts = %v; want 20 each", got)
	}

	r = e.dial(web, "udp", "198.20.0.12:53", 400)
	assertSplit(t, "400 UDP datagrams at 1:1", r, map[string]float64{"orders-1": 0.5, "orders-2": 0.5})
}

// brokenBalancer has an unknown field on line 11 of broken.yaml.
const brokenBalancer = `apiVersion: weir/v1
kind: Balancer
metadata:
  name: broken
spec:
  source: frontend
  target: orders
  frontend:
    address: 198.20.0.99
    port: 80
  bogusField: 1
`

// TestInvalidPushKeepsLastGoodRevision: an invalid push changes nothing,
// every agent reports FILE:LINE, traffic is unaffected, and the fix applies.
func TestInvalidPushKeepsLastGoodRevision(t *testing.T) {
	e := newBasicEnv(t)
	good := renderSpecs(basicHosts(), []balancerSpec{ordersBalancer(nil)})
	c1 := e.push("good", good)
	e.startAgents()
	e.waitConverged(c1)
	before := e.rules(e.host("host-a"), "nat")

	bad := renderSpecs(basicHosts(), []balancerSpec{ordersBalancer(map[string]int{"orders-2": 5})})
	bad["broken.yaml"] = brokenBalancer
	c2 := e.push("broken", bad)
	fileLine := regexp.MustCompile(`broken\.yaml:\d+: `)
	// Every member's error must reach every member's status within seconds
	// of the last agent reporting its own, not at the next push/pull.
	var allOwn time.Time
	err := testsupport.Eventually(e.ctx, waitFor, 200*time.Millisecond, func() error {
		own, problem := 0, error(nil)
		for _, h := range e.lab.Hosts {
			st, err := e.weir.Status(e.ctx, h)
			if err != nil {
				return err
			}
			if m, _ := st.Member(h.Name); fileLine.MatchString(m.Error) {
				own++
			}
			if err := invalidPushSeen(h, st, c1, fileLine); err != nil && problem == nil {
				problem = err
			}
		}
		if own == len(e.lab.Hosts) && allOwn.IsZero() {
			allOwn = time.Now()
		}
		return problem
	})
	if err != nil {
		t.Fatalf("after invalid push %.12s: %v", c2, err)
	}
	spread := time.Since(allOwn)
	figure(t, "every agent reports its own error → every status shows every error", spread, "")
	if spread > 5*time.Second {
		t.Errorf("errors took %v to reach every status after every agent reported its own; want seconds", spread)
	}
	m, _ := e.status(e.host("host-a")).Member("host-b")
	t.Logf("error reported: %s", m.Error)
	if !strings.Contains(m.Error, "broken.yaml:11:") {
		t.Logf("note: the error names line %q; the unknown field is on line 11", fileLine.FindString(m.Error))
	}
	if after := e.rules(e.host("host-a"), "nat"); !slices.Equal(after, before) {
		t.Errorf("rules changed after an invalid push:\nbefore %q\nafter  %q", before, after)
	}
	r := e.dial(e.lab.Guest(1, 1), "tcp", frontend, 200)
	assertSplit(t, "200 connections during the invalid revision", r, map[string]float64{"orders-1": 0.5, "orders-2": 0.5})

	c3 := e.push("fixed", renderSpecs(basicHosts(), []balancerSpec{ordersBalancer(map[string]int{"orders-2": 3})}))
	e.waitConverged(c3)
	for _, m := range e.status(e.host("host-c")).Members {
		if m.Error != "" {
			t.Errorf("after the fix %s still reports %q", m.Name, m.Error)
		}
	}
	r = e.dial(e.lab.Guest(1, 1), "tcp", frontend, 400)
	assertSplit(t, "400 connections after the fix (1:3)", r, map[string]float64{"orders-1": 0.25, "orders-2": 0.75})
}

// invalidPushSeen checks that host h's status shows every member on the last
// good revision with a FILE:LINE error, and not converged.
func invalidPushSeen(h *lab.Host, st lab.Status, good string, fileLine *regexp.Regexp) error {
	for _, m := range st.Members {
		if m.Revision != good {
			return fmt.Errorf("%s sees %s on %.12s; want the last good %.12s", h.Name, m.Name, m.Revision, good)
		}
		if !fileLine.MatchString(m.Error) {
			return fmt.Errorf("%s sees %s error %q; want broken.yaml:LINE: message", h.Name, m.Name, m.Error)
		}
	}
	if st.Converged {
		return fmt.Errorf("%s: converged with errors reported", h.Name)
	}
	return nil
}

// TestHandFlushIsRepaired: flushing weir's chains by hand is repaired within
// the resync period.
func TestHandFlushIsRepaired(t *testing.T) {
	e := newBasicEnv(t)
	c := e.push("basic", renderSpecs(basicHosts(), []balancerSpec{ordersBalancer(nil)}))
	e.startAgents()
	e.waitConverged(c)
	ha := e.host("host-a")
	want := e.rules(ha, "nat")
	var chains []string
	for _, l := range want {
		if name, ok := strings.CutPrefix(l, ":WEIR-"); ok {
			chains = append(chains, "WEIR-"+strings.Fields(name)[0])
		}
	}
	if len(chains) == 0 {
		t.Fatalf("no WEIR- chains in host-a's nat table:\n%s", strings.Join(want, "\n"))
	}
	var flushed time.Time
	for _, ch := range chains {
		if _, err := e.lab.Exec(e.ctx, ha.NS, "iptables", "-t", "nat", "-F", ch); err != nil {
			t.Fatal(err)
		}
	}
	flushed = time.Now()
	e.waitRules(ha, "nat", func(got []string) error {
		if !slices.Equal(got, want) {
			return fmt.Errorf("nat table not yet repaired: %d lines, want %d", len(got), len(want))
		}
		return nil
	})
	took := time.Since(flushed)
	figure(t, "hand flush of "+strings.Join(chains, ",")+" → repaired (resync "+resync.String()+")", took, "")
	// The resync period plus slack for a loaded machine.
	if limit := resync + 5*time.Second; took > limit {
		t.Errorf("repair took %v; want within the resync period %v (+5s slack)", took, resync)
	}
	r := e.dial(e.lab.Guest(1, 1), "tcp", frontend, 200)
	assertSplit(t, "200 connections after the repair", r, map[string]float64{"orders-1": 0.5, "orders-2": 0.5})
}

// TestTargetHostDeath: a killed target host's guests leave the balancer, and
// come back when its agent restarts.
func TestTargetHostDeath(t *testing.T) {
	e := newBasicEnv(t)
	c := e.push("basic", renderSpecs(basicHosts(), []balancerSpec{ordersBalancer(nil)}))
	e.startAgents()
	e.waitConverged(c)
	ha := e.host("host-a")
	if !containsAddr(e.rules(ha, "nat"), "198.19.3.2") {
		t.Fatal("host-a has no rule for orders-2 (198.19.3.2) before the kill")
	}
	figure(t, "target host's agent killed → its targets gone on the setting host", e.killOrders2Host(), "")
	if m, ok := e.status(ha).Member("host-c"); ok && m.State == "alive" {
		t.Errorf("host-a sees host-c %s after its death; want not alive", m.State)
	}
	if _, err := e.weir.WaitConverged(e.ctx, waitFor, e.lab.Hosts[:2], c, []string{"host-a", "host-b"}); err != nil {
		t.Fatalf("survivors: %v", err)
	}
	r := e.dial(e.lab.Guest(1, 1), "tcp", frontend, 100)
	if got := r.Counts()["orders-1"]; got != 100 || r.Failures() != 0 {
		t.Errorf("with host-c dead: %v; want orders-1=100", r)
	}

	if err := e.agent("host-c").Restart(); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	e.waitConverged(c)
	e.waitRules(ha, "nat", func(got []string) error {
		if !containsAddr(got, "198.19.3.2") {
			return fmt.Errorf("orders-2 not back on host-a")
		}
		return nil
	})
	figure(t, "target host's agent restarted → its targets back", time.Since(restarted), "")
	r = e.dial(e.lab.Guest(1, 1), "tcp", frontend, 200)
	assertSplit(t, "200 connections after host-c's return", r, map[string]float64{"orders-1": 0.5, "orders-2": 0.5})
}

// TestSettingHostRestart: restarting the setting host's agent (graceful and
// kill -9) fails no connection and leaves no duplicate rule.
func TestSettingHostRestart(t *testing.T) {
	e := newBasicEnv(t)
	c := e.push("basic", renderSpecs(basicHosts(), []balancerSpec{ordersBalancer(nil)}))
	e.startAgents()
	e.waitConverged(c)
	ha := e.host("host-a")
	before := map[string][]string{"nat": e.rules(ha, "nat"), "filter": e.rules(ha, "filter")}

	d, err := e.lab.StartDialer(e.ctx, e.lab.Guest(1, 1), "tcp", frontend)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	waitAttempts := func(more int) {
		t.Helper()
		n := len(d.Result().Replies) + more
		if err := testsupport.Eventually(e.ctx, waitFor, 20*time.Millisecond, func() error {
			if got := len(d.Result().Replies); got < n {
				return fmt.Errorf("%d attempts, want %d", got, n)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	waitAttempts(20)
	for _, how := range []string{"SIGTERM", "SIGKILL"} {
		p := e.agent("host-a")
		var err error
		if how == "SIGTERM" {
			err = p.Stop(20 * time.Second)
		} else {
			err = p.Kill()
		}
		if err != nil {
			t.Fatalf("%s host-a's agent: %v", how, err)
		}
		waitAttempts(20) // traffic while no agent runs on the setting host
		if err := p.Restart(); err != nil {
			t.Fatal(err)
		}
		took := e.waitConverged(c)
		waitAttempts(50)
		t.Logf("%s + restart of host-a's agent: converged %v after the restart", how, took.Round(time.Millisecond))
	}
	r, err := d.Stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("continuous dialing during two restarts: %d attempts, %v", len(r.Replies), r)
	if r.Failures() != 0 {
		t.Errorf("%d of %d connections failed during the restarts; want none (first: %s)", r.Failures(), len(r.Replies), r.Errors[0])
	}
	for table, want := range before {
		got := e.rules(ha, table)
		if dups := duplicates(got); len(dups) > 0 {
			t.Errorf("%s: duplicate rules after the restarts: %q", table, dups)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s after the restarts differs:\ngot  %q\nwant %q", table, got, want)
		}
	}
}

// TestWrongGossipKeyNeverJoins: an agent with another gossip key stays out.
func TestWrongGossipKeyNeverJoins(t *testing.T) {
	e := newBasicEnv(t)
	c := e.push("basic", renderSpecs(basicHosts(), []balancerSpec{ordersBalancer(nil)}))
	keys := map[string]string{}
	for _, name := range []string{"right", "wrong"} {
		// A base64 AES-256 key, as `weir keygen` prints (its own tests cover it).
		k := make([]byte, 32)
		rand.Read(k)
		keys[name] = filepath.Join(e.lab.Dir, name+".key")
		if err := os.WriteFile(keys[name], []byte(base64.StdEncoding.EncodeToString(k)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range e.lab.Hosts {
		key := keys["right"]
		if h.Name == "host-c" {
			key = keys["wrong"]
		}
		e.startAgent(h, append(e.gitArgs(), "--gossip-key-file", key)...)
	}
	assertApart(t, e, c)
}

// TestClusterLabelsNeverMerge: agents with different --cluster names stay apart.
func TestClusterLabelsNeverMerge(t *testing.T) {
	e := newBasicEnv(t)
	c := e.push("basic", renderSpecs(basicHosts(), []balancerSpec{ordersBalancer(nil)}))
	for _, h := range e.lab.Hosts {
		label := "blue"
		if h.Name == "host-c" {
			label = "green"
		}
		e.startAgent(h, append(e.gitArgs(), "--cluster", label)...)
	}
	assertApart(t, e, c)
}

// assertApart checks that host-a and host-b form a cluster that host-c never
// enters, and that host-c's view never holds them, for a while.
func assertApart(t *testing.T, e *env, c string) {
	t.Helper()
	ha, hb, hc := e.host("host-a"), e.host("host-b"), e.host("host-c")
	e.waitConverged(c, ha, hb)
	// host-c runs: its own view is itself alone.
	if _, err := e.weir.WaitConverged(e.ctx, waitFor, []*lab.Host{hc}, c, []string{"host-c"}); err != nil {
		t.Fatalf("host-c alone: %v", err)
	}
	// Several gossip and push-pull rounds.
	err := testsupport.Consistently(e.ctx, 10*time.Second, 500*time.Millisecond, func() error {
		for _, h := range []*lab.Host{ha, hb} {
			if m, ok := e.status(h).Member("host-c"); ok {
				return fmt.Errorf("%s lists host-c (%s); want it never joined", h.Name, m.State)
			}
		}
		for _, m := range e.status(hc).Members {
			if m.Name != "host-c" {
				return fmt.Errorf("host-c lists %s (%s); want it alone", m.Name, m.State)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// orders-2 runs on host-c, which the a+b cluster does not count as alive.
	if containsAddr(e.rules(ha, "nat"), "198.19.3.2") {
		t.Errorf("host-a balances to orders-2 on host-c, which is not in its cluster")
	}
}

// TestHairpin: source and target guest on the same host.
func TestHairpin(t *testing.T) {
	e := newEnv(t, 2, 1)
	e.serve(e.lab.Guest(1, 2), "orders-1")
	e.serve(e.lab.Guest(2, 1), "orders-2")
	hosts := []hostSpec{
		{"host-a", "198.18.0.1", []guestSpec{{"web-1", "198.19.1.2", []string{"frontend"}}, {"orders-1", "198.19.1.3", []string{"orders"}}}},
		{"host-b", "198.18.0.2", []guestSpec{{"orders-2", "198.19.2.2", []string{"orders"}}}},
	}
	c := e.push("hairpin", renderSpecs(hosts, []balancerSpec{ordersBalancer(nil)}))
	e.startAgents()
	e.waitConverged(c)
	web := e.lab.Guest(1, 1)
	hostA := e.host("host-a")
	r := e.dial(web, "tcp", frontend, 200)
	assertSplit(t, "200 connections, one target on the source's host", r, map[string]float64{"orders-1": 0.5, "orders-2": 0.5})
	// Only the connections to the target on host-a were masqueraded: those
	// to host-b keep web-1's address.
	if got, want := e.masqueraded(hostA), r.Counts()["orders-1"]; got != want {
		t.Errorf("host-a masqueraded %d connections; want the %d to its own guest orders-1", got, want)
	}

	hosts[1].guests[0].services = []string{"billing"}
	c = e.push("only the local target", renderSpecs(hosts, []balancerSpec{ordersBalancer(nil)}))
	e.waitConverged(c)
	r = e.dial(web, "tcp", frontend, 50)
	if got := r.Counts()["orders-1"]; got != 50 {
		t.Errorf("only the local target: %v; want orders-1=50", r)
	}

	// A port forward to a guest of host-a that weir does not own is not
	// masqueraded by weir.
	before := e.masqueraded(hostA)
	e.execIn(hostA, "iptables", "-t", "nat", "-I", "PREROUTING", "-d", "198.20.0.99", "-p", "tcp", "--dport", "80", "-j", "DNAT", "--to-destination", "198.19.1.3:8080")
	r = e.dial(web, "tcp", "198.20.0.99:80", 20)
	if got := r.Counts()["orders-1"]; got != 20 {
		t.Errorf("a foreign port forward to orders-1: %v; want orders-1=20", r)
	}
	if got := e.masqueraded(hostA); got != before {
		t.Errorf("weir masqueraded %d connections of a port forward it does not own", got-before)
	}

	// web-1 is a target of its own balancer: it reaches itself.
	e.serve(web, "web-1")
	hosts[0].guests[0].services = []string{"frontend", "orders"}
	c = e.push("the source is a target", renderSpecs(hosts, []balancerSpec{ordersBalancer(nil)}))
	e.waitConverged(c)
	r = e.dial(web, "tcp", frontend, 100)
	assertSplit(t, "100 connections, the source guest among the targets", r, map[string]float64{"web-1": 0.5, "orders-1": 0.5})
}

// masqueraded returns how many connections host h's WEIR-POSTROUTING has
// masqueraded: the packet counter of its MASQUERADE rule, which the first
// packet of each connection meets.
func (e *env) masqueraded(h *lab.Host) int {
	e.t.Helper()
	out := e.execIn(h, "iptables-save", "-c", "-t", "nat")
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "-A WEIR-POSTROUTING ") && strings.HasSuffix(l, "-j MASQUERADE") {
			var pkts, bytes int
			if _, err := fmt.Sscanf(l, "[%d:%d]", &pkts, &bytes); err != nil {
				e.t.Fatalf("reading the counters of %q: %v", l, err)
			}
			return pkts
		}
	}
	e.t.Fatalf("no MASQUERADE rule in %s's WEIR-POSTROUTING:\n%s", h.Name, out)
	return 0
}

// execIn runs a command in host h's namespace and fails the test if it fails.
func (e *env) execIn(h *lab.Host, name string, args ...string) string {
	e.t.Helper()
	out, err := e.lab.Exec(e.ctx, h.NS, name, args...)
	if err != nil {
		e.t.Fatalf("%s %v in %s: %v: %s", name, args, h.Name, err, out)
	}
	return out
}

// TestDirModeEditorSave: with --dir, an editor-style save (write a temp
// file, rename it over the spec) changes the rules.
func TestDirModeEditorSave(t *testing.T) {
	e := newBasicEnv(t)
	files := renderSpecs(basicHosts(), []balancerSpec{ordersBalancer(nil)})
	dirs := map[string]string{}
	for _, h := range e.lab.Hosts {
		dirs[h.Name] = filepath.Join(e.lab.Dir, "specs-"+h.Name)
		if err := lab.WriteFiles(dirs[h.Name], files); err != nil {
			t.Fatal(err)
		}
		e.startAgent(h, "--dir", dirs[h.Name], "--resync", resync.String())
	}
	e.waitConverged("")
	st := e.status(e.host("host-a"))
	rev1 := st.Revision
	if !strings.HasPrefix(rev1, "dir:") {
		t.Errorf("revision in --dir mode = %q; want dir:<sha256>", rev1)
	}
	before := e.rules(e.host("host-a"), "nat")

	changed := renderSpecs(basicHosts(), []balancerSpec{ordersBalancer(map[string]int{"orders-2": 3})})["balancers.yaml"]
	for _, h := range e.lab.Hosts {
		tmp := filepath.Join(dirs[h.Name], ".balancers.yaml.swp")
		if err := os.WriteFile(tmp, []byte(changed), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dirs[h.Name], "balancers.yaml")); err != nil {
			t.Fatal(err)
		}
	}
	saved := time.Now()
	err := testsupport.Eventually(e.ctx, waitFor, 100*time.Millisecond, func() error {
		st, err := e.weir.ConvergedOn(e.ctx, e.lab.Hosts, "", lab.Names(e.lab.Hosts))
		if err != nil {
			return err
		}
		if st.Revision == rev1 {
			return fmt.Errorf("still on %s", rev1)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("after the save: %v", err)
	}
	figure(t, "--dir editor-style save → all converged", time.Since(saved), "")
	if after := e.rules(e.host("host-a"), "nat"); slices.Equal(after, before) {
		t.Errorf("host-a's rules did not change after the save")
	}
	r := e.dial(e.lab.Guest(1, 1), "tcp", frontend, 400)
	assertSplit(t, "400 connections after the save (1:3)", r, map[string]float64{"orders-1": 0.25, "orders-2": 0.75})
}

// foreignSetup is someone else's netfilter state on a host: chains, jumps
// from the same built-in chains weir uses, and a chain whose name only looks
// like weir's.
var foreignSetup = [][]string{
	{"-t", "nat", "-N", "FOREIGN-NAT"},
	{"-t", "nat", "-A", "FOREIGN-NAT", "-d", "198.20.0.200/32", "-j", "RETURN"},
	{"-t", "nat", "-A", "PREROUTING", "-d", "198.20.0.200/32", "-j", "FOREIGN-NAT"},
	{"-t", "nat", "-A", "POSTROUTING", "-s", "198.19.9.0/24", "-j", "ACCEPT"},
	{"-t", "nat", "-A", "OUTPUT", "-d", "198.20.0.202/32", "-j", "RETURN"},
	{"-t", "nat", "-N", "WEIRD"},
	{"-t", "nat", "-A", "WEIRD", "-j", "RETURN"},
	{"-t", "filter", "-N", "FOREIGN-FWD"},
	{"-t", "filter", "-A", "FOREIGN-FWD", "-d", "198.19.9.9/32", "-j", "DROP"},
	{"-t", "filter", "-A", "FORWARD", "-j", "FOREIGN-FWD"},
	{"-t", "filter", "-A", "OUTPUT", "-d", "198.20.0.203/32", "-j", "ACCEPT"},
	{"-t", "mangle", "-A", "PREROUTING", "-d", "198.20.0.204/32", "-j", "ACCEPT"},
}

// TestForeignRulesSurvive: rules and chains made before the agents start
// survive applies, changes, repairs and restarts; `weir cleanup` removes
// exactly weir's.
func TestForeignRulesSurvive(t *testing.T) {
	e := newBasicEnv(t)
	foreign := e.setUpForeign("iptables", foreignSetup, e.rules)
	check := func(stage string) {
		t.Helper()
		foreign.check(t, e.lab.Hosts, stage)
	}
	c := e.push("basic", renderSpecs(basicHosts(), []balancerSpec{ordersBalancer(nil)}))
	e.startAgents()
	e.waitConverged(c)
	ha := e.host("host-a")
	if len(weirLines(e.rules(ha, "nat"))) == 0 {
		t.Fatal("host-a has no WEIR- rules after convergence")
	}
	check("after the first apply")
	r := e.dial(e.lab.Guest(1, 1), "tcp", frontend, 100)
	if r.Failures() != 0 {
		t.Errorf("traffic with foreign rules present: %v", r)
	}

	c = e.push("weights", renderSpecs(basicHosts(), []balancerSpec{ordersBalancer(map[string]int{"orders-1": 2})}))
	e.waitConverged(c)
	check("after a change")

	want := e.rules(ha, "nat")
	if _, err := e.lab.Exec(e.ctx, ha.NS, "iptables", "-t", "nat", "-F", "PREROUTING"); err != nil {
		t.Fatal(err)
	}
	// Put the foreign jump back as its owner would; weir must restore its own.
	if _, err := e.lab.Exec(e.ctx, ha.NS, "iptables", "-t", "nat", "-A", "PREROUTING", "-d", "198.20.0.200/32", "-j", "FOREIGN-NAT"); err != nil {
		t.Fatal(err)
	}
	e.waitRules(ha, "nat", func(got []string) error {
		if len(weirLines(got)) != len(weirLines(want)) {
			return fmt.Errorf("weir's jumps not yet restored")
		}
		return nil
	})
	check("after a repair")

	if err := e.agent("host-a").Stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	check("after SIGTERM")
	if err := e.agent("host-a").Restart(); err != nil {
		t.Fatal(err)
	}
	e.waitConverged(c)
	check("after a restart")

	e.stopAndCleanUp(t, foreign, nil)
}

// stopAndCleanUp stops every host's agent, runs `weir cleanup` there and
// checks that the foreign rules are as they were set up; each, when set,
// then checks the host further.
func (e *env) stopAndCleanUp(t *testing.T, foreign *foreignState, each func(*lab.Host)) {
	t.Helper()
	for _, h := range e.lab.Hosts {
		if err := e.agent(h.Name).Stop(20 * time.Second); err != nil {
			t.Fatal(err)
		}
		if _, stderr, err := e.weir.Run(e.ctx, h, "cleanup"); err != nil {
			t.Fatalf("weir cleanup on %s: %v (%s)", h.Name, err, stderr)
		}
		foreign.checkPristine(t, h)
		if each != nil {
			each(h)
		}
	}
}
