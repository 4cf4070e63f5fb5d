package testsupport

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"

	"weir/spec"
)

// RandomSpecConfig sizes a random spec for tests and benchmarks.
type RandomSpecConfig struct {
	Balancers     int
	Hosts         int // at most 250
	GuestsPerHost int // at least 2
	Targets       int // target guests per balancer
	// Family of every address: IPv4 (the zero value) as described at
	// RandomSpec, or IPv6: guests at fd00:19:<host>::<n>, frontends half
	// in fd00:20::/120 (many ports per address) and half with 22 random
	// bits spread over fd00::/16 (in the 3rd, 10th and 16th bytes), so the
	// dispatch tree splits on high, middle and low bits of the 128, over
	// as many distinct addresses as the IPv4 spec has.
	Family spec.Family
}

// RandomSpec builds a valid-looking spec: every host's first guest runs the
// source services client-0 and client-1 and its second guest client-1, so
// every host sets every balancer (the worst case for one host's ruleset); each
// balancer's target service runs on cfg.Targets random other guests. Frontends
// are distinct address:port:protocol triples, half in 198.20.0.0/24 (many
// ports per address) and half spread over 100.64.0.0/10; about one balancer
// in ten is roundrobin, the others have random weights 1..5.
func RandomSpec(rng *rand.Rand, cfg RandomSpecConfig) *spec.Spec {
	hosts, pool := randomHosts(cfg)
	seen := map[spec.Frontend]bool{}
	balancers := make([]spec.Balancer, 0, cfg.Balancers)
	for i := range cfg.Balancers {
		fe := randomFrontend(rng, seen, cfg.Family)
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
		for _, k := range rng.Perm(len(pool))[:cfg.Targets] {
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

// guestRef is a guest by the index of its host and its index there.
type guestRef struct{ h, g int }

// randomHosts returns cfg.Hosts hosts of cfg.GuestsPerHost guests: the first
// two run the client services, the others, returned as the pool, are for
// targets.
func randomHosts(cfg RandomSpecConfig) ([]spec.Host, []guestRef) {
	hosts := make([]spec.Host, cfg.Hosts)
	var pool []guestRef
	for h := range hosts {
		hosts[h] = spec.Host{Name: fmt.Sprintf("host-%03d", h), Address: netip.AddrFrom4([4]byte{198, 18, byte(h / 250), byte(h%250 + 1)})}
		for g := range cfg.GuestsPerHost {
			guest := spec.Guest{
				Name:      fmt.Sprintf("g-%03d-%03d", h, g),
				Addresses: []netip.Addr{randomGuestAddr(cfg.Family, h, g)},
				Host:      hosts[h].Name,
			}
			switch g {
			case 0:
				guest.Services = []string{"client-0", "client-1"}
			case 1:
				guest.Services = []string{"client-1"}
			default:
				pool = append(pool, guestRef{h, g})
			}
			hosts[h].Guests = append(hosts[h].Guests, guest)
		}
	}
	return hosts, pool
}

// randomGuestAddr is the address of guest g of host h.
func randomGuestAddr(f spec.Family, h, g int) netip.Addr {
	if f == spec.IPv6 {
		return netip.AddrFrom16([16]byte{0xfd, 0, 0, 0x19, 0, byte(h), 14: byte(g >> 8), 15: byte(g + 2)})
	}
	return netip.AddrFrom4([4]byte{198, 19, byte(h), byte(g + 2)})
}

// randomAddr6 returns a frontend address: in fd00:20::/120, or with 22
// random bits spread over fd00::/16 (see RandomSpecConfig.Family).
func randomAddr6(rng *rand.Rand) netip.Addr {
	var b [16]byte
	b[0] = 0xfd
	if rng.IntN(2) == 0 {
		b[3], b[15] = 0x20, byte(rng.IntN(256))
		return netip.AddrFrom16(b)
	}
	v := rng.Uint32N(1 << 22)
	b[2], b[9], b[15] = byte(v>>14), byte(v>>6), byte(v<<2)|1
	return netip.AddrFrom16(b)
}

// randomFrontend returns a frontend of family f not in seen, and adds it.
func randomFrontend(rng *rand.Rand, seen map[spec.Frontend]bool, f spec.Family) spec.Frontend {
	protos := []spec.Protocol{spec.TCP, spec.TCP, spec.TCP, spec.TCP, spec.TCP, spec.TCP, spec.TCP, spec.UDP, spec.UDP, spec.SCTP}
	for {
		var fe spec.Frontend
		if f == spec.IPv6 {
			fe.Address = randomAddr6(rng)
		} else if rng.IntN(2) == 0 {
			fe.Address = netip.AddrFrom4([4]byte{198, 20, 0, byte(rng.IntN(256))})
		} else {
			v := 100<<24 | 64<<16 | rng.Uint32N(1<<22)
			fe.Address = netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		}
		fe.Port = uint16(1 + rng.IntN(65535))
		fe.Protocol = protos[rng.IntN(len(protos))]
		if !seen[fe] {
			seen[fe] = true
			return fe
		}
	}
}

// OneChangeSpecs returns two specs of n balancers (RandomSpec over 100
// hosts of 10 guests, 5 targets each, seeded by n) that differ in one
// balancer's target port, and the names of all their hosts: what the
// benchmarks of one change on a large host start from.
func OneChangeSpecs(n int) ([2]*spec.Spec, []string) {
	s := RandomSpec(rand.New(rand.NewPCG(7, uint64(n))), RandomSpecConfig{Balancers: n, Hosts: 100, GuestsPerHost: 10, Targets: 5})
	changed := *s
	changed.Balancers = append([]spec.Balancer(nil), s.Balancers...)
	changed.Balancers[n/2].TargetPort++
	return [2]*spec.Spec{s, &changed}, HostNames(s)
}
