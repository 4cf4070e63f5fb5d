package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"weir/spec"
)

// ids returns n distinct check IDs in ascending order, starting at from.
func ids(from, n int) []spec.CheckID {
	out := make([]spec.CheckID, n)
	for i := range out {
		binary.BigEndian.PutUint64(out[i][:], uint64(from+i))
	}
	return out
}

func TestHealthPagesRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, healthPageIDs, healthPageIDs + 1, MaxUnhealthy} {
		want := ids(1, n)
		pages := healthPages(want)
		if wantParts := max(1, (n+healthPageIDs-1)/healthPageIDs); len(pages) != wantParts {
			t.Errorf("healthPages(%d IDs) = %d pages; want %d", n, len(pages), wantParts)
		}
		var got []spec.CheckID
		for i, p := range pages {
			payload := p.payload()
			if len(payload) > maxHealthPayload {
				t.Errorf("page %d of %d IDs: payload of %d bytes > %d", i, n, len(payload), maxHealthPayload)
			}
			back, err := decodeHealthPage(payload)
			if err != nil || back.Part != i || back.Parts != len(pages) {
				t.Fatalf("decodeHealthPage(page %d of %d IDs) = %+v, %v", i, n, back, err)
			}
			got = append(got, back.IDs...)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%d IDs: pages joined to %d IDs; want them back", n, len(got))
		}
	}
}

func TestHealthPageRefused(t *testing.T) {
	page := func(part, parts uint64, ids ...spec.CheckID) string {
		b := binary.AppendUvarint(binary.AppendUvarint(nil, part), parts)
		for _, id := range ids {
			b = append(b, id[:]...)
		}
		return string(b)
	}
	two := ids(1, 2)
	tests := map[string]string{
		"empty":             "",
		"no parts":          page(0, 0),
		"part out of range": page(2, 2),
		"too many parts":    page(0, maxHealthPages+1),
		"half an ID":        page(0, 1, two[0])[:6],
		"out of order":      page(0, 1, two[1], two[0]),
		"repeated":          page(0, 1, two[0], two[0]),
		"too many IDs":      page(0, 1, ids(1, healthPageIDs+1)...),
	}
	for name, payload := range tests {
		if p, err := decodeHealthPage(payload); !errors.Is(err, errBadHealthPage) {
			t.Errorf("decodeHealthPage(%s) = %+v, %v; want errBadHealthPage", name, p, err)
		}
	}
	m := message{Kind: msgHealth, Origin: "host-b", Inc: 1, Seq: 1, Payload: page(1, 2)}
	if _, err := decodeMessage(m.encode()); err == nil {
		t.Error("decodeMessage accepted page 1 with counter 1 (its report would have version 0)")
	}
}

// offlineTrio is host-a without memberlist, knowing host-b and host-c as
// hosts and host-x as a stranger.
func offlineTrio(t *testing.T) *Cluster {
	t.Helper()
	c := offline(t, "host-a")
	c.SetExpected("rev1", threeHosts())
	announce(c, "host-b", "198.18.0.2", nodeMeta{Incarnation: 0xb})
	announce(c, "host-c", "198.18.0.3", nodeMeta{Incarnation: 0xc})
	announce(c, "host-x", "198.18.0.4", nodeMeta{Incarnation: 0xd})
	return c
}

// take feeds messages to c as gossip would and returns which were new.
func take(c *Cluster, msgs ...message) []bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []bool
	for _, m := range msgs {
		out = append(out, c.takeLocked(m, c.now()))
	}
	return out
}

// report renders host's report (version, IDs) as its page messages.
func report(host string, inc, version uint64, list []spec.CheckID) []message {
	return healthMessages(host, inc, version, list)
}

func viewString(v map[string][]spec.CheckID) string {
	var parts []string
	for _, h := range slices.Sorted(maps.Keys(v)) {
		parts = append(parts, fmt.Sprintf("%s:%d", h, len(v[h])))
	}
	return strings.Join(parts, " ")
}

func TestHealthReportAcceptance(t *testing.T) {
	c := offlineTrio(t)
	three := report("host-b", 0xb, 5, ids(1, 2*healthPageIDs+1)) // pages 5, 6, 7
	if got := take(c, three[2], three[0]); !slices.Equal(got, []bool{true, true}) {
		t.Fatalf("first pages taken = %v; want both new", got)
	}
	if v := c.UnhealthyChecks(); len(v) != 0 {
		t.Fatalf("view with a report still missing a page = %s; want empty", viewString(v))
	}
	if got := take(c, three[0]); got[0] {
		t.Error("a page already gathered was taken again as new")
	}
	take(c, three[1])
	if got := viewString(c.UnhealthyChecks()); got != fmt.Sprintf("host-b:%d", 2*healthPageIDs+1) {
		t.Fatalf("view after all pages = %s; want host-b's whole report", got)
	}
	// A page of the same report again, an older report and a stranger's
	// report change nothing.
	old := report("host-b", 0xb, 2, ids(100, 1))
	forged := report("host-x", 0xd, 1, ids(1, 1))
	otherInc := report("host-c", 0xc+1, 1, ids(1, 1))
	if got := take(c, three[1], old[0], forged[0], otherInc[0]); slices.Contains(got, true) {
		t.Errorf("old, stranger's or other incarnation's pages taken = %v; want none", got)
	}
	// A newer report replaces it; one whose first page overtook the pages
	// of an older pending one wins over it.
	pend := report("host-b", 0xb, 8, ids(1, healthPageIDs+1))
	newer := report("host-b", 0xb, 10, ids(7, 3))
	take(c, pend[0], newer[0], pend[1])
	if got := c.UnhealthyChecks()["host-b"]; !slices.Equal(got, ids(7, 3)) {
		t.Errorf("host-b's report = %v; want the newer report's 3 IDs", got)
	}
	// An empty report clears it.
	take(c, report("host-b", 0xb, 20, nil)...)
	if v := c.UnhealthyChecks(); len(v) != 0 {
		t.Errorf("after an empty report the view is %s; want empty", viewString(v))
	}
}

