package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"weir/reconcile/plan"
	"weir/reconcile/render"
	"weir/spec"
)

const planBalancers = `apiVersion: weir/v1
kind: Balancer
metadata:
  name: frontend-orders
spec:
  source: frontend
  target: orders
  frontend:
    address: 198.20.0.10
    port: 80
  targetPort: 8080
  weights:
    orders-2: 3
`

// planDir writes a spec tree of the given files into a temporary directory.
func planDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func planCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = runPlan(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestPlanRules(t *testing.T) {
	dir := planDir(t, map[string]string{"hosts.yaml": basicHosts(t), "balancers.yaml": planBalancers})
	code, out, errs := planCmd(t, "--specs", dir, "--node", "host-a")
	if code != exitOK || errs != "" {
		t.Fatalf("weir plan = %d, stderr %q; want 0 and nothing", code, errs)
	}
	s, err := spec.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := plan.Assign(s, []string{"host-a", "host-b", "host-c"}, nil)
	rs := render.Render(p, "host-a")
	header, body, ok := strings.Cut(out, "*filter\n")
	if !ok {
		t.Fatalf("output has no *filter table:\n%s", out)
	}
	if got, want := "*filter\n"+body, string(rs.Bytes()); got != want {
		t.Errorf("restore text =\n%s\nwant\n%s", got, want)
	}
	for _, want := range []string{
		"# weir plan for host-a, digest " + p.Digest() + "\n",
		"# alive: host-a,host-b,host-c\n",
		"# 1 balancer, 4 rules\n",
		"#   -t nat -A PREROUTING -m comment --comment weir -j WEIR-SERVICES\n",
		"#   -t filter -A FORWARD -m conntrack --ctstate NEW -m comment --comment weir -j WEIR-REJECT\n",
	} {
		if !strings.Contains(header, want) {
			t.Errorf("header lacks %q:\n%s", want, header)
		}
	}
	for _, l := range strings.Split(strings.TrimSpace(header), "\n") {
		if !strings.HasPrefix(l, "#") {
			t.Errorf("header line %q is not a comment; iptables-restore would reject it", l)
		}
	}
	if !strings.Contains(body, "--probability 0.2500000000 ") {
		t.Errorf("weights 1:3 should give a first rule of probability 0.25:\n%s", body)
	}

	// The default --alive is every host.
	if _, again, _ := planCmd(t, "--specs", dir, "--node", "host-a", "--alive", "host-c,host-b,host-a"); again != out {
		t.Errorf("explicit --alive of every host differs from the default")
	}
	// Linear dispatch renders the same balancers.
	if code, lin, _ := planCmd(t, "--specs", dir, "--node", "host-a", "--dispatch", "linear"); code != exitOK || !strings.Contains(lin, "-A WEIR-SERVICES -s 198.19.1.2/32 -d 198.20.0.10/32 -p tcp -m tcp --dport 80 ") {
		t.Errorf("--dispatch linear = %d:\n%s", code, lin)
	}
}

func TestPlanJSON(t *testing.T) {
	dir := planDir(t, map[string]string{"hosts.yaml": basicHosts(t), "balancers.yaml": planBalancers})
	tests := []struct {
		node, alive string
		want        map[string]float64 // guest → share
		balancers   int
	}{
		{"host-a", "", map[string]float64{"orders-1": 0.25, "orders-2": 0.75}, 1},
		{"host-a", "host-a,host-b", map[string]float64{"orders-1": 1}, 1},
		{"host-a", "host-a", map[string]float64{}, 1},
		{"host-b", "", nil, 0},
	}
	for _, tt := range tests {
		args := []string{"--specs", dir, "--node", tt.node, "-o", "json"}
		if tt.alive != "" {
			args = append(args, "--alive", tt.alive)
		}
		code, out, errs := planCmd(t, args...)
		if code != exitOK {
			t.Fatalf("weir plan %v = %d: %s", args, code, errs)
		}
		var got struct {
			Node      string   `json:"node"`
			Digest    string   `json:"digest"`
			Alive     []string `json:"alive"`
			Balancers []struct {
				Name    string `json:"name"`
				Targets []struct {
					Guest string  `json:"guest"`
					Share float64 `json:"share"`
				} `json:"targets"`
			} `json:"balancers"`
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("weir plan %v: bad JSON: %v\n%s", args, err, out)
		}
		if !strings.Contains(out, "\n  \"balancers\": [") {
			t.Errorf("weir plan %v: output not indented or balancers missing (null?):\n%s", args, out)
		}
		if got.Node != tt.node || len(got.Digest) != 64 {
			t.Errorf("weir plan %v: node %q digest %q", args, got.Node, got.Digest)
		}
		if len(got.Balancers) != tt.balancers {
			t.Fatalf("weir plan %v: %d balancers; want %d", args, len(got.Balancers), tt.balancers)
		}
		if tt.balancers == 0 {
			continue
		}
		shares := map[string]float64{}
		for _, tg := range got.Balancers[0].Targets {
			shares[tg.Guest] = tg.Share
		}
		if len(shares) != len(tt.want) {
			t.Errorf("weir plan %v: shares %v; want %v", args, shares, tt.want)
		}
		for g, w := range tt.want {
			if math.Abs(shares[g]-w) > 1e-12 {
				t.Errorf("weir plan %v: share of %s = %v; want %v", args, g, shares[g], w)
			}
		}
	}
}

func TestPlanInvalidSpecs(t *testing.T) {
	bad := strings.Replace(planBalancers, "    port: 80\n", "    port: 80\n    colour: blue\n", 1)
	dir := planDir(t, map[string]string{"hosts.yaml": basicHosts(t), "balancers.yaml": bad})
	code, out, errs := planCmd(t, "--specs", dir, "--node", "host-a")
	if code != exitFail {
		t.Errorf("weir plan on a bad tree = %d; want %d", code, exitFail)
	}
	if out != "" {
		t.Errorf("weir plan on a bad tree printed %q; want nothing", out)
	}
	if !regexp.MustCompile(`(?m)^balancers\.yaml:11: .*colour`).MatchString(errs) {
		t.Errorf("stderr = %q; want balancers.yaml:11: … colour", errs)
	}
}

func TestPlanUsage(t *testing.T) {
	dir := planDir(t, map[string]string{"hosts.yaml": basicHosts(t), "balancers.yaml": planBalancers})
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no specs", []string{"--node", "host-a"}, "want exactly one PATH, got 0 (or --specs DIR)"},
		{"no node", []string{"--specs", dir}, "--node is required"},
		{"bad output", []string{"--specs", dir, "--node", "host-a", "-o", "yaml"}, `unknown output format "yaml"`},
		{"bad dispatch", []string{"--specs", dir, "--node", "host-a", "--dispatch", "hash"}, `unknown dispatch "hash"`},
		{"path and --specs", []string{"--specs", dir, "--node", "host-a", "extra"}, `give the spec directory once: PATH "extra" or --specs`},
		{"two paths", []string{dir, dir, "--node", "host-a"}, "want exactly one PATH, got 2"},
		{"unknown flag", []string{"--specs", dir, "--nod", "host-a"}, "unknown flag: --nod"},
		{"unknown node", []string{dir, "--node", "host-z"}, `--node "host-z" is not a host in the specs (hosts: host-a, host-b, host-c)`},
		{"unknown unhealthy guest", []string{dir, "--node", "host-a", "--unhealthy", "orders-9"}, `--unhealthy names "orders-9", which is not a guest`},
		{"missing dir", []string{"--specs", filepath.Join(dir, "nope"), "--node", "host-a"}, "no such file or directory"},
	}
	for _, tt := range tests {
		code, out, errs := planCmd(t, tt.args...)
		if code != exitUsage || out != "" || !strings.Contains(errs, tt.want) {
			t.Errorf("%s: weir plan %v = %d, stdout %q, stderr %q; want %d and %q", tt.name, tt.args, code, out, errs, exitUsage, tt.want)
		}
	}
}

