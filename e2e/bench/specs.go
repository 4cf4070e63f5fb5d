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
