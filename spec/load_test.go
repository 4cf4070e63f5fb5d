package spec

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

// y strips the newline after the opening backquote, so that in a test's YAML
// the first line written is line 1.
func y(s string) string { return strings.TrimPrefix(s, "\n") }

// baseTree returns testdata/base (two hosts, one balancer; valid) as a MapFS,
// with over's files added or replaced; an empty content removes the file.
func baseTree(t *testing.T, over map[string]string) fstest.MapFS {
	t.Helper()
	m := fstest.MapFS{}
	for _, name := range []string{"hosts.yaml", "balancers.yaml"} {
		data, err := os.ReadFile(filepath.Join("testdata", "base", name))
		if err != nil {
			t.Fatal(err)
		}
		m[name] = &fstest.MapFile{Data: data}
	}
	for name, data := range over {
		if data == "" {
			delete(m, name)
			continue
		}
		m[name] = &fstest.MapFile{Data: []byte(data)}
	}
	return m
}

// errLines loads fsys and returns its problems as FILE:LINE: message lines,
// nil when it is valid. Any error other than an ErrorList fails the test.
func errLines(t *testing.T, fsys fs.FS) []string {
	t.Helper()
	s, err := Load(fsys)
	if err == nil {
		if s == nil {
			t.Fatal("Load returned neither a Spec nor an error")
		}
		return nil
	}
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("Load: %v (%T); want an ErrorList", err, err)
	}
	if s != nil {
		t.Errorf("Load returned a Spec along with errors")
	}
	if len(list) == 0 {
		t.Fatal("Load returned an empty ErrorList")
	}
	out := make([]string, len(list))
	for i, e := range list {
		out[i] = e.Error()
	}
	return out
}

// ruleCase is one tree and the exact problems Load must report for it.
type ruleCase struct {
	name  string
	files map[string]string // over testdata/base
	want  []string          // nil: valid
}

func runRuleCases(t *testing.T, cases []ruleCase) {
	t.Helper()
	// One Loader goes through every case in turn, as an agent goes through
	// revisions: it must report exactly what a fresh Load does.
	var ld Loader
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fsys := baseTree(t, tc.files)
			got := errLines(t, fsys)
			if !slices.Equal(got, tc.want) {
				t.Errorf("Load() errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			sameAsLoad(t, &ld, fsys)
		})
	}
}

// balancer is a valid Balancer document of testdata/base's services, 10
// lines long, with extra lines appended to its spec (indented two spaces).
func balancer(name, address string, extra ...string) string {
	s := "apiVersion: weir/v1\nkind: Balancer\nmetadata:\n  name: " + name + "\nspec:\n  source: frontend\n  target: api\n  frontend:\n    address: " + address + "\n    port: 80\n"
	for _, e := range extra {
		s += "  " + e + "\n"
	}
	return s
}

func TestBaseTreeIsValid(t *testing.T) {
	if got := errLines(t, baseTree(t, nil)); got != nil {
		t.Fatalf("testdata/base: %v", got)
	}
}

