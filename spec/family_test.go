package spec

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

// dualHosts is testdata/base's hosts with an IPv6 address on web-1 and
// api-1 (addresses) but not on api-2 (address).
const dualHosts = `apiVersion: weir/v1
kind: Host
metadata:
  name: host-a
spec:
  address: 198.18.0.1
  guests:
    - name: web-1
      addresses: [198.19.1.2, "fd00:19:1::2"]
      services: [frontend]
---
apiVersion: weir/v1
kind: Host
metadata:
  name: host-b
spec:
  address: 198.18.0.2
  guests:
    - name: api-1
      addresses: ["fd00:19:2::2", 198.19.2.2]
      services: [api]
    - name: api-2
      address: 198.19.2.3
      services: [api]
`

// allDual is dualHosts with an IPv6 address on every guest.
func allDual() string {
	return strings.Replace(dualHosts, "address: 198.19.2.3", `addresses: [198.19.2.3, "fd00:19:2::3"]`, 1)
}

func TestRuleGuestAddresses(t *testing.T) {
	hosts := func(guests string) string {
		return "apiVersion: weir/v1\nkind: Host\nmetadata: {name: host-c}\nspec:\n  address: 198.18.0.3\n  guests:\n" + guests
	}
	runRuleCases(t, []ruleCase{
		{"one of each family", map[string]string{"hosts.yaml": dualHosts, "balancers.yaml": ""}, nil},
		{"address and addresses", map[string]string{"x.yaml": hosts("    - {name: web-3, address: 198.19.3.2, addresses: [198.19.3.3]}\n")},
			[]string{`x.yaml:7: spec.guests[0].addresses: give address or addresses, not both`}},
		{"two IPv4", map[string]string{"x.yaml": hosts("    - {name: web-3, addresses: [198.19.3.2, 198.19.3.3]}\n")},
			[]string{`x.yaml:7: spec.guests[0].addresses[1]: a second IPv4 address (198.19.3.3 after 198.19.3.2); a guest has at most one IPv4 and one IPv6 address`}},
		{"two IPv6", map[string]string{"x.yaml": hosts("    - {name: web-3, addresses: [\"fd00:19:3::2\", \"fd00:19:3::3\"]}\n")},
			[]string{`x.yaml:7: spec.guests[0].addresses[1]: a second IPv6 address (fd00:19:3::3 after fd00:19:3::2); a guest has at most one IPv4 and one IPv6 address`}},
		{"three", map[string]string{"x.yaml": hosts("    - {name: web-3, addresses: [198.19.3.2, \"fd00:19:3::2\", 198.19.3.4]}\n")},
			[]string{`x.yaml:7: spec.guests[0].addresses: a guest has one or two addresses (at most one IPv4 and one IPv6), not 3`}},
		{"none", map[string]string{"x.yaml": hosts("    - {name: web-3, addresses: []}\n")},
			[]string{`x.yaml:7: spec.guests[0].addresses: a guest has one or two addresses (at most one IPv4 and one IPv6), not 0`}},
		{"bad entry", map[string]string{"x.yaml": hosts("    - {name: web-3, addresses: [198.19.3.2, \"fd00::19::2\"]}\n")},
			[]string{`x.yaml:7: spec.guests[0].addresses[1]: "fd00::19::2" is not an IPv4 or IPv6 address`}},
		{"IPv6 taken by another guest", map[string]string{"hosts.yaml": dualHosts, "balancers.yaml": "",
			"x.yaml": hosts("    - {name: web-3, addresses: [198.19.3.2, \"fd00:19:2::2\"]}\n")},
			[]string{`x.yaml:7: duplicate address fd00:19:2::2 (first used by guest "api-1" at hosts.yaml:20)`}},
	})
}

func TestRuleUnicastOnly(t *testing.T) {
	cases := []struct{ addr, kind string }{
		{"0.0.0.0", "unspecified"},
		{"::", "unspecified"},
		{"127.0.0.1", "loopback"},
		{"127.0.0.53", "loopback"},
		{"::1", "loopback"},
		{"::ffff:127.0.0.1", "loopback"},
		{"224.0.0.1", "multicast"},
		{"239.1.2.3", "multicast"},
		{"ff02::1", "multicast"},
		{"255.255.255.255", "broadcast"},
		{"169.254.169.254", "link-local"},
		{"fe80::1", "link-local"},
		{"febf::1", "link-local"},
	}
	var rc []ruleCase
	for _, c := range cases {
		shown := netip.MustParseAddr(c.addr).Unmap().String()
		rc = append(rc, ruleCase{"frontend " + c.addr, map[string]string{"balancers.yaml": balancer("web-api", `"`+c.addr+`"`)},
			[]string{`balancers.yaml:9: spec.frontend.address: ` + shown + ` is a ` + c.kind + ` address; a frontend needs a unicast address`}})
		rc = append(rc, ruleCase{"guest " + c.addr, map[string]string{"x.yaml": "apiVersion: weir/v1\nkind: Host\nmetadata: {name: host-c}\nspec:\n  address: 198.18.0.3\n  guests:\n    - {name: web-3, addresses: [\"" + c.addr + "\"]}\n"},
			[]string{`x.yaml:7: spec.guests[0].addresses[0]: ` + shown + ` is a ` + c.kind + ` address; a guest needs a unicast address`}})
	}
	rc = append(rc,
		ruleCase{"guest address field", map[string]string{"x.yaml": "apiVersion: weir/v1\nkind: Host\nmetadata: {name: host-c}\nspec:\n  address: 198.18.0.3\n  guests:\n    - {name: web-3, address: 127.0.0.1}\n"},
			[]string{`x.yaml:7: spec.guests[0].address: 127.0.0.1 is a loopback address; a guest needs a unicast address`}},
		ruleCase{"next to special ranges", map[string]string{"balancers.yaml": balancer("web-api", "198.20.0.10") + "---\n" +
			balancer("b2", "223.255.255.254") + "---\n" + balancer("b3", "169.253.255.255") + "---\n" + balancer("b4", "255.255.255.254")}, nil},
	)
	runRuleCases(t, rc)
}

