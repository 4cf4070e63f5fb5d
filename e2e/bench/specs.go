package main

import (
	"fmt"
	"strings"
)

// hostName is the lab's name of host i (1-based): host-a, host-b, …
func hostName(i int) string { return "host-" + string(rune('a'+i-1)) }

// clusterSpec is the tree of the convergence rows: hosts lab hosts, each with
// a web guest (service frontend) and an orders guest (service orders), and
// 10 balancers from frontend to orders, so every host sets all 10 with
// `hosts` targets each. gen changes one weight, so every generation is a new
// revision with new rules on every host.
func clusterSpec(hosts, gen int) map[string]string {
	files := map[string]string{}
	for i := 1; i <= hosts; i++ {
		files[fmt.Sprintf("hosts/%s.yaml", hostName(i))] = fmt.Sprintf(`apiVersion: weir/v1
kind: Host
metadata:
  name: %[1]s
spec:
  address: 198.18.0.%[2]d
  guests:
    - name: web-%[2]d
      address: 198.19.%[2]d.2
      services: [frontend]
    - name: orders-%[2]d
      address: 198.19.%[2]d.3
      services: [orders]
`, hostName(i), i)
	}
	var b strings.Builder
	for k := range 10 {
		if k > 0 {
			b.WriteString("---\n")
		}
		fmt.Fprintf(&b, `apiVersion: weir/v1
kind: Balancer
metadata:
  name: orders-%d
spec:
  source: frontend
  target: orders
  frontend:
    address: 198.20.0.%d
    port: 80
  targetPort: 8080
`, k, 10+k)
		if k == 0 {
			fmt.Fprintf(&b, "  weights:\n    orders-1: %d\n", gen+1)
		}
	}
	files["balancers.yaml"] = b.String()
	return files
}

// Sizes of the big tree of the memory row.
const (
	bigHosts          = 100 // host-a (the agent) and 99 others
	bigGuestsPerHost  = 10  // on the 99 other hosts
	bigTargetGuests   = 50  // on host-a, running the target services
	bigTargetServices = 200
	bigTargets        = 5 // guests per target service
)

// bigSpec is the tree of the 10k memory row: 100 hosts; host-a's guest web-a
// and guest 0 of every other host run the source service client, so every
// host sets every balancer (each lists 100 source guests); host-a's 50 guests
// t-00…t-49 run 200 target services, 5 guests each, so with only host-a's
// agent running every balancer still has 5 alive targets (about 70k rules on
// host-a). Balancer i sends client's traffic for 198.20.0.(1+i%250):(1000+i/250)
// to service svc-(i%200); one in ten is roundrobin, one in three of the others
// has a weight.
func bigSpec(balancers int) map[string]string {
	files := map[string]string{}
	// svcGuests[k] are the indices of host-a's guests running svc-k: 11 is
	// coprime to 50, so the 5 are distinct.
	svcGuests := func(k int) []int {
		g := make([]int, bigTargets)
		for j := range g {
			g[j] = (k + 11*j) % bigTargetGuests
		}
		return g
	}
	runs := make([][]string, bigTargetGuests)
	for k := range bigTargetServices {
		for _, g := range svcGuests(k) {
			runs[g] = append(runs[g], fmt.Sprintf("svc-%03d", k))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: weir/v1\nkind: Host\nmetadata:\n  name: host-a\nspec:\n  address: 198.18.0.1\n  guests:\n")
	fmt.Fprintf(&b, "    - name: web-a\n      address: 198.19.1.2\n      services: [client]\n")
	for g := range bigTargetGuests {
		fmt.Fprintf(&b, "    - name: t-%02d\n      address: 198.19.1.%d\n      services: [%s]\n", g, 3+g, strings.Join(runs[g], ", "))
	}
	files["hosts/host-a.yaml"] = b.String()
	for h := 2; h <= bigHosts; h++ {
		b.Reset()
		fmt.Fprintf(&b, "apiVersion: weir/v1\nkind: Host\nmetadata:\n  name: host-%03d\nspec:\n  address: 198.18.0.%d\n  guests:\n", h, h)
		for g := range bigGuestsPerHost {
			svc := "batch"
			if g == 0 {
				svc = "client"
			}
			fmt.Fprintf(&b, "    - name: g-%03d-%d\n      address: 198.19.%d.%d\n      services: [%s]\n", h, g, h, 2+g, svc)
		}
		files[fmt.Sprintf("hosts/host-%03d.yaml", h)] = b.String()
	}
	for f := 0; f*100 < balancers; f++ {
		b.Reset()
		for i := f * 100; i < min(balancers, (f+1)*100); i++ {
			k := i % bigTargetServices
			fmt.Fprintf(&b, "---\napiVersion: weir/v1\nkind: Balancer\nmetadata:\n  name: lb-%05d\nspec:\n  source: client\n  target: svc-%03d\n  frontend:\n    address: 198.20.0.%d\n    port: %d\n    protocol: tcp\n  targetPort: 8080\n",
				i, k, 1+i%250, 1000+i/250)
			switch {
			case i%10 == 0:
				b.WriteString("  strategy: roundrobin\n")
			case i%3 == 0:
				fmt.Fprintf(&b, "  weights:\n    t-%02d: %d\n", svcGuests(k)[i%bigTargets], 2+i%4)
			}
		}
		files[fmt.Sprintf("balancers/%03d.yaml", f)] = b.String()
	}
	return files
}
