package netfilter_test

import (
	"fmt"
	"strings"
	"testing"

	ts "weir/internal/testsupport"
	"weir/reconcile/netfilter"
	"weir/reconcile/plan"
	"weir/reconcile/render"
)

// BenchmarkApplySameHost is weir's first (full) apply of Render's output on
// host-a of testsupport.BigTree (10,000 balancers × 5 targets), with every
// target on host-a itself (local: hairpin traffic, WEIR-SEP chains) or on
// another host (remote), beside the flat floor: a raw iptables-restore
// --noflush of the flattest ruleset that balances the same traffic — one
// dispatch chain, one chain per balancer, its statistic DNAT rules — in
// another fresh namespace, measured in the same op. Needs root; run with
//
//	go test ./reconcile/netfilter -run '^$' -bench ApplySameHost -benchtime 1x
func BenchmarkApplySameHost(b *testing.B) {
	for _, layout := range []ts.Layout{ts.TargetsLocal, ts.TargetsRemote} {
		s, hosts, err := ts.BigTreeSpec(10000, layout)
		if err != nil {
			b.Fatal(err)
		}
		rs := render.Render(plan.Assign(s, hosts, nil), "host-a")
		floor := flatFloor(rs)
		natChains := len(tableOf(rs, "nat").Chains)
		for _, backend := range benchBackends {
			b.Run(fmt.Sprintf("%s/10k-%s", backend, layout), func(b *testing.B) {
				b.ReportAllocs()
				fullApplyVsFloor(b, backend, rs, netfilter.FullText(floor))
				b.ReportMetric(float64(natChains), "nat-chains")
				b.ReportMetric(float64(rs.Rules()), "rules")
				b.ReportMetric(float64(floor.Rules()), "floor-rules")
			})
		}
	}
}

// flatFloor is the flattest ruleset that balances the flows of rs: nat
// WEIR-FLAT, entered from PREROUTING and OUTPUT, jumps by frontend to one
// chain per balancer holding one statistic DNAT rule per target (equal
// shares, the last unconditional). It neither matches source guests nor
// masquerades hairpin traffic; it is the kernel's and iptables-restore's
// own cost of that many balancers.
func flatFloor(rs *render.Ruleset) *render.Ruleset {
	root := render.Chain{Name: "WEIR-FLAT"}
	chains := []render.Chain{root}
	for i, f := range rs.Flows {
		if len(f.Targets) == 0 {
			continue
		}
		c := render.Chain{Name: fmt.Sprintf("WEIR-FLAT-%05d", i)}
		p := strings.ToLower(string(f.Frontend.Protocol))
		chains[0].Rules = append(chains[0].Rules, fmt.Sprintf("-d %s/32 -p %s -m %s --dport %d -j %s", f.Frontend.Address, p, p, f.Frontend.Port, c.Name))
		for j, to := range f.Targets {
			stat := ""
			if left := len(f.Targets) - j; left > 1 {
				stat = fmt.Sprintf("-m statistic --mode random --probability %.10f ", 1/float64(left))
			}
			c.Rules = append(c.Rules, fmt.Sprintf("-p %s %s-j DNAT --to-destination %s", p, stat, to))
		}
		chains = append(chains, c)
	}
	jump := []string{"-j", root.Name}
	nat := render.Table{Name: "nat", Chains: chains, Jumps: []render.Jump{{Chain: "PREROUTING", Rule: jump}, {Chain: "OUTPUT", Rule: jump}}}
	return &render.Ruleset{Tables: []render.Table{nat}}
}