func TestRuleMalformedYAML(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{"unclosed flow sequence", map[string]string{"bad.yaml": y(`
apiVersion: weir/v1
kind: Host
metadata: {name: host-c
spec:
  address: 198.18.0.3
`)}, []string{`bad.yaml:3: malformed YAML: did not find expected ',' or '}'`}},
		{"tab indentation", map[string]string{"bad.yaml": y(`
apiVersion: weir/v1
kind: Host
metadata:
	name: host-c
`)}, []string{`bad.yaml:4: malformed YAML: found character that cannot start any token`}},
		{"error in a later document", map[string]string{"bad.yaml": y(`
apiVersion: weir/v1
kind: Host
metadata: {name: host-c}
spec: {address: 198.18.0.3}
---
kind: "Host
`)}, []string{`bad.yaml:6: malformed YAML: found unexpected end of stream`}},
		{"indentation that ends a mapping", map[string]string{"bad.yaml": y(`
apiVersion: weir/v1
kind: Host
metadata:
  name: host-c
 spec: {}
`)}, []string{`bad.yaml:5: malformed YAML: did not find expected key`}},
		{"unclosed at the end of the file", map[string]string{"bad.yaml": "apiVersion: weir/v1\nkind: Host\nmetadata: {\n"},
			[]string{`bad.yaml:3: malformed YAML: did not find expected node content`}},
		{"invalid UTF-8", map[string]string{"bad.yaml": "# ok\n# ok\nkind: Ho\xffst\n"},
			[]string{`bad.yaml:3: invalid character U+00FF: spec files must be printable UTF-8 text`}},
		{"control character", map[string]string{"bad.yaml": "# ok\nkind: Ho\x01st\n"},
			[]string{`bad.yaml:2: invalid character U+0001: spec files must be printable UTF-8 text`}},
		{"CR and CRLF line ends count like LF", map[string]string{"bad.yaml": "# a\r# b\r\n# c\nkind: \x02\n"},
			[]string{`bad.yaml:4: invalid character U+0002: spec files must be printable UTF-8 text`}},
		{"lines after a bare CR", map[string]string{"bad.yaml": "apiVersion: weir/v1\rkind: Host\rmetadata: {name: host-c}\rspec: {address: 198.18.0.3}\rextra: 1\r"},
			[]string{`bad.yaml:5: unknown field "extra"`}},
		{"scalar document", map[string]string{"bad.yaml": "# a comment\njust a string\n"},
			[]string{`bad.yaml:2: a document must be a mapping with apiVersion, kind, metadata and spec, not string "just a string"`}},
		{"empty documents are skipped", map[string]string{"empty.yaml": "---\n# nothing\n---\n", "blank.yml": "\n"}, nil},
	})
}

func TestRuleAPIVersionAndKind(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{"unknown apiVersion", map[string]string{"x.yaml": y(`
apiVersion: weir/v2
kind: Host
metadata: {name: host-c}
spec: {address: 198.18.0.3}
`)}, []string{`x.yaml:1: unknown apiVersion "weir/v2" (want weir/v1)`}},
		{"missing apiVersion", map[string]string{"x.yaml": y(`
kind: Host
metadata: {name: host-c}
spec: {address: 198.18.0.3}
`)}, []string{`x.yaml:1: missing required field "apiVersion"`}},
		{"unknown kind, and its apiVersion", map[string]string{"x.yaml": y(`
# a comment first
apiVersion: v1
kind: Service
metadata: {name: svc}
`)}, []string{`x.yaml:2: unknown apiVersion "v1" (want weir/v1)`, `x.yaml:3: unknown kind "Service" (want Host or Balancer)`}},
		{"missing kind", map[string]string{"x.yaml": y(`
apiVersion: weir/v1
metadata: {name: host-c}
`)}, []string{`x.yaml:1: missing kind (want Host or Balancer)`}},
		{"kind in the wrong case", map[string]string{"x.yaml": y(`
apiVersion: weir/v1
kind: host
`)}, []string{`x.yaml:2: unknown kind "host" (want Host or Balancer)`}},
		{"second document of three", map[string]string{"x.yaml": balancer("b2", "198.20.0.11") + "---\napiVersion: weir/v1\nkind: Gateway\n---\n" + balancer("b3", "198.20.0.12")},
			[]string{`x.yaml:13: unknown kind "Gateway" (want Host or Balancer)`}},
	})
}

