package netfilter_test

import (
	"fmt"
	"net/netip"
	"sort"

	"weir/reconcile/render"
	"weir/spec"
)

// fixture builds a hand-made Ruleset shaped like Render's output, so the
// kernel half can be tested independently of the renderer: nat WEIR-SERVICES
// dispatches by frontend to WEIR-DST-<group> chains (a two-level tree), those to
// one WEIR-SVC-<i> chain per balancer holding statistic-mode DNAT rules;
// WEIR-POSTROUTING masquerades marked packets; balancers without targets
// REJECT in the filter chain WEIR-REJECT. Some rules are deliberately written
// in a form iptables-save prints differently (no /32, ten-decimal
// probabilities, -p after -s, no explicit -m tcp) to exercise normalization.
type fixture struct {
	n       int          // balancers
	targets int          // targets per balancer
	group   int          // balancers per WEIR-DST chain (default 16)
	shift   map[int]int  // balancer → offset added to its target addresses
	drop    map[int]bool // balancers left out
	empty   map[int]bool // balancers with no alive target (REJECT)
	udp     map[int]bool // balancers on UDP
}

func svcChain(i int) string { return fmt.Sprintf("WEIR-SVC-%05d", i) }
func dstChain(g int) string { return fmt.Sprintf("WEIR-DST-%04d", g) }

// frontend of balancer i: 198.20.0.0/24 addresses, then ports above 1000.
func (f fixture) frontend(i int) spec.Frontend {
	p := spec.TCP
	if f.udp[i] {
		p = spec.UDP
	}
	return spec.Frontend{
		Address:  netip.AddrFrom4([4]byte{198, 20, 0, byte(i%250 + 1)}),
		Port:     uint16(1000 + i/250),
		Protocol: p,
	}
}

func (f fixture) target(i, t int) netip.AddrPort {
	host := (t+f.shift[i])%250 + 1
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 19, byte(host), byte(i%250 + 1)}), 8080)
}

func (f fixture) build() *render.Ruleset {
	if f.group == 0 {
		f.group = 16
	}
	ownerJump := []string{"-m", "comment", "--comment", "weir", "-j"}
	jump := func(chain, target string) render.Jump {
		return render.Jump{Chain: chain, Rule: append(append([]string(nil), ownerJump...), target)}
	}
	var services, reject render.Chain
	services.Name, reject.Name = "WEIR-SERVICES", "WEIR-REJECT"
	groups := map[int]*render.Chain{}
	var svcs []render.Chain
	var flows []render.Flow
	for i := 0; i < f.n; i++ {
		if f.drop[i] {
			continue
		}
		fe := f.frontend(i)
		name := fmt.Sprintf("bal-%05d", i)
		if f.empty[i] {
			reject.Rules = append(reject.Rules, fmt.Sprintf(
				"-d %s/32 -p %s -m %s --dport %d -m comment --comment %s -j REJECT --reject-with icmp-port-unreachable",
				fe.Address, fe.Protocol, fe.Protocol, fe.Port, name))
			flows = append(flows, render.Flow{Balancer: name, Frontend: fe})
			continue
		}
		g := i / f.group
		if groups[g] == nil {
			groups[g] = &render.Chain{Name: dstChain(g)}
			// A packet no rule of the group matches returns here and
			// meets the next group.
			services.Rules = append(services.Rules, fmt.Sprintf(
				"-d 198.20.0.0/24 -m comment --comment group-%d -j %s", g, dstChain(g)))
		}
		// Written "-p tcp -s … -d …" without /32 or -m tcp: the kernel prints
		// it as "-s …/32 -d …/32 -p tcp -m tcp --dport …".
		groups[g].Rules = append(groups[g].Rules, fmt.Sprintf(
			"-p %s -s 198.19.0.0/16 -d %s --dport %d -m comment --comment %s -j %s",
			fe.Protocol, fe.Address, fe.Port, name, svcChain(i)))
		svc := render.Chain{Name: svcChain(i)}
		fl := render.Flow{Balancer: name, Frontend: fe}
		for t := 0; t < f.targets; t++ {
			to := f.target(i, t)
			fl.Targets = append(fl.Targets, to)
			stat := ""
			if left := f.targets - t; left > 1 {
				stat = fmt.Sprintf("-m statistic --mode random --probability %.10f ", 1/float64(left))
			}
			svc.Rules = append(svc.Rules, fmt.Sprintf("-p %s -m comment --comment %s %s-j DNAT --to-destination %s",
				fe.Protocol, name, stat, to))
		}
		svcs = append(svcs, svc)
		flows = append(flows, fl)
	}
	masq := render.Chain{Name: "WEIR-POSTROUTING", Rules: []string{
		"-m mark --mark 0x4000/0x4000 -m comment --comment weir -j MASQUERADE",
	}}
	nat := render.Table{Name: "nat"}
	nat.Chains = append(nat.Chains, services, masq)
	for _, c := range groups {
		nat.Chains = append(nat.Chains, *c)
	}
	nat.Chains = append(nat.Chains, svcs...)
	sort.Slice(nat.Chains, func(i, j int) bool { return nat.Chains[i].Name < nat.Chains[j].Name })
	nat.Jumps = []render.Jump{
		jump("PREROUTING", "WEIR-SERVICES"),
		jump("OUTPUT", "WEIR-SERVICES"),
		jump("POSTROUTING", "WEIR-POSTROUTING"),
	}
	filter := render.Table{Name: "filter", Chains: []render.Chain{reject}, Jumps: []render.Jump{
		jump("FORWARD", "WEIR-REJECT"),
		jump("OUTPUT", "WEIR-REJECT"),
	}}
	return &render.Ruleset{Tables: []render.Table{filter, nat}, Flows: flows}
}

// chainCount returns the number of chains of rs.
func chainCount(rs *render.Ruleset) int {
	n := 0
	for _, t := range rs.Tables {
		n += len(t.Chains)
	}
	return n
}
