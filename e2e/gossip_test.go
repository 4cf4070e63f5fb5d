package e2e

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"weir/e2e/lab"
)

// The gossip scenarios: what a node without the key, a stranger with it, a
// careless key file and a key rotation can and cannot do (README.md,
// "Gossip").

// forgedDead is a memberlist "dead" message, as anyone who reaches the
// gossip port can write it: the message type (5) and the msgpack map
// {Incarnation, Node, From}, in clear text. The incarnation is far above
// any the node has used, and above its refutation of the previous forgery.
func forgedDead(node, from string, i int) []byte {
	b := []byte{5, 0x83, 0xa0 | 11}
	b = append(b, "Incarnation"...)
	b = append(b, 0xce)
	b = binary.BigEndian.AppendUint32(b, 1<<30+uint32(i)<<10)
	for _, kv := range [][2]string{{"Node", node}, {"From", from}} {
		b = append(b, 0xa0|byte(len(kv[0])))
		b = append(b, kv[0]...)
		b = append(b, 0xa0|byte(len(kv[1])))
		b = append(b, kv[1]...)
	}
	return b
}

// logCount counts the lines of host h's agent log that contain s.
func (e *env) logCount(h *lab.Host, s string) int {
	e.t.Helper()
	b, err := os.ReadFile(e.lab.LogPath("agent-" + h.Name))
	if err != nil {
		e.t.Fatal(err)
	}
	return strings.Count(string(b), s)
}

// sendForgedDead sends n forged "dead host-b" packets from host-c's
// namespace to host-a's gossip port, one every 300 ms, while watching
// host-a's rules; it returns how often orders-1 (on host-b) was missing.
func (e *env) sendForgedDead(n int) (missing int) {
	e.t.Helper()
	ha, hc := e.host("host-a"), e.host("host-c")
	conn, err := lab.DialIn(e.ctx, hc.NS, "udp", fmt.Sprintf("%s:%d", ha.Addr, lab.AgentPort))
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close()
	for i := range n {
		if _, err := conn.Write(forgedDead("host-b", "host-c", i)); err != nil {
			e.t.Fatal(err)
		}
		for range 3 {
			time.Sleep(100 * time.Millisecond)
			if !containsAddr(e.rules(ha, "nat"), "198.19.2.2") {
				missing++
			}
		}
	}
	return missing
}

// TestForgedDeadMessage sends 30 forged "host-b is dead" packets to host-a
// over 9 s. With encrypted gossip (the default) they change nothing: host-a
// never believes host-b dead, applies nothing, keeps host-b's target. The
// control run without encryption shows host-a believes the same packets,
// so the forgery is real.
func TestForgedDeadMessage(t *testing.T) {
	const gone = `msg="member gone" component=cluster member=host-b`
	for _, insecure := range []bool{false, true} {
		t.Run(fmt.Sprintf("insecure=%v", insecure), func(t *testing.T) {
			e := newBasicEnv(t)
			e.weir.InsecureGossip = insecure
			c := e.push("basic", renderSpecs(basicHosts(), []balancerSpec{ordersBalancer(nil)}))
			e.startAgents()
			e.waitConverged(c)
			ha := e.host("host-a")
			applied, died := e.logCount(ha, `msg="applied rules"`), e.logCount(ha, gone)
			missing := e.sendForgedDead(30)
			time.Sleep(2 * time.Second)
			applied, died = e.logCount(ha, `msg="applied rules"`)-applied, e.logCount(ha, gone)-died
			t.Logf("30 forged dead packets: host-b dead %d times on host-a, %d applies, orders-1 missing in %d of 90 looks", died, applied, missing)
			if !insecure && (died != 0 || applied != 0 || missing != 0) {
				t.Errorf("with encrypted gossip the forgery made host-b dead %d times, caused %d applies and removed its target %d times; want nothing", died, applied, missing)
			}
			if insecure && died == 0 {
				t.Errorf("control: without encryption host-a never believed the forgery; the forged packet is not what memberlist reads")
			}
			if !insecure {
				if m, _ := e.status(ha).Member("host-b"); m.State != "alive" || !e.status(ha).GossipEncrypted {
					t.Errorf("host-a's status: host-b %s, gossipEncrypted %v; want alive and true", m.State, e.status(ha).GossipEncrypted)
				}
			}
		})
	}
}