func TestRuleNames(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{"host name with upper case", map[string]string{"x.yaml": y(`
apiVersion: weir/v1
kind: Host
metadata:
  name: Host-C
spec:
  address: 198.18.0.3
`)}, []string{`x.yaml:4: metadata.name: invalid host name "Host-C": must be a DNS label (at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)`}},
		{"missing host name", map[string]string{"x.yaml": y(`
apiVersion: weir/v1
kind: Host
metadata: {}
spec:
  address: 198.18.0.3
`)}, []string{`x.yaml:3: missing required field "metadata.name"`}},
		{"missing metadata", map[string]string{"x.yaml": y(`
apiVersion: weir/v1
kind: Host
spec:
  address: 198.18.0.3
`)}, []string{`x.yaml:1: missing required field "metadata"`}},
		{"guest names", map[string]string{"x.yaml": y(`
apiVersion: weir/v1
kind: Host
metadata: {name: host-c}
spec:
  address: 198.18.0.3
  guests:
    - name: -web
      address: 198.19.3.2
    - name: web_3
      address: 198.19.3.3
    - address: 198.19.3.4
    - name: ""
      address: 198.19.3.5
    - name: a23456789012345678901234567890123456789012345678901234567890123
      address: 198.19.3.6
    - name: a234567890123456789012345678901234567890123456789012345678901234
      address: 198.19.3.7
`)}, []string{
			`x.yaml:7: spec.guests[0].name: invalid guest name "-web": must be a DNS label (at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)`,
			`x.yaml:9: spec.guests[1].name: invalid guest name "web_3": must be a DNS label (at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)`,
			`x.yaml:11: missing required field "spec.guests[2].name"`,
			`x.yaml:12: spec.guests[3].name: invalid guest name "": must be a DNS label (at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)`,
			`x.yaml:16: spec.guests[5].name: invalid guest name "a234567890123456789012345678901234567890123456789012345678901234": must be a DNS label (at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)`,
		}},
		{"balancer and service names", map[string]string{"balancers.yaml": y(`
apiVersion: weir/v1
kind: Balancer
metadata:
  name: web.api
spec:
  source: Frontend
  target: api
  frontend: {address: 198.20.0.10, port: 80}
`)}, []string{
			`balancers.yaml:4: metadata.name: invalid balancer name "web.api": must be a DNS label (at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)`,
			`balancers.yaml:6: spec.source: invalid service name "Frontend": must be a DNS label (at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)`,
		}},
		{"service name in a guest", map[string]string{"x.yaml": y(`
apiVersion: weir/v1
kind: Host
metadata: {name: host-c}
spec:
  address: 198.18.0.3
  guests:
    - name: web-3
      address: 198.19.3.2
      services:
        - frontend
        - front end
`)}, []string{`x.yaml:11: spec.guests[0].services[1]: invalid service name "front end": must be a DNS label (at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)`}},
	})
}

func TestRuleDuplicateNames(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{"host in another file", map[string]string{"more/hosts.yaml": y(`
apiVersion: weir/v1
kind: Host
metadata:
  name: host-b
spec:
  address: 198.18.0.9
`)}, []string{`more/hosts.yaml:4: duplicate host "host-b" (first defined at hosts.yaml:15)`}},
		{"guest in another host", map[string]string{"x.yaml": y(`
apiVersion: weir/v1
kind: Host
metadata: {name: host-c}
spec:
  address: 198.18.0.3
  guests:
    - name: api-3
      address: 198.19.3.2
    - name: api-1
      address: 198.19.3.3
`)}, []string{`x.yaml:9: duplicate guest "api-1" (first defined at hosts.yaml:19)`}},
		{"guest in the same host", map[string]string{"x.yaml": y(`
apiVersion: weir/v1
kind: Host
metadata: {name: host-c}
spec:
  address: 198.18.0.3
  guests:
    - {name: api-3, address: 198.19.3.2}
    - {name: api-3, address: 198.19.3.3}
`)}, []string{`x.yaml:8: duplicate guest "api-3" (first defined at x.yaml:7)`}},
		{"balancer in the same file", map[string]string{"balancers.yaml": balancer("web-api", "198.20.0.10") + "---\n" + balancer("web-api", "198.20.0.11")},
			[]string{`balancers.yaml:15: duplicate balancer "web-api" (first defined at balancers.yaml:4)`}},
		{"first in sorted path order", map[string]string{"a/x.yaml": balancer("web-api", "198.20.0.11")},
			[]string{`balancers.yaml:4: duplicate balancer "web-api" (first defined at a/x.yaml:4)`}},
		{"a host and a guest may share a name", map[string]string{"x.yaml": y(`
apiVersion: weir/v1
kind: Host
metadata: {name: web-1}
spec: {address: 198.18.0.3}
`)}, nil},
	})
}

