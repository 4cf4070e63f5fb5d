package netfilter

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
)

// textSaver is a Netfilter whose Save prints fixed text.
type textSaver struct {
	Netfilter
	text string
}

func (t textSaver) Save(context.Context, string) ([]byte, error) { return []byte(t.text), nil }

// TestScanSave: chains come out in the order printed, each once with its
// rules and their hash, those without rules at the end; a line longer than
// the read buffer is whole; what follows COMMIT is not read; rules of a
// chain printed in two places are an error.
func TestScanSave(t *testing.T) {
	long := "-m comment --comment " + strings.Repeat("x", 100<<10) + " -j RETURN"
	text := "# Generated\n*nat\n:PREROUTING ACCEPT [0:0]\n:WEIR-A - [0:0]\n:WEIR-B - [0:0]\n:WEIR-C - [0:0]\n" +
		"-A PREROUTING -j WEIR-A\n-A WEIR-A -j WEIR-B\n-A WEIR-A " + long + "\n-A WEIR-C -j RETURN\nCOMMIT\n*filter\n:WEIR-D - [0:0]\nCOMMIT\n"
	var decl, got []string
	err := scanSave(context.Background(), textSaver{text: text}, "nat", func(c string) { decl = append(decl, c) },
		func(c string, r *savedRules) error {
			rules := r.copies()
			if want := hashRules(rules); r.hash() != want {
				t.Errorf("%s: hash %x; want %x", c, r.hash(), want)
			}
			got = append(got, fmt.Sprintf("%s%d", c, len(rules)))
			if c == "WEIR-A" && (len(rules) != 2 || rules[1] != long) {
				t.Errorf("WEIR-A rules = %d, the long one intact %v", len(rules), len(rules) == 2 && rules[1] == long)
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if want := "PREROUTING WEIR-A WEIR-B WEIR-C"; strings.Join(decl, " ") != want {
		t.Errorf("declared %v; want %s", decl, want)
	}
	if want := "PREROUTING1 WEIR-A2 WEIR-C1 WEIR-B0"; strings.Join(got, " ") != want {
		t.Errorf("chains handed out %v; want %s", got, want)
	}
	split := "*nat\n:WEIR-A - [0:0]\n:WEIR-B - [0:0]\n-A WEIR-A -j RETURN\n-A WEIR-B -j RETURN\n-A WEIR-A -j RETURN\nCOMMIT\n"
	err = scanSave(context.Background(), textSaver{text: split}, "nat", func(string) {}, func(string, *savedRules) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "not contiguous") {
		t.Errorf("scanSave of split chain rules = %v; want an error", err)
	}
	if sha256.Sum256(nil) != hashRules(nil) {
		t.Errorf("an empty chain hashes differently from no rules")
	}
}