func TestRuleBalancerFamily(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{"IPv6 balancer, one target without IPv6", map[string]string{"hosts.yaml": dualHosts, "balancers.yaml": balancer("web-api6", `"fd00:20::10"`)},
			[]string{`balancers.yaml:7: spec.target: guest "api-2" (hosts.yaml:22), which runs target service "api", has no IPv6 address, which balancer "web-api6" needs for its IPv6 frontend fd00:20::10`}},
		{"IPv6 balancer, IPv4-only tree", map[string]string{"balancers.yaml": balancer("web-api6", `"fd00:20::10"`)},
			[]string{
				`balancers.yaml:6: spec.source: guest "web-1" (hosts.yaml:8), which runs source service "frontend", has no IPv6 address, which balancer "web-api6" needs for its IPv6 frontend fd00:20::10`,
				`balancers.yaml:7: spec.target: guest "api-1" (hosts.yaml:19), which runs target service "api", has no IPv6 address, which balancer "web-api6" needs for its IPv6 frontend fd00:20::10`,
				`balancers.yaml:7: spec.target: guest "api-2" (hosts.yaml:22), which runs target service "api", has no IPv6 address, which balancer "web-api6" needs for its IPv6 frontend fd00:20::10`,
			}},
		{"IPv4 balancer, IPv6-only target", map[string]string{"hosts.yaml": strings.Replace(dualHosts, "address: 198.19.2.3", `address: "fd00:19:2::3"`, 1)},
			[]string{`balancers.yaml:7: spec.target: guest "api-2" (hosts.yaml:22), which runs target service "api", has no IPv4 address, which balancer "web-api" needs for its IPv4 frontend 198.20.0.10`}},
		{"one frontend port in each family", map[string]string{"hosts.yaml": allDual(),
			"six.yaml": balancer("web-api6", `"fd00:20::10"`)}, nil},
		{"same IPv6 frontend twice", map[string]string{"hosts.yaml": allDual(),
			"six.yaml": balancer("web-api6", `"fd00:20::10"`) + "---\n" + balancer("web-api6b", `"fd00:20:0::10"`)},
			[]string{`six.yaml:19: frontend [fd00:20::10]:80/tcp is already used by balancer "web-api6" (six.yaml:4)`}},
		{"IPv6 frontend on a guest's IPv6 address", map[string]string{"hosts.yaml": allDual(),
			"six.yaml": balancer("web-api6", `"fd00:19:1::2"`)},
			[]string{`six.yaml:9: spec.frontend.address: fd00:19:1::2 is the address of guest "web-1" (hosts.yaml:9); a frontend needs an address of its own`}},
	})
}

func TestGuestAddrByFamily(t *testing.T) {
	s, err := Load(fstest.MapFS{"hosts.yaml": {Data: []byte(dualHosts)}})
	if err != nil {
		t.Fatal(err)
	}
	g := s.Guest("api-1")
	if got, want := g.Addresses, []netip.Addr{netip.MustParseAddr("198.19.2.2"), netip.MustParseAddr("fd00:19:2::2")}; !slices.Equal(got, want) {
		t.Errorf("api-1 Addresses = %v; want %v (IPv4 first)", got, want)
	}
	if got := g.Addr(IPv6); got != netip.MustParseAddr("fd00:19:2::2") {
		t.Errorf("Addr(IPv6) = %v", got)
	}
	if got := s.Guest("api-2").Addr(IPv6); got.IsValid() {
		t.Errorf("api-2 Addr(IPv6) = %v; want none", got)
	}
}

// A Loader re-checks the family rule when only the hosts change: a family
// error in the unchanged balancers' file appears and goes away as Load's.
func TestLoaderFamilyRevisions(t *testing.T) {
	six := balancer("web-api6", `"fd00:20::10"`)
	var ld Loader
	for i, over := range []map[string]string{
		{"hosts.yaml": allDual(), "six.yaml": six},
		{"hosts.yaml": dualHosts, "six.yaml": six}, // api-2 loses its IPv6 address
		{"hosts.yaml": allDual(), "six.yaml": six},
		{"six.yaml": six}, // no guest has one
	} {
		sameAsLoad(t, &ld, hashFS{baseTree(t, over), map[string]int{}})
		if _, err := ld.Load(baseTree(t, over)); (err == nil) != (i%2 == 0) {
			t.Errorf("revision %d: Load error %v; want one exactly in the odd revisions", i, err)
		}
	}
}