func TestRuleDuplicateAddresses(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{"host address of another host", map[string]string{"x.yaml": y(`
apiVersion: weir/v1
kind: Host
metadata: {name: host-c}
spec:
  address: 198.18.0.2
`)}, []string{`x.yaml:5: duplicate address 198.18.0.2 (first used by host "host-b" at hosts.yaml:17)`}},
		{"guest address of a guest", map[string]string{"x.yaml": y(`
apiVersion: weir/v1
kind: Host
metadata: {name: host-c}
spec:
  address: 198.18.0.3
  guests:
    - name: web-3
      address: 198.19.2.3
`)}, []string{`x.yaml:8: duplicate address 198.19.2.3 (first used by guest "api-2" at hosts.yaml:23)`}},
		{"guest address of its own host", map[string]string{"x.yaml": y(`
apiVersion: weir/v1
kind: Host
metadata: {name: host-c}
spec:
  address: 198.18.0.3
  guests:
    - name: web-3
      address: 198.18.0.3
`)}, []string{`x.yaml:8: duplicate address 198.18.0.3 (first used by host "host-c" at x.yaml:5)`}},
		{"IPv4-mapped IPv6 is the IPv4 address", map[string]string{"x.yaml": y(`
apiVersion: weir/v1
kind: Host
metadata: {name: host-c}
spec:
  address: "::ffff:198.18.0.1"
`)}, []string{`x.yaml:5: duplicate address 198.18.0.1 (first used by host "host-a" at hosts.yaml:6)`}},
		{"IPv6 spelled two ways", map[string]string{"x.yaml": y(`
apiVersion: weir/v1
kind: Host
metadata: {name: host-c}
spec:
  address: 2001:db8::1
---
apiVersion: weir/v1
kind: Host
metadata: {name: host-d}
spec:
  address: 2001:0db8:0:0::1
`)}, []string{`x.yaml:11: duplicate address 2001:db8::1 (first used by host "host-c" at x.yaml:5)`}},
	})
}

func TestRuleAddresses(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{"host, guest and frontend", map[string]string{
			"x.yaml": y(`
apiVersion: weir/v1
kind: Host
metadata: {name: host-c}
spec:
  address: 198.18.0.256
  guests:
    - {name: web-3, address: 198.19.03.2}
    - {name: web-4, address: "fe80::1%eth0"}
    - {name: web-5, address: host-c.example}
    - {name: web-6, address: "198.19.3.0/24"}
`),
			"balancers.yaml": balancer("web-api", "198.20.0"),
		}, []string{
			`balancers.yaml:9: spec.frontend.address: "198.20.0" is not an IPv4 or IPv6 address`,
			`x.yaml:5: spec.address: "198.18.0.256" is not an IPv4 or IPv6 address`,
			`x.yaml:7: spec.guests[0].address: "198.19.03.2" is not an IPv4 or IPv6 address`,
			`x.yaml:8: spec.guests[1].address: "fe80::1%eth0" is not an IPv4 or IPv6 address`,
			`x.yaml:9: spec.guests[2].address: "host-c.example" is not an IPv4 or IPv6 address`,
			`x.yaml:10: spec.guests[3].address: "198.19.3.0/24" is not an IPv4 or IPv6 address`,
		}},
		{"missing addresses", map[string]string{"x.yaml": y(`
apiVersion: weir/v1
kind: Host
metadata: {name: host-c}
spec:
  guests:
    - name: web-3
`)}, []string{`x.yaml:4: missing required field "spec.address"`, `x.yaml:6: missing required field "spec.guests[0].address"`}},
		{"IPv6 is fine", map[string]string{"x.yaml": y(`
apiVersion: weir/v1
kind: Host
metadata: {name: host-c}
spec:
  address: 2001:db8::3
  guests:
    - {name: web-3, address: "2001:db8:3::2"}
`)}, nil},
	})
}

