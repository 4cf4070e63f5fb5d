package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Verdict says whether a row met its target.
type Verdict int

// Verdicts.
const (
	NoTarget Verdict = iota // the row is a figure, not a target
	Met
	NotMet
	Failed // the measurement itself failed
)

func (v Verdict) String() string {
	switch v {
	case Met:
		return "yes"
	case NotMet:
		return "NO"
	case Failed:
		return "FAILED"
	default:
		return "—"
	}
}

// verdict is Met when ok, else NotMet.
func verdict(ok bool) Verdict {
	if ok {
		return Met
	}
	return NotMet
}

// Row is one line of the table: weir's figure beside its floor, peer or anchor.
type Row struct {
	Group string // the number of the suite's group of rows (the step title's "N.")
	// Key identifies a row across runs, for the before figures (see
	// baseline); empty for rows without one.
	Key    string
	Name   string
	Weir   string // weir's figure
	Before string // the figure of the tree a change started from, if recorded
	Anchor string // the floor, peer or anchor it is compared with
	Ratio  string // weir / anchor, or as labelled
	Target string // empty when the row has none
	Met    Verdict
	Cmd    string // how to reproduce it (run as root)
}

// StepResult is what one step produced.
type StepResult struct {
	Name, Title           string
	Took                  time.Duration
	LoadBefore, LoadAfter string
	Rows                  []Row
	Err                   string
}

// Machine describes where the suite ran.
type Machine struct {
	CPUs     int
	CPUModel string
	Kernel   string
	IPTables string // versions of the default and the legacy iptables
	Go       string
	Commit   string
}

// Report is a whole run.
type Report struct {
	Machine Machine
	Started time.Time
	Took    time.Duration
	RawDir  string
	Steps   []StepResult
}

// rows flattens the steps' rows; a failed step adds a FAILED row.
func (r *Report) rows() []Row {
	var rows []Row
	for _, s := range r.Steps {
		rows = append(rows, s.Rows...)
		if s.Err != "" {
			msg := s.Err
			if len(msg) > 160 {
				msg = msg[:160] + "…"
			}
			rows = append(rows, Row{Group: strings.SplitN(s.Title, ".", 2)[0], Name: s.Title, Weir: "error: " + msg, Met: Failed, Cmd: "go run ./e2e/bench -only " + s.Name})
		}
	}
	return rows
}

// WriteText prints the table for a terminal.
func (r *Report) WriteText(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ROW\tMEASURE\tWEIR\tBEFORE\tFLOOR / PEER / ANCHOR\tRATIO\tTARGET\tMET")
	for _, row := range r.rows() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", row.Group, row.Name, row.Weir, dash(row.Before), dash(row.Anchor), dash(row.Ratio), dash(row.Target), row.Met)
	}
	tw.Flush()
	met, notMet, failed := r.counts()
	fmt.Fprintf(w, "\ntargets met: %d, not met: %d, failed measurements: %d; took %v\n", met, notMet, failed, r.Took.Round(time.Second))
}

// failed reports whether a step ended with an error.
func (r *Report) failed() bool {
	return slices.ContainsFunc(r.Steps, func(s StepResult) bool { return s.Err != "" })
}

func (r *Report) counts() (met, notMet, failed int) {
	for _, row := range r.rows() {
		switch row.Met {
		case Met:
			met++
		case NotMet:
			notMet++
		case Failed:
			failed++
		}
	}
	return
}

func dash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// mdCell escapes a table cell.
func mdCell(s string) string {
	return strings.ReplaceAll(dash(s), "|", `\|`)
}

