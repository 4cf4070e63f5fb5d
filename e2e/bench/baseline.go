package main

// baselineTree is the tree the before figures were measured on: main before
// same-host targets shared their WEIR-SEP chains, revisions were loaded
// incrementally and the agent's memory was cut.
const baselineTree = "ebfce87"

// baselineNote says how the before figures were taken, for the report.
const baselineNote = `The *before* column holds the figures of the tree ` + "`" + baselineTree + "`" + ` (main before
the same-host, incremental-loading and memory work), measured on this machine on 2026-11-29
under a load of about 1.5–3: the Go rows with the benchmark and testsupport's BigTree copied
into that tree (its test helper's command timeout raised to 20 minutes, as a 149 s restore
needs), the lab rows with ` + "`-bin`" + ` pointing at that tree's ` + "`bin/weir`" + ` and 5 changes per row.
Its agent never applied the tree with every target local: the first apply, a 149 s restore,
is cut off by the 60 s command timeout and retried forever.`

// baseline holds the before figures by Row.Key.
var baseline = map[string]string{
	"samehost-nft-local":     "149 s (61,062 nat chains, 161,061 rules); floor 3.13 s: 47.6×",
	"samehost-legacy-local":  "4.01 s; floor 638 ms: 6.28×",
	"samehost-nft-remote":    "4.95 s; floor 3.06 s: 1.62×",
	"samehost-legacy-remote": "875 ms; floor 576 ms: 1.52×",
	"change-local-dir":       "never applied (first apply cut off at 60 s)",
	"change-local-git":       "never applied (first apply cut off at 60 s)",
	"change-remote-dir":      "p50 1.68 s, max 1.93 s (n=5)",
	"change-remote-git":      "p50 1.80 s, max 1.85 s (n=5)",
	"rss-peak-local":         "never applied (first apply cut off at 60 s); 189.3 MiB in the last run it fitted",
	"rss-settled-local":      "never applied (first apply cut off at 60 s); 189.3 MiB in the last run it fitted",
	"rss-peak-remote":        "140.9 MiB",
	"rss-settled-remote":     "111.5 MiB (Go heap in use 87.3 MiB)",
}

// withBaseline fills in the before figure of each row that has one.
func withBaseline(rows []Row) []Row {
	for i := range rows {
		if b, ok := baseline[rows[i].Key]; ok {
			rows[i].Before = b
		}
	}
	return rows
}