func TestRulePorts(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{"frontend port 0", map[string]string{"balancers.yaml": strings.Replace(balancer("web-api", "198.20.0.10"), "port: 80", "port: 0", 1)},
			[]string{`balancers.yaml:10: spec.frontend.port: port 0 is out of range 1-65535`}},
		{"frontend port 65536", map[string]string{"balancers.yaml": strings.Replace(balancer("web-api", "198.20.0.10"), "port: 80", "port: 65536", 1)},
			[]string{`balancers.yaml:10: spec.frontend.port: port 65536 is out of range 1-65535`}},
		{"negative targetPort", map[string]string{"balancers.yaml": balancer("web-api", "198.20.0.10", "targetPort: -8080")},
			[]string{`balancers.yaml:11: spec.targetPort: port -8080 is out of range 1-65535`}},
		{"missing frontend port", map[string]string{"balancers.yaml": strings.Replace(balancer("web-api", "198.20.0.10"), "    port: 80\n", "", 1)},
			[]string{`balancers.yaml:8: missing required field "spec.frontend.port"`}},
		{"bounds are fine", map[string]string{"balancers.yaml": strings.Replace(balancer("web-api", "198.20.0.10", "targetPort: 1"), "port: 80", "port: 65535", 1)}, nil},
	})
}

func TestRuleProtocol(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{"icmp", map[string]string{"balancers.yaml": balancer("web-api", "198.20.0.10", "  protocol: icmp")},
			[]string{`balancers.yaml:11: spec.frontend.protocol: unknown protocol "icmp" (want tcp, udp or sctp)`}},
		{"upper case", map[string]string{"balancers.yaml": balancer("web-api", "198.20.0.10", "  protocol: TCP")},
			[]string{`balancers.yaml:11: spec.frontend.protocol: unknown protocol "TCP" (want tcp, udp or sctp)`}},
		{"udp and sctp", map[string]string{"balancers.yaml": balancer("web-api", "198.20.0.10", "  protocol: udp") + "---\n" + balancer("web-api-2", "198.20.0.10", "  protocol: sctp")}, nil},
	})
}

func TestRuleStrategy(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{"unknown", map[string]string{"balancers.yaml": balancer("web-api", "198.20.0.10", "strategy: leastconn")},
			[]string{`balancers.yaml:11: spec.strategy: unknown strategy "leastconn" (want random or roundrobin)`}},
		{"roundrobin", map[string]string{"balancers.yaml": balancer("web-api", "198.20.0.10", "strategy: roundrobin")}, nil},
	})
}

