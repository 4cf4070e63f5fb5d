package spec

import (
	"bufio"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
)

// examples lists the example trees under ../examples.
func examples(t *testing.T) []string {
	t.Helper()
	// Every directory under examples/ is one spec tree (examples.go beside them embeds them).
	entries, err := os.ReadDir(filepath.Join("..", "examples"))
	var dirs []string
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, filepath.Join("..", "examples", e.Name()))
		}
	}
	if err != nil || len(dirs) < 3 {
		t.Fatalf("examples: %v, %v", dirs, err)
	}
	return dirs
}

func TestExamplesLoad(t *testing.T) {
	for _, dir := range examples(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			s, err := LoadDir(dir)
			if err != nil {
				t.Fatalf("LoadDir(%s):\n%v", dir, err)
			}
			if len(s.Hosts) == 0 || len(s.Balancers) == 0 {
				t.Errorf("LoadDir(%s): %d hosts, %d balancers; want some of each", dir, len(s.Hosts), len(s.Balancers))
			}
		})
	}
}

// TestExamplesPointAtTheSchema checks that every example file starts with a
// yaml-language-server line whose relative path reaches the schema.
func TestExamplesPointAtTheSchema(t *testing.T) {
	const prefix = "# yaml-language-server: $schema="
	err := filepath.WalkDir(filepath.Join("..", "examples"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Scan()
		first := sc.Text()
		ref, ok := strings.CutPrefix(first, prefix)
		if !ok {
			t.Errorf("%s: first line %q; want %s...", p, first, prefix)
			return nil
		}
		if got, want := filepath.Clean(filepath.Join(filepath.Dir(p), ref)), filepath.Join("..", "schemas", "weir-v1.schema.json"); got != want {
			t.Errorf("%s: schema line points at %s; want %s", p, got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// stripPos zeroes every Pos, so a comparison is about content, not layout.
func stripPos(s *Spec) *Spec {
	for i := range s.Hosts {
		s.Hosts[i].Pos = Pos{}
		for j := range s.Hosts[i].Guests {
			s.Hosts[i].Guests[j].Pos = Pos{}
		}
	}
	for i := range s.Balancers {
		s.Balancers[i].Pos = Pos{}
	}
	return s
}

// TestExampleBasic pins examples/basic: the demo and the e2e tests rely on
// these exact names and addresses.
func TestExampleBasic(t *testing.T) {
	s, err := LoadDir(filepath.Join("..", "examples", "basic"))
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr
	want := &Spec{
		Hosts: []Host{
			{Name: "host-a", Address: ip("198.18.0.1"), Guests: []Guest{{Name: "web-1", Addresses: []netip.Addr{ip("198.19.1.2")}, Services: []string{"frontend"}, Host: "host-a"}}},
			{Name: "host-b", Address: ip("198.18.0.2"), Guests: []Guest{{Name: "orders-1", Addresses: []netip.Addr{ip("198.19.2.2")}, Services: []string{"orders"}, Host: "host-b"}}},
			{Name: "host-c", Address: ip("198.18.0.3"), Guests: []Guest{{Name: "orders-2", Addresses: []netip.Addr{ip("198.19.3.2")}, Services: []string{"orders"}, Host: "host-c"}}},
		},
		Balancers: []Balancer{{
			Name: "frontend-orders", Source: "frontend", Target: "orders",
			Frontend:   Frontend{Address: ip("198.20.0.10"), Port: 80, Protocol: TCP},
			TargetPort: 8080, Strategy: Random,
		}},
	}
	if got := stripPos(s); !reflect.DeepEqual(got, want) {
		t.Errorf("LoadDir(examples/basic) =\n%+v\nwant\n%+v", got, want)
	}
	if h := s.Host("host-a"); h == nil || h.Name != "host-a" {
		t.Errorf("Host(host-a) = %v", h)
	}
	if got := s.Balancer("frontend-orders"); got == nil || got.TargetPort != 8080 {
		t.Errorf("Balancer(frontend-orders) = %v", got)
	}
	if g := s.Guest("orders-2"); g == nil || g.Host != "host-c" || !g.Runs("orders") || g.Runs("frontend") {
		t.Errorf("Guest(orders-2) = %+v; want on host-c running orders only", g)
	}
	if s.Guest("nope") != nil || s.Balancer("nope") != nil || s.Host("nope") != nil {
		t.Error("lookups of an unknown name returned something")
	}
}

func TestExampleWeighted(t *testing.T) {
	s, err := LoadDir(filepath.Join("..", "examples", "weighted"))
	if err != nil {
		t.Fatal(err)
	}
	b := s.Balancer("frontend-orders")
	if b == nil {
		t.Fatal("no balancer frontend-orders")
	}
	if got1, got2 := b.Weight("orders-1"), b.Weight("orders-2"); got1 != 1 || got2 != 3 {
		t.Errorf("weights = %d:%d; want 1:3", got1, got2)
	}
}

func TestExampleMulti(t *testing.T) {
	s, err := LoadDir(filepath.Join("..", "examples", "multi"))
	if err != nil {
		t.Fatal(err)
	}
	protocols := map[Protocol]bool{}
	strategies := map[Strategy]bool{}
	for _, b := range s.Balancers {
		protocols[b.Frontend.Protocol] = true
		strategies[b.Strategy] = true
	}
	if !protocols[UDP] || !protocols[TCP] || !strategies[RoundRobin] || !strategies[Random] || len(s.Balancers) < 3 {
		t.Errorf("examples/multi has protocols %v, strategies %v, %d balancers; want udp, tcp, roundrobin, random and several balancers",
			protocols, strategies, len(s.Balancers))
	}
}

func TestDefaults(t *testing.T) {
	s, err := Load(baseTree(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	b := s.Balancers[0]
	if b.Frontend.Protocol != TCP || b.TargetPort != 80 || b.Strategy != Random || b.Weights != nil {
		t.Errorf("defaults: protocol %q, targetPort %d, strategy %q, weights %v; want tcp, 80 (the frontend port), random, nil",
			b.Frontend.Protocol, b.TargetPort, b.Strategy, b.Weights)
	}
	if got := b.Weight("api-1"); got != 1 {
		t.Errorf("Weight(api-1) = %d; want the default 1", got)
	}
}

// TestSpecIsSorted loads documents written out of order and checks that the
// Spec comes out sorted, with every guest knowing its host.
func TestSpecIsSorted(t *testing.T) {
	fsys := fstest.MapFS{
		"z.yaml": {Data: []byte(y(`
apiVersion: weir/v1
kind: Host
metadata: {name: host-b}
spec:
  address: 198.18.0.2
  guests:
    - {name: db-2, address: 198.19.2.3, services: [sql, backup, api]}
    - {name: api-9, address: 198.19.2.2, services: [api]}
---
apiVersion: weir/v1
kind: Balancer
metadata: {name: zz}
spec: {source: api, target: sql, frontend: {address: 198.20.0.2, port: 5432}}
`))},
		"a/a.yaml": {Data: []byte(y(`
apiVersion: weir/v1
kind: Balancer
metadata: {name: aa}
spec: {source: backup, target: api, frontend: {address: 198.20.0.1, port: 80}}
---
apiVersion: weir/v1
kind: Host
metadata: {name: host-a}
spec: {address: 198.18.0.1}
`))},
	}
	s, err := Load(fsys)
	if err != nil {
		t.Fatal(err)
	}
	var hosts, guests, balancers []string
	for _, h := range s.Hosts {
		hosts = append(hosts, h.Name)
	}
	for _, g := range s.Guests() {
		guests = append(guests, g.Host+"/"+g.Name+":"+strings.Join(g.Services, ","))
	}
	for _, b := range s.Balancers {
		balancers = append(balancers, b.Name)
	}
	check := func(what string, got, want []string) {
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %q; want %q", what, got, want)
		}
	}
	check("hosts", hosts, []string{"host-a", "host-b"})
	check("guests", guests, []string{"host-b/api-9:api", "host-b/db-2:api,backup,sql"})
	check("balancers", balancers, []string{"aa", "zz"})
	if got, want := s.Balancers[0].Pos, (Pos{"a/a.yaml", 3}); got != want {
		t.Errorf("balancer aa at %v; want %v", got, want)
	}
	if got, want := s.Guest("db-2").Pos, (Pos{"z.yaml", 7}); got != want {
		t.Errorf("guest db-2 at %v; want %v", got, want)
	}
}

func TestLoadIsDeterministic(t *testing.T) {
	good := baseTree(t, nil)
	bad := baseTree(t, map[string]string{"x.yaml": balancer("web-api", "198.18.0.1", "weights: {b: 0, a: 0, c: 0}")})
	a, errA := Load(good)
	b, errB := Load(good)
	if errA != nil || errB != nil || !reflect.DeepEqual(a, b) {
		t.Errorf("two loads of one tree differ: %v %v", errA, errB)
	}
	first := errLines(t, bad)
	for range 20 {
		if got := errLines(t, bad); !reflect.DeepEqual(got, first) {
			t.Fatalf("errors changed between loads:\n%q\n%q", got, first)
		}
	}
}