// WriteMarkdown writes BENCHMARKS.md.
func (r *Report) WriteMarkdown(w io.Writer) {
	m := r.Machine
	fmt.Fprintf(w, "# weir benchmarks\n\n")
	fmt.Fprintf(w, "Written by `make bench` (`go run ./e2e/bench`, as root); README.md's Performance section sums it up.\n")
	fmt.Fprintf(w, "Every figure below was measured in one run on the machine described here; rerun it to get yours.\n\n")
	fmt.Fprintf(w, "## Machine and run\n\n")
	fmt.Fprintf(w, "| | |\n|---|---|\n")
	fmt.Fprintf(w, "| date | %s (took %v) |\n", r.Started.UTC().Format("2006-01-02 15:04 MST"), r.Took.Round(time.Second))
	fmt.Fprintf(w, "| CPUs (nproc) | %d |\n", m.CPUs)
	fmt.Fprintf(w, "| CPU model | %s |\n", mdCell(m.CPUModel))
	fmt.Fprintf(w, "| kernel | %s |\n", mdCell(m.Kernel))
	fmt.Fprintf(w, "| iptables | %s |\n", mdCell(m.IPTables))
	fmt.Fprintf(w, "| Go | %s |\n", mdCell(m.Go))
	fmt.Fprintf(w, "| weir tree | %s |\n", mdCell(m.Commit))
	fmt.Fprintf(w, "\nLoad: other work may have run beside the suite. The 1/5/15-minute load averages\n")
	fmt.Fprintf(w, "before and after every step are in the last table, so a figure taken under load can be\n")
	fmt.Fprintf(w, "told apart.\n\n")
	fmt.Fprintf(w, "## Results\n\n")
	fmt.Fprintf(w, "| row | measure | weir | before | floor / peer / anchor | ratio | target | met? |\n|---|---|---|---|---|---|---|---|\n")
	for _, row := range r.rows() {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", mdCell(row.Group), mdCell(row.Name), mdCell(row.Weir), mdCell(row.Before), mdCell(row.Anchor), mdCell(row.Ratio), mdCell(row.Target), row.Met)
	}
	met, notMet, failed := r.counts()
	fmt.Fprintf(w, "\nTargets met: %d; not met: %d; failed measurements: %d.\n", met, notMet, failed)
	var missed []string
	for _, row := range r.rows() {
		if row.Met == NotMet || row.Met == Failed {
			missed = append(missed, fmt.Sprintf("- row %s, %s: %s (target %s)", row.Group, row.Name, row.Weir, dash(row.Target)))
		}
	}
	if len(missed) > 0 {
		fmt.Fprintf(w, "\nNot met or not measured:\n\n%s\n", strings.Join(missed, "\n"))
	}
	fmt.Fprintf(w, "\n%s\n", baselineNote)
	fmt.Fprintf(w, "\n## Anchors\n\n%s\n", anchorsText)
	fmt.Fprintf(w, "\n## How each row was measured\n\n%s\n", methodText)
	fmt.Fprintf(w, "\n## Reproducing a row\n\nAs root, from the repository root (`make build` first for the lab rows):\n\n")
	fmt.Fprintf(w, "| row | measure | command |\n|---|---|---|\n")
	for _, row := range r.rows() {
		fmt.Fprintf(w, "| %s | %s | `%s` |\n", mdCell(row.Group), mdCell(row.Name), strings.ReplaceAll(row.Cmd, "|", `\|`))
	}
	fmt.Fprintf(w, "\n## Steps\n\n| step | took | load before | load after |\n|---|---|---|---|\n")
	for _, s := range r.Steps {
		fmt.Fprintf(w, "| %s | %v | %s | %s |\n", s.Name, s.Took.Round(100*time.Millisecond), s.LoadBefore, s.LoadAfter)
	}
}

