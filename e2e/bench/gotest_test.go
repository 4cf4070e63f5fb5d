package main

import (
	"testing"
)

func TestShellJoin(t *testing.T) {
	got := goCmd(benchArgs("./reconcile", "^BenchmarkApplyFull$", "2x", 1)...)
	want := `go test ./reconcile -run '^$' -bench '^BenchmarkApplyFull$' -benchmem -benchtime 2x -count 1 -timeout 20m`
	if got != want {
		t.Errorf("goCmd = %s\nwant  %s", got, want)
	}
}
