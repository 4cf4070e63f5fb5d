package main

import (
	"strings"
	"testing"
	"time"

	"weir/internal/testsupport"
)

func TestReportGolden(t *testing.T) {
	rep := &Report{
		Machine: Machine{CPUs: 2, CPUModel: "Test CPU", Kernel: "6.1.0", IPTables: "`iptables`: iptables v1.8.9 (nf_tables)", Go: "go1.26", Commit: "abc1234"},
		Started: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		Took:    17*time.Minute + 3*time.Second,
		Steps: []StepResult{
			{Name: "apply-full", Title: "2. full apply", Took: 90 * time.Second, LoadBefore: "1.00 0.50 0.20", LoadAfter: "1.90 0.90 0.40",
				Rows: []Row{
					{Group: "2", Name: "full apply, 1k balancers, nft", Weir: "61 ms", Anchor: "raw iptables-restore 55 ms", Ratio: "1.11×", Target: "≤ 1.2× floor", Met: Met, Cmd: goCmd(benchArgs("./reconcile", "^BenchmarkApplyFull$", "2x", 1)...)},
					{Group: "2", Name: "full apply, 10k balancers, nft", Weir: "900 ms", Before: "9.0 s", Anchor: "raw iptables-restore 600 ms", Ratio: "1.50×", Target: "≤ 1.2× floor", Met: NotMet, Cmd: "go test …"},
				}},
			{Name: "gossip", Title: "5. gossip | pipes", Took: time.Minute, LoadBefore: "1", LoadAfter: "2", Err: "exit status 1: boom"},
		},
	}
	var text, md strings.Builder
	rep.WriteText(&text)
	rep.WriteMarkdown(&md)
	testsupport.Golden(t, "report.txt", []byte(text.String()))
	testsupport.Golden(t, "report.md", []byte(md.String()))
	if !strings.Contains(md.String(), "| 5 | 5. gossip \\| pipes | error: exit status 1: boom | — |") {
		t.Errorf("markdown lacks the escaped FAILED row of the failed step")
	}
	if met, notMet, failed := rep.counts(); met != 1 || notMet != 1 || failed != 1 {
		t.Errorf("counts() = %d, %d, %d; want 1, 1, 1", met, notMet, failed)
	}
}

func TestWithBaseline(t *testing.T) {
	rows := withBaseline([]Row{{Key: "samehost-nft-local"}, {Key: "no-such-row"}, {}})
	if rows[0].Before != baseline["samehost-nft-local"] || rows[1].Before != "" || rows[2].Before != "" {
		t.Errorf("withBaseline = %q, %q, %q; want the recorded figure, then none", rows[0].Before, rows[1].Before, rows[2].Before)
	}
}
