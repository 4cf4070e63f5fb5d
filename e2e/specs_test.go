package e2e

import (
	"fmt"
	"sort"
	"strings"
)

// guestSpec, hostSpec and balancerSpec render spec YAML for a test.
type guestSpec struct {
	name, addr string // addr "A,B" is a dual-stack guest: `addresses: ["A", "B"]`
	services   []string
}

type hostSpec struct {
	name, addr string
	guests     []guestSpec
}

type balancerSpec struct {
	name, source, target string
	addr                 string
	port, targetPort     int
	protocol, strategy   string
	weights              map[string]int
	healthCheck          string // a YAML flow mapping, e.g. "{protocol: tcp, interval: 1s}"
}

// renderSpecs returns the files of a spec tree: one file per host under
// hosts/ and all balancers in balancers.yaml.
func renderSpecs(hosts []hostSpec, bals []balancerSpec) map[string]string {
	files := map[string]string{}
	for _, h := range hosts {
		var b strings.Builder
		fmt.Fprintf(&b, "apiVersion: weir/v1\nkind: Host\nmetadata:\n  name: %s\nspec:\n  address: %s\n  guests:\n", h.name, h.addr)
		for _, g := range h.guests {
			if strings.Contains(g.addr, ",") {
				fmt.Fprintf(&b, "    - name: %s\n      addresses: [\"%s\"]\n      services: [%s]\n", g.name, strings.ReplaceAll(g.addr, ",", `", "`), strings.Join(g.services, ", "))
				continue
			}
			fmt.Fprintf(&b, "    - name: %s\n      address: %s\n      services: [%s]\n", g.name, g.addr, strings.Join(g.services, ", "))
		}
		files["hosts/"+h.name+".yaml"] = b.String()
	}
	var b strings.Builder
	for i, bl := range bals {
		if i > 0 {
			b.WriteString("---\n")
		}
		fmt.Fprintf(&b, "apiVersion: weir/v1\nkind: Balancer\nmetadata:\n  name: %s\nspec:\n  source: %s\n  target: %s\n  frontend:\n    address: %s\n    port: %d\n",
			bl.name, bl.source, bl.target, bl.addr, bl.port)
		if bl.protocol != "" {
			fmt.Fprintf(&b, "    protocol: %s\n", bl.protocol)
		}
		if bl.targetPort != 0 {
			fmt.Fprintf(&b, "  targetPort: %d\n", bl.targetPort)
		}
		if bl.strategy != "" {
			fmt.Fprintf(&b, "  strategy: %s\n", bl.strategy)
		}
		if bl.healthCheck != "" {
			fmt.Fprintf(&b, "  healthCheck: %s\n", bl.healthCheck)
		}
		if len(bl.weights) > 0 {
			b.WriteString("  weights:\n")
			names := make([]string, 0, len(bl.weights))
			for n := range bl.weights {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				fmt.Fprintf(&b, "    %s: %d\n", n, bl.weights[n])
			}
		}
	}
	files["balancers.yaml"] = b.String()
	return files
}

// basicHosts is examples/basic: web-1 (frontend) on host-a, orders-1 on
// host-b and orders-2 on host-c (both orders).
func basicHosts() []hostSpec {
	return []hostSpec{
		{"host-a", "198.18.0.1", []guestSpec{{"web-1", "198.19.1.2", []string{"frontend"}}}},
		{"host-b", "198.18.0.2", []guestSpec{{"orders-1", "198.19.2.2", []string{"orders"}}}},
		{"host-c", "198.18.0.3", []guestSpec{{"orders-2", "198.19.3.2", []string{"orders"}}}},
	}
}

// ordersBalancer is examples/basic's balancer with the given weights.
func ordersBalancer(weights map[string]int) balancerSpec {
	return balancerSpec{name: "frontend-orders", source: "frontend", target: "orders",
		addr: "198.20.0.10", port: 80, protocol: "tcp", targetPort: 8080, weights: weights}
}
