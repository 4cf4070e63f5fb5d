package testsupport

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"weir/reconcile/netfilter"
)

// impl is one Netfilter whose restore semantics the Fake must share, with
// a way to read a table back.
type impl struct {
	name string
	make func(t *testing.T) (netfilter.Netfilter, func(table string) (string, error))
}

// impls are the Fake and, when root, both kernel backends.
var impls = []impl{
	{"fake", func(*testing.T) (netfilter.Netfilter, func(string) (string, error)) {
		f := NewFake()
		return f, func(table string) (string, error) {
			b, err := f.Save(context.Background(), table)
			return string(b), err
		}
	}},
	{netfilter.BackendNFT, kernelImpl(netfilter.BackendNFT)},
	{netfilter.BackendLegacy, kernelImpl(netfilter.BackendLegacy)},
}

func kernelImpl(backend string) func(t *testing.T) (netfilter.Netfilter, func(string) (string, error)) {
	return func(t *testing.T) (netfilter.Netfilter, func(string) (string, error)) {
		nf, ns := NewIPTables(t, backend)
		return nf, func(table string) (string, error) {
			return ns.Output("iptables-"+backend+"-save", "-t", table)
		}
	}
}

// TestFakeRestore checks that the Fake accepts and rejects restore text as the
// real iptables-restore does, and that a rejected transaction changes nothing.
// The same cases run against both kernel backends when root, so the Fake's
// rules are those of the kernel, not a guess.
func TestFakeRestore(t *testing.T) {
	setup := "*nat\n:WEIR-A - [0:0]\n:WEIR-B - [0:0]\n-A WEIR-A -j WEIR-B\n-A WEIR-B -j RETURN\nCOMMIT\n"
	tests := []struct {
		name    string
		text    string
		wantErr bool
		want    string // the nat table's owned lines afterwards
	}{
		{"declare flushes", "*nat\n:WEIR-B - [0:0]\nCOMMIT\n", false,
			":WEIR-A - [0:0]\n:WEIR-B - [0:0]\n-A WEIR-A -j WEIR-B\n"},
		{"append", "*nat\n-A WEIR-B -d 198.20.0.1 -j RETURN\nCOMMIT\n", false,
			":WEIR-A - [0:0]\n:WEIR-B - [0:0]\n-A WEIR-A -j WEIR-B\n-A WEIR-B -j RETURN\n-A WEIR-B -d 198.20.0.1/32 -j RETURN\n"},
		{"jump to missing chain", "*nat\n:WEIR-A - [0:0]\n-A WEIR-A -j WEIR-MISSING\nCOMMIT\n", true, ""},
		{"delete referenced chain", "*nat\n:WEIR-B - [0:0]\n-X WEIR-B\nCOMMIT\n", true, ""},
		{"delete non-empty chain", "*nat\n-X WEIR-B\nCOMMIT\n", true, ""},
		{"flush both then delete", "*nat\n:WEIR-A - [0:0]\n:WEIR-B - [0:0]\n-X WEIR-A\n-X WEIR-B\nCOMMIT\n", false, ""},
		{"error rolls back earlier lines", "*nat\n:WEIR-C - [0:0]\n:WEIR-A - [0:0]\n-A WEIR-A -j WEIR-NONE\nCOMMIT\n", true, ""},
	}
	for _, im := range impls {
		for _, tt := range tests {
			t.Run(im.name+"/"+tt.name, func(t *testing.T) {
				nf, save := im.make(t)
				ctx := context.Background()
				if err := nf.Restore(ctx, []byte(setup)); err != nil {
					t.Fatal(err)
				}
				before := owned(t, save)
				err := nf.Restore(ctx, []byte(tt.text))
				if (err != nil) != tt.wantErr {
					t.Fatalf("Restore(%q) error = %v; want error %v", tt.text, err, tt.wantErr)
				}
				want := tt.want
				if tt.wantErr {
					want = before
				}
				if got := owned(t, save); got != want {
					t.Errorf("after Restore(%q) nat =\n%s\nwant\n%s", tt.text, got, want)
				}
			})
		}
	}
}