func TestPlanEnvAndWarnings(t *testing.T) {
	dir := planDir(t, map[string]string{"hosts.yaml": basicHosts(t), "balancers.yaml": planBalancers})
	t.Setenv("WEIR_SPECS", dir)
	t.Setenv("WEIR_NODE", "host-c")
	code, out, errs := planCmd(t, "--alive", "host-a,ghost")
	if code != exitOK {
		t.Fatalf("weir plan from env = %d: %s", code, errs)
	}
	if want := `"ghost", which is not a host`; !strings.Contains(errs, want) {
		t.Errorf("stderr = %q; want a warning containing %q", errs, want)
	}
	if !strings.Contains(out, "# weir plan for host-c,") || !strings.Contains(out, "# 0 balancers, 1 rule") {
		t.Errorf("plan for a host that sets no balancer should be the empty ruleset:\n%s", out)
	}

	// A host that is not in the specs is a mistake (a typo), not an empty plan.
	t.Setenv("WEIR_NODE", "host-x")
	if code, out, errs := planCmd(t); code != exitUsage || out != "" || !strings.Contains(errs, `--node "host-x" is not a host in the specs`) {
		t.Errorf("weir plan --node host-x = %d, %q, %q; want 2 and the unknown host", code, out, errs)
	}
	// DIR on the command line wins over WEIR_SPECS; --node over WEIR_NODE.
	t.Setenv("WEIR_SPECS", filepath.Join(dir, "nope"))
	if code, out, errs := planCmd(t, dir, "--node", "host-a"); code != exitOK || !strings.Contains(out, "# weir plan for host-a,") {
		t.Errorf("weir plan DIR --node host-a with WEIR_SPECS and WEIR_NODE set = %d, %q", code, errs)
	}
}