// anchorsText lists the outside figures the table compares with.
const anchorsText = `- **Per-rule programming** (row 3): a library such as go-iptables runs one ` + "`iptables`" + ` process
  per rule, about 4.8 ms a rule, against 58 ms for one 1,000-rule ` + "`iptables-restore`" + `. The peer
  is measured here in the same run with go-iptables' ` + "`Append`" + ` on 2,000 rules.
- **kube-proxy partial sync** (row 2): since Kubernetes 1.27 kube-proxy's iptables mode
  restores only the service chains that changed, but still rewrites its whole
  ` + "`KUBE-SERVICES`" + ` dispatch chain, rate-limited by ` + "`--iptables-min-sync-period`" + ` (1 s) with a
  full resync every ` + "`--iptables-sync-period`" + ` (30 s). weir's change rows write only the changed
  balancers' chains (plus the dispatch leaves that point to them), beside a raw restore of that same text.
- **GitOps polling** (row 4): Argo CD refreshes an application every 120–180 s by default
  (` + "`timeout.reconciliation`" + ` 120 s plus jitter); Flux's GitRepository ` + "`interval`" + ` is
  typically 1 m or more. Both also accept webhooks.
- **memberlist failure detection** (row 5): the LAN profile's suspicion timeout is 4–24 s
  at 10 nodes (SuspicionMult 4 × log10(n) × 1 s probe interval, up to 6× that); the
  table computes the typical crash→dead time for the measured cluster size from
  memberlist's own ` + "`DefaultLANConfig`" + `. Serf's convergence model puts a gossiped
  message at 99.99 % of 100–1,000 nodes in about 2 s.
- **Per-packet cost** (row 7): a linear dispatch chain (kube-proxy's iptables mode) is
  O(n) per new connection; on this kind of machine p50 connect goes from about 75 µs with
  1 balancer to about 325 µs with 10,000 on the nft backend (about 145 µs legacy).`

