package reconcile

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"

	"weir/spec"
)

// randomSpecConfig sizes a random spec for tests and benchmarks.
type randomSpecConfig struct {
	balancers     int
	hosts         int // at most 250
	guestsPerHost int // at least 2
	targets       int // target guests per balancer
}

// randomSpec builds a valid-looking spec: every host's first guest runs the
// source services client-0 and client-1 and its second guest client-1, so
// every host sets every balancer (the worst case for one host's ruleset); each
// balancer's target service runs on cfg.targets random other guests. Frontends
// are distinct address:port:protocol triples, half in 198.20.0.0/24 (many
// ports per address) and half spread over 100.64.0.0/10; about one balancer
// in ten is roundrobin, the others have random weights 1..5.
func randomSpec(rng *rand.Rand, cfg randomSpecConfig) *spec.Spec {
	type gref struct{ h, g int }
	hosts := make([]spec.Host, cfg.hosts)
	var pool []gref
	for h := range hosts {
		hosts[h] = spec.Host{Name: fmt.Sprintf("host-%03d", h), Address: netip.AddrFrom4([4]byte{198, 18, byte(h / 250), byte(h%250 + 1)})}
		for g := range cfg.guestsPerHost {
			guest := spec.Guest{
				Name:    fmt.Sprintf("g-%03d-%03d", h, g),
				Address: netip.AddrFrom4([4]byte{198, 19, byte(h), byte(g + 2)}),
				Host:    hosts[h].Name,
			}
			switch g {
			case 0:
				guest.Services = []string{"client-0", "client-1"}
			case 1:
				guest.Services = []string{"client-1"}
			default:
				pool = append(pool, gref{h, g})
			}
			hosts[h].Guests = append(hosts[h].Guests, guest)
		}
	}
	seen := map[spec.Frontend]bool{}
	protos := []spec.Protocol{spec.TCP, spec.TCP, spec.TCP, spec.TCP, spec.TCP, spec.TCP, spec.TCP, spec.UDP, spec.UDP, spec.SCTP}
	balancers := make([]spec.Balancer, 0, cfg.balancers)
	for i := range cfg.balancers {
		var fe spec.Frontend
		for {
			if rng.IntN(2) == 0 {
				fe.Address = netip.AddrFrom4([4]byte{198, 20, 0, byte(rng.IntN(256))})
			} else {
				v := 100<<24 | 64<<16 | rng.Uint32N(1<<22)
				fe.Address = netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
			}
			fe.Port = uint16(1 + rng.IntN(65535))
			fe.Protocol = protos[rng.IntN(len(protos))]
			if !seen[fe] {
				seen[fe] = true
				break
			}
		}
		b := spec.Balancer{
			Name:       fmt.Sprintf("bal-%06d", i),
			Source:     fmt.Sprintf("client-%d", i%2),
			Target:     fmt.Sprintf("svc-%06d", i),
			Frontend:   fe,
			TargetPort: 8000 + uint16(i%1000),
			Strategy:   spec.Random,
		}
		if rng.IntN(10) == 0 {
			b.Strategy = spec.RoundRobin
		} else {
			b.Weights = map[string]int{}
		}
		for _, k := range rng.Perm(len(pool))[:cfg.targets] {
			g := &hosts[pool[k].h].Guests[pool[k].g]
			g.Services = append(g.Services, b.Target)
			if b.Weights != nil {
				b.Weights[g.Name] = 1 + rng.IntN(5)
			}
		}
		balancers = append(balancers, b)
	}
	for h := range hosts {
		for g := range hosts[h].Guests {
			slices.Sort(hosts[h].Guests[g].Services)
		}
	}
	return &spec.Spec{Hosts: hosts, Balancers: balancers}
}

// BenchmarkAssignRender measures what an agent does for every new revision or
// membership change: the cluster-wide Assign and one host's Render, with
// every host setting every balancer (5 targets each, 100 hosts).
func BenchmarkAssignRender(b *testing.B) {
	for _, n := range []int{1000, 10000, 50000} {
		s := randomSpec(rand.New(rand.NewPCG(7, uint64(n))), randomSpecConfig{balancers: n, hosts: 100, guestsPerHost: 10, targets: 5})
		alive := make([]string, len(s.Hosts))
		for i, h := range s.Hosts {
			alive[i] = h.Name
		}
		b.Run(fmt.Sprintf("%dk", n/1000), func(b *testing.B) {
			b.ReportAllocs()
			cpu := processCPU()
			for b.Loop() {
				rs := Render(Assign(s, alive), "host-042")
				if rs.Balancers() != n {
					b.Fatalf("rendered %d balancers; want %d", rs.Balancers(), n)
				}
			}
			// On a shared machine wall time swings with the neighbours' load;
			// the process's CPU time per operation (GC included) does not.
			b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkDigest measures the plan digest agents gossip, on the same plans
// as BenchmarkAssignRender (every balancer lists 200 source guests there, so
// this is the canonical encoding's worst case).
func BenchmarkDigest(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		s := randomSpec(rand.New(rand.NewPCG(7, uint64(n))), randomSpecConfig{balancers: n, hosts: 100, guestsPerHost: 10, targets: 5})
		alive := make([]string, len(s.Hosts))
		for i, h := range s.Hosts {
			alive[i] = h.Name
		}
		p := Assign(s, alive)
		b.Run(fmt.Sprintf("%dk", n/1000), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if len(p.Digest()) != 64 {
					b.Fatal("bad digest")
				}
			}
		})
	}
}

// processCPU returns the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAssignOnly and BenchmarkRenderOnly split BenchmarkAssignRender/10k
// into its two halves; RenderOnly also compares the dispatch layouts.
func BenchmarkAssignOnly(b *testing.B) {
	s := randomSpec(rand.New(rand.NewPCG(7, 10000)), randomSpecConfig{balancers: 10000, hosts: 100, guestsPerHost: 10, targets: 5})
	alive := make([]string, len(s.Hosts))
	for i, h := range s.Hosts {
		alive[i] = h.Name
	}
	b.ReportAllocs()
	cpu := processCPU()
	for b.Loop() {
		Assign(s, alive)
	}
	b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
}

func BenchmarkRenderOnly(b *testing.B) {
	s := randomSpec(rand.New(rand.NewPCG(7, 10000)), randomSpecConfig{balancers: 10000, hosts: 100, guestsPerHost: 10, targets: 5})
	alive := make([]string, len(s.Hosts))
	for i, h := range s.Hosts {
		alive[i] = h.Name
	}
	p := Assign(s, alive)
	for _, m := range []struct {
		name string
		opts RenderOptions
	}{{"tree", RenderOptions{}}, {"linear", RenderOptions{Dispatch: LinearDispatch}}} {
		b.Run(m.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu := processCPU()
			for b.Loop() {
				RenderWith(p, "host-042", m.opts)
			}
			b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}
