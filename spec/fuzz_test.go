package spec

import (
	"errors"
	"reflect"
	"slices"
	"testing"
	"testing/fstest"
	"time"
)

// FuzzLoad loads arbitrary bytes as the one file of a tree. Load must not
// panic, must finish quickly, and must either return a Spec or a non-empty,
// sorted ErrorList whose every position lies inside the file. The seed
// corpus (testdata/fuzz/FuzzLoad: the examples, the schema corpus and
// hostile inputs) runs with every plain `go test`.
func FuzzLoad(f *testing.F) {
	f.Add([]byte("apiVersion: weir/v1\nkind: Host\nmetadata: {name: h}\nspec: {address: 198.18.0.1}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fsys := fstest.MapFS{"f.yaml": {Data: data}}
		start := time.Now()
		s, err := Load(fsys)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Load took %v", d)
		}
		if err == nil {
			if s == nil {
				t.Fatal("Load returned neither a Spec nor an error")
			}
			again, err := Load(fsys)
			if err != nil || !reflect.DeepEqual(s, again) {
				t.Fatalf("a second Load differs: %v", err)
			}
			for _, h := range s.Hosts {
				if !validName(h.Name) || !h.Address.IsValid() {
					t.Errorf("valid Spec holds host %+v", h)
				}
			}
			checkAddresses(t, s)
			return
		}
		var list ErrorList
		if !errors.As(err, &list) {
			t.Fatalf("Load: %v (%T); want an ErrorList", err, err)
		}
		if s != nil || len(list) == 0 {
			t.Fatalf("Load = %v, %d errors", s, len(list))
		}
		lines := max(1, countLines(data))
		for _, e := range list {
			if e.File != "f.yaml" || e.Line < 1 || e.Line > lines || e.Msg == "" {
				t.Errorf("error %q outside the file (%d lines)", e.Error(), lines)
			}
		}
		if !slices.IsSortedFunc(list, func(a, b Error) int { return a.Line - b.Line }) {
			t.Errorf("errors not sorted:\n%v", list)
		}
	})
}

// checkAddresses fails t unless every guest of the valid Spec s has one or
// two unicast addresses, IPv4 first and of distinct families, and every
// balancer a unicast frontend whose family its source and target guests
// have.
func checkAddresses(t *testing.T, s *Spec) {
	for _, g := range s.Guests() {
		n := len(g.Addresses)
		if n == 0 || n > 2 || (n == 2 && (FamilyOf(g.Addresses[0]) != IPv4 || FamilyOf(g.Addresses[1]) != IPv6)) {
			t.Errorf("valid Spec holds guest %s with addresses %v", g.Name, g.Addresses)
		}
		for _, a := range g.Addresses {
			if specialKind(a) != "" {
				t.Errorf("valid Spec holds guest %s at %s address %s", g.Name, specialKind(a), a)
			}
		}
	}
	for _, b := range s.Balancers {
		if specialKind(b.Frontend.Address) != "" {
			t.Errorf("valid Spec holds balancer %s on %s frontend %s", b.Name, specialKind(b.Frontend.Address), b.Frontend.Address)
		}
		for _, g := range s.Guests() {
			if (g.Runs(b.Source) || g.Runs(b.Target)) && !g.Addr(b.Family()).IsValid() {
				t.Errorf("valid Spec: guest %s of balancer %s has no %s address", g.Name, b.Name, b.Family())
			}
		}
	}
}