// methodText explains what each row measures.
const methodText = `1. **Assign + Render**: ` + "`render.BenchmarkAssignRender`" + `: a random spec of 100 hosts × 10
   guests where every host sets every balancer (5 weighted targets each); one op is the
   cluster-wide ` + "`Assign`" + ` plus one host's ` + "`Render`" + `. The ratio is the time per balancer
   against the 1k row's (1.00 = linear growth). Spec loading (` + "`spec.BenchmarkLoad`" + `, 10k balancers
   in 101 files) is listed beside it: it is the other per-revision cost.
2. **Apply**: ` + "`netfilter.BenchmarkApplyFull`" + ` applies n balancers × 5 targets in a fresh namespace,
   then ` + "`iptables-restore --noflush`" + ` of the same text in another fresh namespace (the floor).
   ` + "`BenchmarkApplyChange`" + ` changes 1 or 100 balancers on a 10k host (a partial apply), and
   restores the same chains raw as the floor. ` + "`BenchmarkDriftCheck`" + ` is the steady-state
   cost of resync (canary checks, a full compare every 10th) as a share of one core.
   ` + "`BenchmarkApplySameHost`" + ` is the first full apply of host-a of testsupport's BigTree
   (10,000 balancers × 5 targets, one source guest on host-a) with every target one of host-a's
   own 50 guests (hairpin: WEIR-SEP chains) or every target on host-b, beside the *flat
   floor*: a raw restore of the flattest ruleset balancing the same flows (one dispatch chain,
   one chain per balancer with its statistic DNAT rules, no source match, no masquerading),
   each in a fresh namespace, 3 ops alternating. *End to end* (` + "`change-e2e`" + `): one real agent on
   BigTree (plus host-b's when the targets are there), ` + "`--settle-time 1s`" + `, default backend
   (nft); one balancer's weight in one of its 101 files changes, 9 times, a second apart; time
   runs from the rename of the saved file (dir mode) or from the start of ` + "`git push`" + ` followed
   by ` + "`POST /refresh`" + ` (Git mode) until the agent's ` + "`GET /status`" + ` (polled every 25 ms) shows the
   new revision applied.
3. **Peer**: ` + "`netfilter.BenchmarkPerRule`" + `: 2,000 DNAT rules appended one ` + "`iptables`" + ` process
   each through go-iptables, against one ` + "`iptables-restore`" + ` of the same rules (weir's way).
4. **Convergence**: 10 real ` + "`weir agent`" + ` processes, one per host namespace of a weir/e2e/lab
   network, gossiping with a shared AES key. Each agent's API (` + "`GET /status`" + `, the JSON
   ` + "`weir status -o json`" + ` prints) is polled every 25 ms over a kept-alive connection made
   inside its namespace. Each mode has two rows: until the *last* agent reported the new
   revision as its own applied one ("applied"), and until the last agent's status said
   ` + "`converged: true`" + ` with all 10 members alive on it (the measure the target is on).
   *Dir mode*: each agent watches its own directory; the change (one weight)
   is written to all 10 (temp file + rename) and timed from the first write. *Git mode*:
   the specs live in a real ` + "`git daemon`" + ` namespace; time runs from the start of ` + "`git push`" + `.
   With *webhook + hints*, ` + "`POST /refresh`" + ` goes to one agent right after the push and the
   others fetch on its gossiped hint; *poll + hints* has no webhook (the first agent whose
   jittered ` + "`--poll 15s`" + ` fires hints the rest); *poll only* runs the 10 agents without
   gossip between them (each its own ` + "`--cluster`" + `, no ` + "`--join`" + `), so each one's own poll is
   all there is. In the two poll modes each push waits a random 0–15 s first, so it lands at
   a random phase of the agents' timers.
5. **Gossip**: ` + "`cluster.TestSimulation`" + `: 100 real memberlist nodes on loopback, unmodified
   LAN profile; one node hints a revision, then one node crashes.
6. **Memory**: ` + "`VmRSS`" + ` and ` + "`VmHWM`" + ` (peak) from ` + "`/proc/PID/status`" + ` of the real agent
   process. *Idle*: examples/basic, 3 agents (` + "`--dir`" + `), read 30 s after they converged; the
   figure is the largest of the three. *10k*: one agent whose host sets all 10,000
   balancers of testsupport's BigTree (100 hosts, 5 alive targets each; the row gives the rule
   count the agent reports), started on the tree with ` + "`--settle-time 1s`" + `, with every
   target on its own host, then on host-b (whose agent runs too and sets nothing); VmHWM over
   the whole run, and VmRSS 40 s after it converged (a resync included). The Go heap in use
   comes from the agent's ` + "`/metrics`" + `.
7. **Per-packet cost**: ` + "`render.BenchmarkDispatchConnect`" + `: TCP connect latency through
   nat OUTPUT in a namespace (default iptables backend) to a frontend DNATed to a local
   listener, 16 frontends spread over the sorted order, with 1 balancer and with 10,000 in
   tree and in linear dispatch.
8. **Health checks**: a lab of 3 hosts (examples/basic, agents in ` + "`--dir`" + ` mode) with a
   tcp health check on the balancer; orders-2's server process is killed and restarted 5
   times while its agent runs, timing until host-a's nat rules leave it out and take it back
   (polled every 20 ms), with ` + "`interval: 1s`" + ` and with the defaults. Prober CPU:
   ` + "`health.BenchmarkProbeCPU`" + ` probes 1,000 loopback endpoints every 2 s beside
   ` + "`BenchmarkDialFloor`" + `, the bare dial loop at the same rate. Gossip:
   ` + "`cluster.BenchmarkHealthGossip`" + ` runs 10 LAN-profile nodes on loopback with 1,000
   check ids per host and sums memberlist's own counters of bytes sent (UDP and TCP) over
   30 s, while failing checks change; the lag is how long the slowest change took to be
   held by every node.`

// probeMachine describes this machine.
func probeMachine(ctx context.Context) Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	var ipt []string
	for _, tool := range []string{"iptables", "iptables-legacy"} {
		if out, err := exec.CommandContext(ctx, tool, "--version").Output(); err == nil {
			ipt = append(ipt, fmt.Sprintf("`%s`: %s", tool, strings.TrimSpace(string(out))))
		}
	}
	m.IPTables = strings.Join(ipt, "; ")
	if out, err := exec.CommandContext(ctx, "git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
		if st, err := exec.CommandContext(ctx, "git", "status", "--porcelain").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
			m.Commit += " with uncommitted changes"
		}
	}
	return m
}
