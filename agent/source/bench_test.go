package source

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkDirWriteToChanged measures one file write until Watch calls
// changed: inotify delivery + the debounce quiet time + reading and hashing
// the tree. The debounce dominates; the 1ms case shows the rest.
func BenchmarkDirWriteToChanged(b *testing.B) {
	for _, debounce := range []time.Duration{DefaultDebounce, time.Millisecond} {
		b.Run(fmt.Sprintf("debounce=%v", debounce), func(b *testing.B) {
			root := b.TempDir()
			files := map[string]string{}
			for i := range 50 {
				files[fmt.Sprintf("hosts/h%02d.yaml", i)] = hostYAML
			}
			writeTree(b, root, files)
			d, err := NewDir(DirConfig{Dir: root, Debounce: debounce})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := d.Latest(context.Background()); err != nil {
				b.Fatal(err)
			}
			changed := make(chan struct{}, 1)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go d.Watch(ctx, func() { changed <- struct{}{} })
			// Make sure the watches are in place: a first edit must be seen.
			writeTree(b, root, map[string]string{"edit.yaml": "n: -1\n"})
			<-changed
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				writeTree(b, root, map[string]string{"edit.yaml": fmt.Sprintf("n: %d\n", i)})
				select {
				case <-changed:
				case <-time.After(5 * time.Second):
					b.Fatal("no notification within 5s")
				}
			}
		})
	}
}

// BenchmarkDirLatest measures reading and hashing a 50-file tree.
func BenchmarkDirLatest(b *testing.B) {
	root := b.TempDir()
	files := map[string]string{}
	for i := range 50 {
		files[fmt.Sprintf("hosts/h%02d.yaml", i)] = hostYAML
	}
	writeTree(b, root, files)
	d, err := NewDir(DirConfig{Dir: root})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Latest(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

func benchGit(b *testing.B) (*gitDaemon, *workTree, *Git) {
	d := startGitDaemon(b)
	d.newBare("specs.git")
	w := newWorkTree(b, d.env, d.url("specs.git"))
	files := map[string]string{}
	for i := range 50 {
		files[fmt.Sprintf("specs/hosts/h%02d.yaml", i)] = hostYAML
	}
	w.commit("first", files)
	w.push(false)
	g, err := NewGit(GitConfig{URL: d.url("specs.git"), Path: "specs", StateDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := g.Latest(context.Background()); err != nil {
		b.Fatal(err)
	}
	return d, w, g
}

// BenchmarkGitLatestAfterPush measures Latest after a push (the push itself
// is not timed): ls-remote + shallow fetch + signature-less checkout + reading
// the 50-file snapshot, against git daemon on loopback.
func BenchmarkGitLatestAfterPush(b *testing.B) {
	_, w, g := benchGit(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		want := w.commit("edit", map[string]string{"specs/edit.yaml": fmt.Sprintf("n: %d\n", i)})
		w.push(false)
		b.StartTimer()
		snap, err := g.Latest(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if snap.Revision != want {
			b.Fatalf("Latest() = %s; want %s", snap.Revision, want)
		}
	}
}

// BenchmarkGitLatestUnchanged measures Latest when the branch did not move:
// one ls-remote over git://, no fetch.
func BenchmarkGitLatestUnchanged(b *testing.B) {
	_, _, g := benchGit(b)
	fetches := g.Stats().Fetches
	b.ReportAllocs()
	for b.Loop() {
		if _, err := g.Latest(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	if got := g.Stats().Fetches; got != fetches {
		b.Fatalf("Latest fetched %d times with nothing pushed", got-fetches)
	}
}