func TestHealthReportPruned(t *testing.T) {
	c := offlineTrio(t)
	take(c, report("host-b", 0xb, 1, ids(1, 2))...)
	take(c, report("host-c", 0xc, 1, ids(5, 1))...)
	if got := viewString(c.UnhealthyChecks()); got != "host-b:2 host-c:1" {
		t.Fatalf("view = %s; want host-b:2 host-c:1", got)
	}
	if m := c.Members()[1]; m.Name != "host-b" || m.Unhealthy != 2 {
		t.Errorf("Members lists %s with %d unhealthy; want host-b with 2", m.Name, m.Unhealthy)
	}
	// A restart (new incarnation): its checks count healthy until it reports.
	announce(c, "host-b", "198.18.0.2", nodeMeta{Incarnation: 0xb + 1})
	// A departure forgets what it said; a dead host is not in the view.
	take(c, message{Kind: msgLeave, Origin: "host-c", Inc: 0xc, Seq: 9})
	depart(c, "host-c")
	if v := c.UnhealthyChecks(); len(v) != 0 {
		t.Errorf("after host-b's restart and host-c's leave the view is %s; want empty", viewString(v))
	}
	if r := c.members["host-c"]; r.origin.health.version != 0 {
		t.Errorf("host-c left with its report kept: %+v", r.origin.health)
	}
}

func TestOwnHealthReport(t *testing.T) {
	c := offlineTrio(t)
	if err := c.SetHealth(nil); err != nil || c.own.version != 0 || c.lastSeq != 0 {
		t.Fatalf("SetHealth(nil) before any report: err %v, version %d; want nothing sent", err, c.own.version)
	}
	list := ids(1, healthPageIDs+1)
	shuffled := append(slices.Clone(list[40:]), list[:40]...)
	if err := c.SetHealth(append(shuffled, list[3])); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.own.ids, list) || c.own.version != 1 || c.lastSeq != 2 {
		t.Fatalf("own report %d IDs version %d (last counter %d); want %d sorted IDs in 2 pages from 1", len(c.own.ids), c.own.version, c.lastSeq, len(list))
	}
	if err := c.SetHealth(list); err != nil || c.lastSeq != 2 {
		t.Errorf("the same report again used counters up to %d; want none", c.lastSeq)
	}
	if got := c.UnhealthyChecks()["host-a"]; !slices.Equal(got, list) {
		t.Errorf("own entry in the view has %d IDs; want %d", len(got), len(list))
	}
	if err := c.SetHealth(ids(1, MaxUnhealthy+5)); err != nil || len(c.own.ids) != MaxUnhealthy {
		t.Errorf("SetHealth of %d IDs kept %d; want %d", MaxUnhealthy+5, len(c.own.ids), MaxUnhealthy)
	}
	// Another node takes the report from the broadcast queue.
	b := offline(t, "host-b")
	b.SetExpected("rev1", threeHosts())
	announce(b, "host-a", "198.18.0.1", nodeMeta{Incarnation: c.incarnation})
	for _, raw := range c.queue.GetBroadcasts(0, 1<<20) {
		b.receive(raw)
	}
	if got := len(b.UnhealthyChecks()["host-a"]); got != MaxUnhealthy {
		t.Errorf("host-b took %d of host-a's failing checks from the queue; want %d", got, MaxUnhealthy)
	}
}

func TestPushStateCarriesHealthReports(t *testing.T) {
	a := offlineTrio(t)
	take(a, report("host-b", 0xb, 3, ids(1, 70))...)
	take(a, report("host-x", 0xd, 1, ids(1, 1))...) // a stranger: refused, never passed on
	if err := a.SetHealth(ids(500, 2)); err != nil {
		t.Fatal(err)
	}
	// host-c learns both hosts' reports from host-a's push/pull state alone.
	c := offline(t, "host-c")
	c.SetExpected("rev1", threeHosts())
	announce(c, "host-a", "198.18.0.1", nodeMeta{Incarnation: a.incarnation})
	announce(c, "host-b", "198.18.0.2", nodeMeta{Incarnation: 0xb})
	c.mergeRemoteState(a.localState())
	if got := viewString(c.UnhealthyChecks()); got != "host-a:2 host-b:70" {
		t.Errorf("host-c's view after a push/pull with host-a = %s; want host-a:2 host-b:70", got)
	}
}

func TestAddReportsKeepsReportsWhole(t *testing.T) {
	big := report("host-b", 1, 1, ids(1, MaxUnhealthy))
	var reports [][]message
	for range 200 {
		reports = append(reports, big)
	}
	var st pushState
	addReports(&st, reports)
	if len(st.Messages)%len(big) != 0 || len(st.Messages) == 0 {
		t.Fatalf("addReports kept %d pages; want whole reports of %d pages", len(st.Messages), len(big))
	}
	if n := len(st.encode()); n > maxPushHealth+len(st.Messages)*8 {
		t.Errorf("health part of the push/pull state is %d bytes; want about %d at most", n, maxPushHealth)
	}
	if _, err := decodePushState(st.encode()); err != nil {
		t.Errorf("a state full of reports does not decode: %v", err)
	}
}