// TestStrangerGetsNoTraffic runs an agent that calls itself host-c from
// host-d's address (198.18.0.4), with the right key, while the specs put
// host-c at 198.18.0.3 (where nothing runs). It is listed as a stranger,
// never counts, and host-c's guest gets no DNAT traffic.
func TestStrangerGetsNoTraffic(t *testing.T) {
	e := newEnv(t, 1, 1, 1, 0)
	e.serve(e.lab.Guest(2, 1), "orders-1")
	e.serve(e.lab.Guest(3, 1), "orders-2")
	c := e.push("basic", renderSpecs(basicHosts(), []balancerSpec{ordersBalancer(nil)}))
	ha, hb, hd := e.host("host-a"), e.host("host-b"), e.host("host-d")
	e.startAgent(ha)
	e.startAgent(hb)
	e.startAgent(hd, append(e.gitArgs(), "--node", "host-c")...)
	if _, err := e.weir.WaitConverged(e.ctx, waitFor, []*lab.Host{ha, hb}, c, []string{"host-a", "host-b"}); err != nil {
		t.Fatal(err)
	}
	m, ok := e.status(ha).Member("host-c")
	if want := "gossips from 198.18.0.4, but Host host-c has address 198.18.0.3"; !ok || m.Stranger != want {
		t.Errorf("host-a lists host-c as %+v; want a stranger: %q", m, want)
	}
	e.waitRules(ha, "nat", func(got []string) error {
		if containsAddr(got, "198.19.3.2") {
			return fmt.Errorf("host-a sends to orders-2 behind the stranger")
		}
		return nil
	})
	r := e.dial(e.lab.Guest(1, 1), "tcp", frontend, 200)
	if got := r.Counts()["orders-1"]; got != 200 || r.Failures() != 0 {
		t.Errorf("with a stranger as host-c: %v; want orders-1=200 and nothing for orders-2", r)
	}
	table, _, _ := e.weir.Run(e.ctx, ha, "status", "--api", lab.APIAddr)
	if !strings.Contains(table, "stranger: gossips from 198.18.0.4") || !strings.Contains(table, "gossip: encrypted") {
		t.Errorf("weir status table does not show the stranger and the encryption:\n%s", table)
	}
}

// TestWorldReadableKeyRefused: an agent refuses a key file others may read.
func TestWorldReadableKeyRefused(t *testing.T) {
	e := newEnv(t, 0)
	key := filepath.Join(e.lab.Dir, "open.key")
	if err := lab.WriteKey(key); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	p := e.startAgent(e.lab.Hosts[0], append(e.gitArgs(), "--gossip-key-file", key)...)
	select {
	case <-p.Done():
	case <-time.After(waitFor):
		t.Fatal("the agent runs with a world-readable key file")
	}
	b, _ := os.ReadFile(p.Log)
	if p.ExitErr() == nil || !strings.Contains(string(b), "has mode 0644") || !strings.Contains(string(b), "chmod 600 "+key) {
		t.Errorf("agent exit %v, log:\n%s\nwant a refusal naming the file, its mode and chmod 600", p.ExitErr(), b)
	}
}

// TestGossipKeyRotation rotates the key of three running agents with `weir
// keys` on host-a: install a new key, use it, remove the old one. They stay
// one cluster; an agent restarted with the old key file comes back with the
// keyring it persisted; a node with only the old key is kept out.
func TestGossipKeyRotation(t *testing.T) {
	e := newBasicEnv(t)
	c := e.push("basic", renderSpecs(basicHosts(), []balancerSpec{ordersBalancer(nil)}))
	e.startAgents()
	e.waitConverged(c)
	ha, hb := e.host("host-a"), e.host("host-b")
	oldKey, newKey := e.weir.KeyFile(), filepath.Join(e.lab.Dir, "new.key")
	if err := lab.WriteKey(newKey); err != nil {
		t.Fatal(err)
	}
	keys := func(args ...string) string {
		t.Helper()
		out, _, err := e.weir.Run(e.ctx, ha, append([]string{"keys", "--api", lab.APIAddr}, args...)...)
		if err != nil {
			t.Fatalf("weir keys %v: %v\n%s", args, err, out)
		}
		return out
	}
	if out := keys("install", "@"+newKey); !strings.Contains(out, "ok on 3/3 members") {
		t.Errorf("weir keys install: %s", out)
	}
	if out := keys("list"); !strings.Contains(out, "3/3      3/3\n") || !strings.Contains(out, "3/3      0/3\n") || !strings.Contains(out, "3/3 members answered") {
		t.Errorf("weir keys list after install: want both keys held by 3/3, the old one primary on 3/3:\n%s", out)
	}
	keys("use", "@"+newKey)
	keys("remove", "@"+oldKey)
	out := keys("list")
	if strings.Count(out, "sha256:") != 1 || !strings.Contains(out, "3/3      3/3\n") || !strings.Contains(out, "3/3 members answered") {
		t.Errorf("weir keys list after the rotation: want one key, held and primary on 3/3:\n%s", out)
	}
	e.waitConverged(c)

	if err := e.agent("host-c").Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := e.agent("host-c").Restart(); err != nil { // still --gossip-key-file with the old key
		t.Fatal(err)
	}
	e.waitConverged(c)
	if b, _ := os.ReadFile(e.agent("host-c").Log); !strings.Contains(string(b), "takes precedence over --gossip-key-file") {
		t.Errorf("restarted host-c does not say it used its persisted keyring")
	}
	_, stderr, err := e.weir.Run(e.ctx, hb, "status", "--join", fmt.Sprintf("%s:%d", ha.Addr, lab.AgentPort),
		"--gossip-key-file", oldKey, "--observer-name", "old-key", "--timeout", "3s")
	if err == nil || !strings.Contains(stderr, "could not join") {
		t.Errorf("a node with only the old key: %v, %q; want kept out", err, stderr)
	}
	if st := e.status(e.host("host-c")); len(st.AliveNames()) != 3 || !st.GossipEncrypted {
		t.Errorf("host-c's status after the rotation: %s; want all three alive, encrypted", st.Brief())
	}
}
