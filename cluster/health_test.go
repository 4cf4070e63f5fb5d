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
	// 65 transitions (counters 1-65), then the report's 2 pages (66, 67).
	if !slices.Equal(c.own.ids, list) || c.own.version != 66 || c.lastSeq != 67 {
		t.Fatalf("own report %d IDs version %d (last counter %d); want %d sorted IDs, version 66, 2 pages", len(c.own.ids), c.own.version, c.lastSeq, len(list))
	}
	if err := c.SetHealth(list); err != nil || c.lastSeq != 67 {
		t.Errorf("the same report again used counters up to %d; want none", c.lastSeq)
	}
	if got := c.UnhealthyChecks()["host-a"]; !slices.Equal(got, list) {
		t.Errorf("own entry in the view has %d IDs; want %d", len(got), len(list))
	}
	// One check more: one transition, and the report's counters after it.
	if err := c.SetHealth(append(slices.Clone(list), ids(1000, 1)...)); err != nil || c.lastSeq != 70 || c.own.version != 69 {
		t.Errorf("one more failing check: last counter %d, version %d; want 70 and 69", c.lastSeq, c.own.version)
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

func TestDiffIDs(t *testing.T) {
	a := ids(1, 5)
	got := diffIDs([]spec.CheckID{a[0], a[2], a[4]}, []spec.CheckID{a[1], a[2], a[3]})
	want := []checkChange{{a[0], false}, {a[1], true}, {a[3], true}, {a[4], false}}
	if !slices.Equal(got, want) {
		t.Errorf("diffIDs = %v; want %v", got, want)
	}
}

// transition is host's message that check id fails (or passes) at seq.
func transition(host string, inc, seq uint64, id spec.CheckID, failing bool) message {
	return message{Kind: msgCheck, Origin: host, Inc: inc, Seq: seq, Payload: checkPayload(id, failing)}
}

func TestCheckTransitions(t *testing.T) {
	c := offlineTrio(t)
	x, y := ids(1, 1)[0], ids(2, 1)[0]
	if got := take(c, transition("host-b", 0xb, 3, x, true), transition("host-b", 0xb, 4, y, true)); !slices.Equal(got, []bool{true, true}) {
		t.Fatalf("transitions taken = %v; want both", got)
	}
	if got := c.UnhealthyChecks()["host-b"]; !slices.Equal(got, []spec.CheckID{x, y}) {
		t.Fatalf("view = %v; want x and y", got)
	}
	// y passes at 6; its "failing" of 5, arriving late by another path, is old.
	take(c, transition("host-b", 0xb, 6, y, false))
	if got := take(c, transition("host-b", 0xb, 5, y, true), transition("host-b", 0xb, 6, y, false)); slices.Contains(got, true) {
		t.Errorf("late or repeated transitions taken = %v; want none", got)
	}
	// The report of version 8 (x failing) makes anything older old, and a
	// transition after it stands.
	take(c, transition("host-b", 0xb, 10, y, true))
	take(c, report("host-b", 0xb, 8, []spec.CheckID{x})...)
	if got := c.UnhealthyChecks()["host-b"]; !slices.Equal(got, []spec.CheckID{x, y}) {
		t.Errorf("view after a report older than a transition = %v; want x and y", got)
	}
	if got := take(c, transition("host-b", 0xb, 7, x, false)); got[0] {
		t.Error("a transition older than the report in effect was taken")
	}
	// What host-a passes on in push/pull brings host-c to the same view.
	c.mu.Lock()
	msgs := originHealthLocked("host-b", c.members["host-b"])
	c.mu.Unlock()
	d := offlineTrio(t)
	take(d, msgs...)
	if got, want := d.UnhealthyChecks()["host-b"], c.UnhealthyChecks()["host-b"]; !slices.Equal(got, want) {
		t.Errorf("view rebuilt from what host-a passes on = %v; want %v", got, want)
	}
	if got := take(d, transition("host-b", 0xb, 9, y, false)); got[0] {
		t.Error("after the rebuild, a transition older than the newest word on y was taken")
	}
}

func TestCheckRecsBounded(t *testing.T) {
	c := offlineTrio(t)
	seq := uint64(1)
	for _, id := range ids(1, maxCheckRecs+10) {
		take(c, transition("host-b", 0xb, seq, id, false))
		seq++
	}
	if n := len(c.members["host-b"].origin.health.checks); n != maxCheckRecs {
		t.Errorf("%d passing checks kept; want at most %d", n, maxCheckRecs)
	}
	for _, id := range ids(100000, maxCheckRecs) {
		take(c, transition("host-b", 0xb, seq, id, true))
		seq++
	}
	h := c.members["host-b"].origin.health
	if len(h.checks) != maxCheckRecs || h.failing != maxCheckRecs {
		t.Errorf("kept %d checks, %d failing; want the bound, all failing", len(h.checks), h.failing)
	}
	if got := take(c, transition("host-b", 0xb, seq, ids(900000, 1)[0], true)); got[0] {
		t.Error("a transition over the bound with every kept check failing was taken")
	}
}

// TestRelaysKeepEveryTransition: a node passes on every new transition and
// page it takes; those of one origin do not replace one another.
func TestRelaysKeepEveryTransition(t *testing.T) {
	c := offlineTrio(t)
	two := ids(1, 2)
	for i, m := range append([]message{transition("host-b", 0xb, 1, two[0], true), transition("host-b", 0xb, 2, two[1], true)},
		report("host-b", 0xb, 3, ids(1, healthPageIDs+1))...) {
		c.receive(m.encode())
		if got := c.queue.NumQueued(); got != i+1 {
			t.Fatalf("after %d messages of host-b, %d queued to pass on; want %d", i+1, got, i+1)
		}
	}
}