func TestRuleValueTypes(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{"scalars", map[string]string{"balancers.yaml": y(`
apiVersion: weir/v1
kind: Balancer
metadata:
  name: 42
spec:
  source: [frontend]
  target: api
  frontend:
    address: 198.20.0.10
    port: "80"
  targetPort: 80.5
  strategy: null
  weights:
    api-1: two
`)}, []string{
			`balancers.yaml:4: metadata.name: must be a string, not integer 42`,
			`balancers.yaml:6: spec.source: must be a string, not a list`,
			`balancers.yaml:10: spec.frontend.port: must be an integer, not string "80"`,
			`balancers.yaml:11: spec.targetPort: must be an integer, not number 80.5`,
			`balancers.yaml:12: spec.strategy: must be a string, not null`,
			`balancers.yaml:14: spec.weights.api-1: must be an integer, not string "two"`,
		}},
		{"collections", map[string]string{"x.yaml": y(`
apiVersion: weir/v1
kind: Host
metadata: host-c
spec:
  address: 198.18.0.3
  guests:
    name: web-3
---
apiVersion: weir/v1
kind: Host
metadata: {name: host-d}
spec:
  address: 198.18.0.4
  guests:
    - web-4
    - name: web-5
      address: 198.19.4.2
      services: frontend
`)}, []string{
			`x.yaml:3: metadata: must be a mapping, not string "host-c"`,
			`x.yaml:7: spec.guests: must be a list, not a mapping`,
			`x.yaml:15: spec.guests[0]: must be a mapping, not string "web-4"`,
			`x.yaml:18: spec.guests[1].services: must be a list, not string "frontend"`,
		}},
		{"YAML 1.1 booleans are strings", map[string]string{"balancers.yaml": balancer("web-api", "198.20.0.10", "  protocol: on")},
			[]string{`balancers.yaml:11: spec.frontend.protocol: unknown protocol "on" (want tcp, udp or sctp)`}},
		{"integer too large", map[string]string{"balancers.yaml": balancer("web-api", "198.20.0.10", "targetPort: 99999999999999999999")},
			[]string{`balancers.yaml:11: spec.targetPort: must be an integer, not number 99999999999999999999`}},
		{"hex and underscores are integers", map[string]string{"balancers.yaml": balancer("web-api", "198.20.0.10", "targetPort: 0x1F90", "weights: {api-1: 1_000}")}, nil},
	})
}

func TestRuleUnknownFields(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{"at every level", map[string]string{"balancers.yaml": y(`
apiVersion: weir/v1
kind: Balancer
metadata:
  name: web-api
  labels: {team: web}
spec:
  source: frontend
  target: api
  frontend:
    address: 198.20.0.10
    port: 80
    Protocol: udp
  targetport: 8080
status: {}
`)}, []string{
			`balancers.yaml:5: unknown field "metadata.labels"`,
			`balancers.yaml:12: unknown field "spec.frontend.Protocol"`,
			`balancers.yaml:13: unknown field "spec.targetport"`,
			`balancers.yaml:14: unknown field "status"`,
		}},
		{"in a guest", map[string]string{"x.yaml": y(`
apiVersion: weir/v1
kind: Host
metadata: {name: host-c}
spec:
  address: 198.18.0.3
  guests:
    - name: web-3
      address: 198.19.3.2
      service: [frontend]
`)}, []string{`x.yaml:9: unknown field "spec.guests[0].service"`}},
		{"complex key", map[string]string{"x.yaml": y(`
apiVersion: weir/v1
kind: Host
metadata: {name: host-c}
? [spec]
: {address: 198.18.0.3}
`)}, []string{`x.yaml:1: missing required field "spec"`, `x.yaml:4: document: field names must be plain values, not a list`}},
	})
}

func TestRuleDuplicateKeys(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{"top level and nested", map[string]string{"balancers.yaml": y(`
apiVersion: weir/v1
kind: Balancer
metadata:
  name: web-api
spec:
  source: frontend
  target: api
  frontend:
    address: 198.20.0.10
    port: 80
    port: 81
  source: frontend
`)}, []string{
			`balancers.yaml:11: duplicate field "spec.frontend.port" (first set at line 10)`,
			`balancers.yaml:12: duplicate field "spec.source" (first set at line 6)`,
		}},
		{"weights", map[string]string{"balancers.yaml": balancer("web-api", "198.20.0.10", "weights:", "  api-1: 2", "  api-1: 3")},
			[]string{`balancers.yaml:13: duplicate field "spec.weights.api-1" (first set at line 12)`}},
	})
}

func TestRuleDuplicateServices(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{"twice in one guest", map[string]string{"x.yaml": y(`
apiVersion: weir/v1
kind: Host
metadata: {name: host-c}
spec:
  address: 198.18.0.3
  guests:
    - name: web-3
      address: 198.19.3.2
      services:
        - frontend
        - api
        - frontend
`)}, []string{`x.yaml:12: duplicate service "frontend" in guest "web-3" (first listed at line 10)`}},
	})
}

