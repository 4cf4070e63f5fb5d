package testsupport

import (
	"fmt"
	"strings"
	"testing/fstest"

	"weir/spec"
)

// Layout says where the targets of BigTree's balancers run.
type Layout int

const (
	// TargetsLocal puts every target guest on host-a, the setting host:
	// every target is hairpin traffic there.
	TargetsLocal Layout = iota
	// TargetsRemote puts every target guest on host-b: host-a DNATs
	// everything to another host.
	TargetsRemote
)

// String names the layout for benchmark and row names.
func (l Layout) String() string {
	if l == TargetsRemote {
		return "remote"
	}
	return "local"
}

// Sizes of BigTree.
const (
	BigHosts          = 100 // host-a and 99 others
	BigGuestsPerHost  = 10  // on the hosts other than host-a and the target host
	BigTargetGuests   = 50  // guests t-00…t-49, running the target services
	BigTargetServices = 200
	BigTargets        = 5 // guests per target service
)

// BigTree returns the spec files (path → YAML) of the large tree the
// memory and same-host rows use: 100 hosts; host-a's guest web-a and guest 0
// of every other host run the source service client, so every host sets
// every balancer (each lists 100 source guests); 50 guests t-00…t-49 run
// 200 target services, 5 guests each — on host-a itself (TargetsLocal) or
// all on host-b (TargetsRemote), so that with host-a's agent (and host-b's)
// alone every balancer has 5 alive targets (about 60,000 rules on host-a).
// Balancer i sends client's traffic for 198.20.0.(1+i%250):(1000+i/250) to
// service svc-(i%200), port 8080; one in ten is roundrobin, one in three of
// the others has a weight. The balancers are 100 to a file.
func BigTree(balancers int, layout Layout) map[string]string {
	return BigTreeGen(balancers, layout, 0)
}

// BigTreeGen is BigTree in its generation gen: balancer balancers/2+1
// (lb-05001 at 10,000, weighted) has its weight raised by gen, so every
// generation is a new revision that changes one balancer and one file.
func BigTreeGen(balancers int, layout Layout, gen int) map[string]string {
	files := map[string]string{}
	targetHost := 1
	if layout == TargetsRemote {
		targetHost = 2
	}
	files["hosts/host-a.yaml"] = bigHostA(layout)
	if layout == TargetsRemote {
		files["hosts/host-b.yaml"] = hostYAML("host-b", 2, bigTargetGuestsYAML(targetHost))
	}
	for h := targetHost + 1; h <= BigHosts; h++ {
		var g strings.Builder
		for i := range BigGuestsPerHost {
			svc := "batch"
			if i == 0 {
				svc = "client"
			}
			fmt.Fprintf(&g, "    - name: g-%03d-%d\n      address: 198.19.%d.%d\n      services: [%s]\n", h, i, h, 2+i, svc)
		}
		files[fmt.Sprintf("hosts/host-%03d.yaml", h)] = hostYAML(fmt.Sprintf("host-%03d", h), h, g.String())
	}
	for f := 0; f*100 < balancers; f++ {
		var b strings.Builder
		for i := f * 100; i < min(balancers, (f+1)*100); i++ {
			bump := 0
			if i == balancers/2+1 {
				bump = gen
			}
			writeBigBalancer(&b, i, bump)
		}
		files[fmt.Sprintf("balancers/%03d.yaml", f)] = b.String()
	}
	return files
}

// bigHostA is host-a's file: web-a, and the target guests when they are local.
func bigHostA(layout Layout) string {
	guests := "    - name: web-a\n      address: 198.19.1.2\n      services: [client]\n"
	if layout == TargetsLocal {
		guests += bigTargetGuestsYAML(1)
	}
	return hostYAML("host-a", 1, guests)
}

// hostYAML is the Host document of host name number i with the given guests list.
func hostYAML(name string, i int, guests string) string {
	return fmt.Sprintf("apiVersion: weir/v1\nkind: Host\nmetadata:\n  name: %s\nspec:\n  address: 198.18.0.%d\n  guests:\n%s", name, i, guests)
}

// bigSvcGuests returns the indices of the target guests running svc-k: 11
// is coprime to 50, so the 5 are distinct.
func bigSvcGuests(k int) []int {
	g := make([]int, BigTargets)
	for j := range g {
		g[j] = (k + 11*j) % BigTargetGuests
	}
	return g
}

// bigTargetGuestsYAML lists t-00…t-49 with addresses in 198.19.h.0/24.
func bigTargetGuestsYAML(h int) string {
	runs := make([][]string, BigTargetGuests)
	for k := range BigTargetServices {
		for _, g := range bigSvcGuests(k) {
			runs[g] = append(runs[g], fmt.Sprintf("svc-%03d", k))
		}
	}
	var b strings.Builder
	for g := range BigTargetGuests {
		fmt.Fprintf(&b, "    - name: t-%02d\n      address: 198.19.%d.%d\n      services: [%s]\n", g, h, 3+g, strings.Join(runs[g], ", "))
	}
	return b.String()
}

// writeBigBalancer writes balancer i of BigTree as a document of its own,
// its weight (if it has one) raised by bump.
func writeBigBalancer(b *strings.Builder, i, bump int) {
	k := i % BigTargetServices
	fmt.Fprintf(b, "---\napiVersion: weir/v1\nkind: Balancer\nmetadata:\n  name: lb-%05d\nspec:\n  source: client\n  target: svc-%03d\n  frontend:\n    address: 198.20.0.%d\n    port: %d\n    protocol: tcp\n  targetPort: 8080\n",
		i, k, 1+i%250, 1000+i/250)
	switch {
	case i%10 == 0:
		b.WriteString("  strategy: roundrobin\n")
	case i%3 == 0:
		fmt.Fprintf(b, "  weights:\n    t-%02d: %d\n", bigSvcGuests(k)[i%BigTargets], 2+i%4+bump)
	}
}

// MapFS holds files (path → content) in memory, for spec.Load.
func MapFS(files map[string]string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for name, content := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(content)}
	}
	return fsys
}

// BigTreeSpec loads BigTree and returns it with the names of its hosts.
func BigTreeSpec(balancers int, layout Layout) (*spec.Spec, []string, error) {
	s, err := spec.Load(MapFS(BigTree(balancers, layout)))
	if err != nil {
		return nil, nil, fmt.Errorf("loading BigTree(%d, %s): %w", balancers, layout, err)
	}
	return s, HostNames(s), nil
}