// owned returns the nat table's lines that mention WEIR-.
func owned(t *testing.T, save func(table string) (string, error)) string {
	t.Helper()
	text, err := save("nat")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, netfilter.OwnedPrefix) {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// TestFakeJumps checks EnsureJump and DeleteJump on the Fake.
func TestFakeJumps(t *testing.T) {
	ctx := context.Background()
	f := NewFake()
	if err := f.Run("nat", "-N", "WEIR-A"); err != nil {
		t.Fatal(err)
	}
	rule := []string{"-m", "comment", "--comment", "weir", "-j", "WEIR-A"}
	for i, want := range []bool{true, false} {
		got, err := f.EnsureJump(ctx, "nat", "PREROUTING", rule)
		if err != nil || got != want {
			t.Errorf("EnsureJump #%d = %v, %v; want %v, nil", i+1, got, err, want)
		}
	}
	if _, err := f.EnsureJump(ctx, "nat", "PREROUTING", []string{"-j", "WEIR-NONE"}); err == nil {
		t.Errorf("EnsureJump to a missing chain succeeded; want an error")
	}
	if err := f.DeleteJump(ctx, "nat", "PREROUTING", rule); err != nil {
		t.Fatal(err)
	}
	if err := f.DeleteJump(ctx, "nat", "PREROUTING", rule); err != nil {
		t.Errorf("DeleteJump of a missing rule = %v; want nil", err)
	}
	got, err := f.ListRules(ctx, "nat", []string{"PREROUTING"})
	if err != nil || len(got["PREROUTING"]) != 0 {
		t.Errorf("PREROUTING after delete = %q, %v; want empty", got["PREROUTING"], err)
	}
}

// TestChainDepthLimit checks that the Fake refuses, as nf_tables does, a
// transaction after which a built-in chain reaches more than maxNestedChains
// nested chains, or chains jump in a loop, and that the refused transaction
// changes nothing. The same cases run on both kernel backends when root: the
// legacy one allows deeper nesting, which the Fake deliberately does not.
func TestChainDepthLimit(t *testing.T) {
	// chainText declares WEIR-D01…WEIR-Dn, each jumping to the next, with
	// jumpFrom's jump into the first unless it is empty.
	chainText := func(n int, jumpFrom string, loop bool) string {
		var b strings.Builder
		b.WriteString("*nat\n")
		for i := 1; i <= n; i++ {
			fmt.Fprintf(&b, ":WEIR-D%02d - [0:0]\n", i)
		}
		for i := 1; i < n; i++ {
			fmt.Fprintf(&b, "-A WEIR-D%02d -j WEIR-D%02d\n", i, i+1)
		}
		if loop {
			fmt.Fprintf(&b, "-A WEIR-D%02d -j WEIR-D01\n", n)
		}
		if jumpFrom != "" {
			fmt.Fprintf(&b, "-A %s -j WEIR-D01\n", jumpFrom)
		}
		b.WriteString("COMMIT\n")
		return b.String()
	}
	tests := []struct {
		name  string
		setup string // applied first, must succeed
		text  string
		// wantErr by implementation: the Fake and nft agree; legacy has no
		// depth limit.
		wantErr, wantErrLegacy bool
	}{
		{"15 nested from PREROUTING", "", chainText(maxNestedChains, "PREROUTING", false), false, false},
		{"16 nested from PREROUTING", "", chainText(maxNestedChains+1, "PREROUTING", false), true, false},
		{"16 nested from OUTPUT with goto", "", strings.Replace(chainText(maxNestedChains+1, "OUTPUT", false), "-A WEIR-D01 -j", "-A WEIR-D01 -g", 1), true, false},
		{"16 nested unreachable", "", chainText(maxNestedChains+1, "", false), false, false},
		{"jump from PREROUTING added later", chainText(maxNestedChains+1, "", false), "*nat\n-A PREROUTING -j WEIR-D01\nCOMMIT\n", true, false},
		{"reachable graph grows", chainText(maxNestedChains, "PREROUTING", false), "*nat\n:WEIR-D16 - [0:0]\n-A WEIR-D15 -j WEIR-D16\nCOMMIT\n", true, false},
		{"loop from PREROUTING", "", chainText(3, "PREROUTING", true), true, true},
	}
	for _, im := range impls {
		for _, tt := range tests {
			t.Run(im.name+"/"+tt.name, func(t *testing.T) {
				nf, save := im.make(t)
				ctx := context.Background()
				if tt.setup != "" {
					if err := nf.Restore(ctx, []byte(tt.setup)); err != nil {
						t.Fatalf("setup: %v", err)
					}
				}
				before := owned(t, save)
				want := tt.wantErr
				if im.name == netfilter.BackendLegacy {
					want = tt.wantErrLegacy
				}
				err := nf.Restore(ctx, []byte(tt.text))
				if (err != nil) != want {
					t.Fatalf("Restore(%q) error = %v; want error %v", tt.text, err, want)
				}
				if err != nil {
					if got := owned(t, save); got != before {
						t.Errorf("a refused Restore changed nat:\n%s\nwant\n%s", got, before)
					}
				}
			})
		}
	}
	t.Run("fake/EnsureJump", func(t *testing.T) {
		f := NewFake()
		ctx := context.Background()
		if err := f.Restore(ctx, []byte(chainText(maxNestedChains+1, "", false))); err != nil {
			t.Fatal(err)
		}
		rule := []string{"-m", "comment", "--comment", "weir", "-j", "WEIR-D01"}
		if ok, err := f.EnsureJump(ctx, "nat", "PREROUTING", rule); err == nil || ok {
			t.Fatalf("EnsureJump into a 16-deep graph = %v, %v; want an error", ok, err)
		}
		if got, _ := f.ListRules(ctx, "nat", []string{"PREROUTING"}); len(got["PREROUTING"]) != 0 {
			t.Errorf("PREROUTING after a refused EnsureJump = %q; want empty", got["PREROUTING"])
		}
	})
}