func TestRuleServiceReferences(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{"source and target nobody runs", map[string]string{"balancers.yaml": y(`
apiVersion: weir/v1
kind: Balancer
metadata:
  name: web-api
spec:
  source: frontnd
  target: payments
  frontend: {address: 198.20.0.10, port: 80}
`)}, []string{
			`balancers.yaml:6: spec.source: no guest runs service "frontnd"`,
			`balancers.yaml:7: spec.target: no guest runs service "payments"`,
		}},
		{"missing source and target", map[string]string{"balancers.yaml": y(`
apiVersion: weir/v1
kind: Balancer
metadata:
  name: web-api
spec:
  frontend: {address: 198.20.0.10, port: 80}
`)}, []string{
			`balancers.yaml:5: missing required field "spec.source"`,
			`balancers.yaml:5: missing required field "spec.target"`,
		}},
		{"a service may be its own target", map[string]string{"balancers.yaml": y(`
apiVersion: weir/v1
kind: Balancer
metadata: {name: api-api}
spec: {source: api, target: api, frontend: {address: 198.20.0.10, port: 80}}
`)}, nil},
	})
}

func TestRuleWeights(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{"negative", map[string]string{"balancers.yaml": balancer("web-api", "198.20.0.10", "weights:", "  api-1: 0", "  api-2: -3")},
			[]string{`balancers.yaml:13: spec.weights.api-2: weight -3 is out of range 0-1000000 (0 drains the target)`}},
		{"too large", map[string]string{"balancers.yaml": balancer("web-api", "198.20.0.10", "weights: {api-1: 1000001}")},
			[]string{`balancers.yaml:11: spec.weights.api-1: weight 1000001 is out of range 0-1000000 (0 drains the target)`}},
		{"zero drains", map[string]string{"balancers.yaml": balancer("web-api", "198.20.0.10", "weights: {api-1: 0, api-2: 0}")}, nil},
		{"not an integer", map[string]string{"balancers.yaml": balancer("web-api", "198.20.0.10", "weights: {api-1: 1.5}")},
			[]string{`balancers.yaml:11: spec.weights.api-1: must be an integer, not number 1.5`}},
		{"guest that is not a target", map[string]string{"balancers.yaml": balancer("web-api", "198.20.0.10", "weights:", "  api-2: 2", "  web-1: 3")},
			[]string{`balancers.yaml:13: spec.weights.web-1: guest "web-1" does not run target service "api" (defined at hosts.yaml:8)`}},
		{"guest that does not exist", map[string]string{"balancers.yaml": balancer("web-api", "198.20.0.10", "weights:", "  api-9: 2")},
			[]string{`balancers.yaml:12: spec.weights.api-9: guest "api-9" is not defined`}},
		{"invalid guest name", map[string]string{"balancers.yaml": balancer("web-api", "198.20.0.10", "weights: {API-1: 2}")},
			[]string{`balancers.yaml:11: spec.weights.API-1: invalid guest name "API-1": must be a DNS label (at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)`}},
		{"valid", map[string]string{"balancers.yaml": balancer("web-api", "198.20.0.10", "weights: {api-1: 1, api-2: 1000000}")}, nil},
	})
}

func TestRuleRoundRobinWeights(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{"weights with roundrobin", map[string]string{"balancers.yaml": balancer("web-api", "198.20.0.10", "strategy: roundrobin", "weights:", "  api-1: 1", "  api-2: 0")},
			[]string{`balancers.yaml:13: spec.weights.api-1: weight 1 is not allowed with strategy roundrobin, which gives every target an equal share; only 0 (drain) is`}},
		{"strategy after weights", map[string]string{"balancers.yaml": balancer("web-api", "198.20.0.10", "weights: {api-2: 3}", "strategy: roundrobin")},
			[]string{`balancers.yaml:11: spec.weights.api-2: weight 3 is not allowed with strategy roundrobin, which gives every target an equal share; only 0 (drain) is`}},
		{"drain with roundrobin", map[string]string{"balancers.yaml": balancer("web-api", "198.20.0.10", "strategy: roundrobin", "weights: {api-1: 0}")}, nil},
		{"empty weights with roundrobin", map[string]string{"balancers.yaml": balancer("web-api", "198.20.0.10", "strategy: roundrobin", "weights: {}")}, nil},
	})
}

