package testsupport

import (
	"fmt"
	"strings"
	"testing"

	"weir/spec"
)

func TestBigTree(t *testing.T) {
	for _, layout := range []Layout{TargetsLocal, TargetsRemote} {
		t.Run(layout.String(), func(t *testing.T) {
			files := BigTree(10000, layout)
			s, err := spec.Load(MapFS(files))
			if err != nil {
				t.Fatalf("BigTree does not load: %v", err)
			}
			if got, want := len(s.Hosts), BigHosts; got != want {
				t.Errorf("hosts = %d; want %d", got, want)
			}
			if got, want := len(s.Balancers), 10000; got != want {
				t.Errorf("balancers = %d; want %d", got, want)
			}
			others := BigHosts - 1
			if layout == TargetsRemote {
				others--
			}
			if got, want := len(s.Guests()), 1+BigTargetGuests+others*BigGuestsPerHost; got != want {
				t.Errorf("guests = %d; want %d", got, want)
			}
			checkBigTargets(t, s, map[Layout]string{TargetsLocal: "host-a", TargetsRemote: "host-b"}[layout])
			for name, content := range files {
				if len(content) > spec.MaxFileSize {
					t.Errorf("%s is %d bytes: over the loader's 1 MiB limit", name, len(content))
				}
			}
		})
	}
}

// checkBigTargets checks that every balancer's target service runs on
// exactly BigTargets guests, all on host, so host-a's agent (with host's)
// alone has every target alive.
func checkBigTargets(t *testing.T, s *spec.Spec, host string) {
	t.Helper()
	on := map[string][]string{}
	for _, g := range s.Host(host).Guests {
		for _, svc := range g.Services {
			on[svc] = append(on[svc], g.Name)
		}
	}
	for _, g := range s.Guests() {
		if g.Host != host && strings.HasPrefix(strings.Join(g.Services, ","), "svc-") {
			t.Fatalf("guest %s on %s runs a target service", g.Name, g.Host)
		}
	}
	for _, b := range s.Balancers {
		if got := len(on[b.Target]); got != BigTargets {
			t.Fatalf("balancer %s: %d targets on %s; want %d", b.Name, got, host, BigTargets)
		}
		if b.Source != "client" {
			t.Fatalf("balancer %s: source %s; want client", b.Name, b.Source)
		}
	}
}

func TestBigTreeGen(t *testing.T) {
	a, b := BigTreeGen(10000, TargetsLocal, 0), BigTreeGen(10000, TargetsLocal, 1)
	var changed []string
	for name := range a {
		if a[name] != b[name] {
			changed = append(changed, name)
		}
	}
	if len(changed) != 1 || changed[0] != "balancers/050.yaml" {
		t.Fatalf("generations 0 and 1 differ in %v; want balancers/050.yaml only", changed)
	}
	s0, err0 := spec.Load(MapFS(a))
	s1, err1 := spec.Load(MapFS(b))
	if err0 != nil || err1 != nil {
		t.Fatalf("loading: %v, %v", err0, err1)
	}
	for i := range s0.Balancers {
		b0, b1 := &s0.Balancers[i], &s1.Balancers[i]
		if same := fmt.Sprint(b0.Weights) == fmt.Sprint(b1.Weights); same != (b0.Name != "lb-05001") {
			t.Errorf("%s: weights %v then %v", b0.Name, b0.Weights, b1.Weights)
		}
	}
}
