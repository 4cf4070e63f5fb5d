package main

import (
	"strings"
	"testing"
	"testing/fstest"

	"weir/spec"
)

func mapFS(files map[string]string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for name, content := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(content)}
	}
	return fsys
}

func TestClusterSpecIsValidAndChanges(t *testing.T) {
	s0, err := spec.Load(mapFS(clusterSpec(10, 0)))
	if err != nil {
		t.Fatalf("clusterSpec(10, 0) does not load: %v", err)
	}
	if len(s0.Hosts) != 10 || len(s0.Balancers) != 10 {
		t.Errorf("clusterSpec: %d hosts, %d balancers; want 10, 10", len(s0.Hosts), len(s0.Balancers))
	}
	for i, h := range s0.Hosts {
		if want := hostName(i + 1); h.Name != want {
			t.Errorf("host %d = %s; want the lab's name %s", i, h.Name, want)
		}
	}
	s1, err := spec.Load(mapFS(clusterSpec(10, 1)))
	if err != nil {
		t.Fatalf("clusterSpec(10, 1) does not load: %v", err)
	}
	if a, b := s0.Balancer("orders-0").Weights["orders-1"], s1.Balancer("orders-0").Weights["orders-1"]; a == b {
		t.Errorf("generations 0 and 1 have the same weight %d: no change to converge on", a)
	}
}

func TestBigSpec(t *testing.T) {
	files := bigSpec(10000)
	s, err := spec.Load(mapFS(files))
	if err != nil {
		t.Fatalf("bigSpec does not load: %v", err)
	}
	if got, want := len(s.Hosts), bigHosts; got != want {
		t.Errorf("hosts = %d; want %d", got, want)
	}
	if got, want := len(s.Balancers), 10000; got != want {
		t.Errorf("balancers = %d; want %d", got, want)
	}
	if got, want := len(s.Guests()), 1+bigTargetGuests+(bigHosts-1)*bigGuestsPerHost; got != want {
		t.Errorf("guests = %d; want %d", got, want)
	}
	// Every balancer's target service runs on exactly 5 guests, all on
	// host-a, so one agent alone has every target alive.
	onA := map[string][]string{}
	for _, g := range s.Host("host-a").Guests {
		for _, svc := range g.Services {
			onA[svc] = append(onA[svc], g.Name)
		}
	}
	for _, g := range s.Guests() {
		if g.Host != "host-a" && strings.HasPrefix(strings.Join(g.Services, ","), "svc-") {
			t.Fatalf("guest %s on %s runs a target service", g.Name, g.Host)
		}
	}
	for _, b := range s.Balancers {
		if got := len(onA[b.Target]); got != bigTargets {
			t.Fatalf("balancer %s: %d targets on host-a; want %d", b.Name, got, bigTargets)
		}
		if b.Source != "client" {
			t.Fatalf("balancer %s: source %s; want client", b.Name, b.Source)
		}
	}
	for name, content := range files {
		if len(content) > 1<<20 {
			t.Errorf("%s is %d bytes: over the loader's 1 MiB limit", name, len(content))
		}
	}
}