func TestRuleDuplicateFrontends(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{"same address, port and protocol", map[string]string{"more.yaml": balancer("web-api-2", "198.20.0.10", "  protocol: tcp")},
			[]string{`more.yaml:8: frontend 198.20.0.10:80/tcp is already used by balancer "web-api" (balancers.yaml:4)`}},
		{"IPv6", map[string]string{"hosts.yaml": allDual(), "balancers.yaml": balancer("a", "2001:db8::10") + "---\n" + balancer("b", "2001:db8:0::10")},
			[]string{`balancers.yaml:19: frontend [2001:db8::10]:80/tcp is already used by balancer "a" (balancers.yaml:4)`}},
		{"another protocol", map[string]string{"more.yaml": balancer("web-api-2", "198.20.0.10", "  protocol: udp")}, nil},
		{"another port", map[string]string{"more.yaml": strings.Replace(balancer("web-api-2", "198.20.0.10"), "port: 80", "port: 81", 1)}, nil},
	})
}

func TestRuleFrontendAddressTaken(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{"a host's address", map[string]string{"balancers.yaml": balancer("web-api", "198.18.0.2")},
			[]string{`balancers.yaml:9: spec.frontend.address: 198.18.0.2 is the address of host "host-b" (hosts.yaml:17); a frontend needs an address of its own`}},
		{"a guest's address", map[string]string{"balancers.yaml": balancer("web-api", "198.19.2.3")},
			[]string{`balancers.yaml:9: spec.frontend.address: 198.19.2.3 is the address of guest "api-2" (hosts.yaml:23); a frontend needs an address of its own`}},
	})
}

func TestRuleMissingSpec(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{"host", map[string]string{"x.yaml": "apiVersion: weir/v1\nkind: Host\nmetadata: {name: host-c}\n"},
			[]string{`x.yaml:1: missing required field "spec"`}},
		{"balancer frontend", map[string]string{"balancers.yaml": "apiVersion: weir/v1\nkind: Balancer\nmetadata: {name: b}\nspec:\n  source: frontend\n  target: api\n"},
			[]string{`balancers.yaml:4: missing required field "spec.frontend"`}},
	})
}

// TestErrorsSortedAcrossFiles checks that every problem of a tree is reported
// at once, ordered by file and line whatever order they were found in.
func TestErrorsSortedAcrossFiles(t *testing.T) {
	got := errLines(t, baseTree(t, map[string]string{
		"z.yaml":     "apiVersion: weir/v1\nkind: Nope\n",
		"a/b.yaml":   "apiVersion: weir/v1\nkind: Host\nmetadata: {name: host-a}\nspec: {address: 198.18.0.7}\n",
		"a.yaml":     "kind: Host\nx: 1\n",
		"hosts.yaml": "",
	}))
	want := []string{
		`a.yaml:1: missing required field "apiVersion"`,
		`a.yaml:1: missing required field "metadata"`,
		`a.yaml:1: missing required field "spec"`,
		`a.yaml:2: unknown field "x"`,
		`balancers.yaml:6: spec.source: no guest runs service "frontend"`,
		`balancers.yaml:7: spec.target: no guest runs service "api"`,
		`z.yaml:2: unknown kind "Nope" (want Host or Balancer)`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("Load() errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestErrorListError(t *testing.T) {
	l := ErrorList{{Pos{"a.yaml", 3}, "one"}, {Pos{"b/c.yaml", 10}, "two"}}
	if got, want := l.Error(), "a.yaml:3: one\nb/c.yaml:10: two"; got != want {
		t.Errorf("ErrorList.Error() = %q; want %q", got, want)
	}
}
