package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"weir/internal/testsupport"
)

func TestCleanupBadFlags(t *testing.T) {
	tests := []struct {
		args []string
		want int
	}{
		{[]string{"--backend", "bogus"}, exitUsage},
		{[]string{"extra"}, exitUsage},
		{[]string{"--no-such-flag"}, exitUsage},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		if got := runCleanup(context.Background(), tt.args, &stdout, &stderr); got != tt.want {
			t.Errorf("runCleanup(%q) = %d; want %d (stderr %q)", tt.args, got, tt.want, stderr.String())
		}
	}
}

// TestCleanupNetns runs `weir cleanup` in a fresh network namespace holding
// weir's chains and foreign ones, in iptables and ip6tables, on both
// backends: it removes exactly the owned chains and jumps, prints them, and
// exits 0; a second run finds nothing.
func TestCleanupNetns(t *testing.T) {
	for _, backend := range []string{"nft", "legacy"} {
		t.Run(backend, func(t *testing.T) {
			ns := testsupport.NewNetns(t)
			restore := "*nat\n:FOREIGN - [0:0]\n:WEIR-SERVICES - [0:0]\n:WEIR-SVC-A - [0:0]\n" +
				"-A PREROUTING -s 10.99.0.0/16 -j FOREIGN\n" +
				"-A PREROUTING -m comment --comment weir -j WEIR-SERVICES\n" +
				"-A FOREIGN -j RETURN\n" +
				"-A WEIR-SERVICES -d 198.20.0.1/32 -j WEIR-SVC-A\n" +
				"-A WEIR-SVC-A -j RETURN\nCOMMIT\n" +
				"*filter\n:WEIR-REJECT - [0:0]\n-A OUTPUT -j WEIR-REJECT\n-A FORWARD -s 10.98.0.0/16 -j ACCEPT\nCOMMIT\n"
			cmd := ns.Command("iptables-"+backend+"-restore", "--noflush")
			cmd.Stdin = strings.NewReader(restore)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Skipf("backend %s does not work here: %v: %s", backend, err, out)
			}
			// The same in ip6tables, with IPv6 addresses.
			restore6 := strings.NewReplacer("10.99.0.0/16", "fd00:99::/64", "198.20.0.1/32", "fd00:20::1/128", "10.98.0.0/16", "fd00:98::/64").Replace(restore)
			cmd = ns.Command("ip6tables-"+backend+"-restore", "--noflush")
			cmd.Stdin = strings.NewReader(restore6)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("ip6tables-%s-restore: %v: %s", backend, err, out)
			}
			var stdout, stderr bytes.Buffer
			if got := runCleanup(context.Background(), []string{"--backend", backend, "--netns", ns.Name}, &stdout, &stderr); got != exitOK {
				t.Fatalf("weir cleanup = %d; want 0 (stderr %q)", got, stderr.String())
			}
			want := "removed jump filter/OUTPUT -j WEIR-REJECT\n" +
				"removed jump nat/PREROUTING -m comment --comment weir -j WEIR-SERVICES\n" +
				"removed chain filter/WEIR-REJECT\nremoved chain nat/WEIR-SERVICES\nremoved chain nat/WEIR-SVC-A\n" +
				"removed jump filter/OUTPUT -j WEIR-REJECT (ip6tables)\n" +
				"removed jump nat/PREROUTING -m comment --comment weir -j WEIR-SERVICES (ip6tables)\n" +
				"removed chain filter/WEIR-REJECT (ip6tables)\nremoved chain nat/WEIR-SERVICES (ip6tables)\nremoved chain nat/WEIR-SVC-A (ip6tables)\n"
			if stdout.String() != want {
				t.Errorf("weir cleanup printed\n%s\nwant\n%s", stdout.String(), want)
			}
			var saved strings.Builder
			for _, table := range []string{"filter", "nat"} {
				for _, l := range strings.Split(ns.Run("iptables-"+backend+"-save", "-t", table), "\n") {
					if strings.HasPrefix(l, "-") || strings.HasPrefix(l, ":") {
						saved.WriteString(l + "\n")
					}
				}
			}
			wantSaved := ":INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD -s 10.98.0.0/16 -j ACCEPT\n" +
				":PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n:FOREIGN - [0:0]\n" +
				"-A PREROUTING -s 10.99.0.0/16 -j FOREIGN\n-A FOREIGN -j RETURN\n"
			if saved.String() != wantSaved {
				t.Errorf("after cleanup the tables hold\n%s\nwant\n%s", saved.String(), wantSaved)
			}
			var saved6 strings.Builder
			for _, table := range []string{"filter", "nat"} {
				for _, l := range strings.Split(ns.Run("ip6tables-"+backend+"-save", "-t", table), "\n") {
					if strings.HasPrefix(l, "-") || strings.HasPrefix(l, ":") {
						saved6.WriteString(l + "\n")
					}
				}
			}
			wantSaved6 := strings.NewReplacer("10.99.0.0/16", "fd00:99::/64", "10.98.0.0/16", "fd00:98::/64").Replace(wantSaved)
			if saved6.String() != wantSaved6 {
				t.Errorf("after cleanup the ip6tables tables hold\n%s\nwant\n%s", saved6.String(), wantSaved6)
			}
			stdout.Reset()
			if got := runCleanup(context.Background(), []string{"--backend", backend, "--netns", ns.Name}, &stdout, &stderr); got != exitOK || !strings.HasPrefix(stdout.String(), "nothing to remove") {
				t.Errorf("second weir cleanup = %d, %q; want 0, nothing to remove", got, stdout.String())
			}
		})
	}
}
