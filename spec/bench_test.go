package spec

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"maps"
	"strings"
	"testing"
	"testing/fstest"
)

// bigTree builds a valid tree of 100 hosts with 10 guests each (1,000 guests
// running 50 services) and nBalancers balancers, 100 per file, with weights.
func bigTree(nBalancers int) fstest.MapFS {
	fsys := fstest.MapFS{}
	var b strings.Builder
	for h := range 100 {
		fmt.Fprintf(&b, "---\napiVersion: weir/v1\nkind: Host\nmetadata:\n  name: host-%d\nspec:\n  address: 198.18.%d.%d\n  guests:\n", h, h/200, 1+h%200)
		for g := range 10 {
			fmt.Fprintf(&b, "    - name: guest-%d-%d\n      address: 198.19.%d.%d\n      services: [svc-%d, common]\n", h, g, h, 2+g, (h*10+g)%50)
		}
	}
	fsys["hosts.yaml"] = &fstest.MapFile{Data: []byte(b.String())}
	for f := 0; f*100 < nBalancers; f++ {
		b.Reset()
		for i := f * 100; i < min(nBalancers, (f+1)*100); i++ {
			src, dst := i%50, (i+1)%50
			// guest-H-G runs svc-((H*10+G)%50): guest-0-(dst) and guest-5-(dst) run dst when dst < 10.
			fmt.Fprintf(&b, "---\napiVersion: weir/v1\nkind: Balancer\nmetadata:\n  name: lb-%d\nspec:\n  source: svc-%d\n  target: common\n  frontend:\n    address: 198.20.0.%d\n    port: %d\n    protocol: tcp\n  targetPort: 8080\n  weights:\n    guest-%d-%d: %d\n",
				i, src, 1+i%200, 1000+i/200, dst/10, dst%10, 1+i%5)
		}
		fsys[fmt.Sprintf("balancers/%03d.yaml", f)] = &fstest.MapFile{Data: []byte(b.String())}
	}
	return fsys
}

// BenchmarkLoad measures loading a tree of 10,000 balancers (about 3 MB of
// YAML in 101 files).
func BenchmarkLoad(b *testing.B) {
	fsys := bigTree(10000)
	s, err := Load(fsys)
	if err != nil {
		b.Fatal(err)
	}
	if len(s.Balancers) != 10000 || len(s.Guests()) != 1000 {
		b.Fatalf("loaded %d balancers, %d guests", len(s.Balancers), len(s.Guests()))
	}
	size := 0
	for _, f := range fsys {
		size += len(f.Data)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(fsys); err != nil {
			b.Fatal(err)
		}
	}
}

// sumFS is a MapFS with its files' SHA-256 computed once, as an agent's
// snapshot has them.
type sumFS struct {
	fstest.MapFS
	sums map[string][sha256.Size]byte
}

func newSumFS(m fstest.MapFS) sumFS {
	s := sumFS{m, map[string][sha256.Size]byte{}}
	for name, f := range m {
		s.sums[name] = sha256.Sum256(f.Data)
	}
	return s
}

func (s sumFS) ContentSHA256(name string) ([sha256.Size]byte, bool) {
	sum, ok := s.sums[name]
	return sum, ok
}

// BenchmarkLoadOneChanged measures a Loader's load of the 10,000-balancer
// tree of BenchmarkLoad when one of its 101 files changed since the
// previous load (one balancer's weight): that file is decoded again, the
// checks across files run over all.
func BenchmarkLoadOneChanged(b *testing.B) {
	trees := [2]sumFS{newSumFS(bigTree(10000)), {}}
	changed := maps.Clone(trees[0].MapFS)
	f := *changed["balancers/050.yaml"]
	f.Data = bytes.Replace(f.Data, []byte("name: lb-5001\n"), []byte("name: lb-5001-b\n"), 1)
	changed["balancers/050.yaml"] = &f
	trees[1] = newSumFS(changed)
	var ld Loader
	for _, t := range trees {
		if _, err := ld.Load(t); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := ld.Load(trees[i%2]); err != nil {
			b.Fatal(err)
		}
	}
}
