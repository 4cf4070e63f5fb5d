package e2e

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"weir/e2e/lab"
)

// weirLines keeps the lines of an iptables-save that weir owns: its chains,
// their rules, and jumps into them.
func weirLines(lines []string) []string {
	var out []string
	for _, l := range lines {
		if strings.Contains(l, "WEIR-") {
			out = append(out, l)
		}
	}
	return out
}

// foreignLines keeps every line weir does not own.
func foreignLines(lines []string) []string {
	var out []string
	for _, l := range lines {
		if !strings.Contains(l, "WEIR-") {
			out = append(out, l)
		}
	}
	return out
}

// duplicates returns the "-A" lines that occur more than once.
func duplicates(lines []string) []string {
	seen := map[string]int{}
	var dups []string
	for _, l := range lines {
		if strings.HasPrefix(l, "-A ") {
			seen[l]++
			if seen[l] == 2 {
				dups = append(dups, l)
			}
		}
	}
	return dups
}

// chiSquare is Pearson's statistic of observed counts against expected shares.
func chiSquare(counts map[string]int, shares map[string]float64) float64 {
	total := 0
	for _, c := range counts {
		total += c
	}
	var x2 float64
	for name, p := range shares {
		exp := p * float64(total)
		d := float64(counts[name]) - exp
		x2 += d * d / exp
	}
	// Replies from a name with no expected share make the fit impossible.
	for name := range counts {
		if _, ok := shares[name]; !ok {
			return math.Inf(1)
		}
	}
	return x2
}

// chi2Crit001 are the chi-square critical values at p = 0.001 by degrees of
// freedom: a correct balancer fails the check once in a thousand runs.
var chi2Crit001 = map[int]float64{1: 10.828, 2: 13.816, 3: 16.266}

// assertSplit checks that r has no failures and fits shares within the chi-square bound.
func assertSplit(t *testing.T, what string, r lab.Result, shares map[string]float64) {
	t.Helper()
	if r.Failures() != 0 {
		t.Errorf("%s: %v; want no failures", what, r)
	}
	x2 := chiSquare(r.Counts(), shares)
	crit := chi2Crit001[len(shares)-1]
	t.Logf("%s: %v, chi-square %.2f (bound %.2f)", what, r, x2, crit)
	if x2 > crit {
		t.Errorf("%s: split %v does not fit shares %v: chi-square %.2f > %.2f", what, r.Counts(), shares, x2, crit)
	}
}

// median returns the median of ds.
func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// figure logs a measured figure in a form that is easy to grep from -v output.
func figure(t *testing.T, name string, d time.Duration, detail string) {
	t.Helper()
	t.Logf("FIGURE %s: %v %s", name, d.Round(time.Millisecond), detail)
}

func containsAddr(lines []string, addr string) bool {
	for _, l := range lines {
		if strings.Contains(l, addr) {
			return true
		}
	}
	return false
}

func TestChiSquare(t *testing.T) {
	shares := map[string]float64{"a": 0.25, "b": 0.75}
	tests := []struct {
		counts map[string]int
		want   float64
	}{
		{map[string]int{"a": 250, "b": 750}, 0},
		{map[string]int{"a": 300, "b": 700}, 50.0*50/250 + 50.0*50/750},
		{map[string]int{"a": 250, "b": 740, "c": 10}, math.Inf(1)},
	}
	for _, tt := range tests {
		if got := chiSquare(tt.counts, shares); math.Abs(got-tt.want) > 1e-9 && !(math.IsInf(got, 1) && math.IsInf(tt.want, 1)) {
			t.Errorf("chiSquare(%v) = %v; want %v", tt.counts, got, tt.want)
		}
	}
}

// foreignTables are the tables whose foreign rules the foreign-rule tests
// watch.
var foreignTables = []string{"nat", "filter", "mangle"}

// foreignState is every host's foreignTables as one command family reads
// them, taken after the foreign rules were set up and before weir ran.
type foreignState struct {
	cmd      string // "iptables" or "ip6tables"
	read     func(h *lab.Host, table string) []string
	pristine map[string]map[string][]string // host → table → lines
}

// setUpForeign runs every rule of setup with cmd on every host and records
// the tables read then.
func (e *env) setUpForeign(cmd string, setup [][]string, read func(h *lab.Host, table string) []string) *foreignState {
	e.t.Helper()
	fs := &foreignState{cmd: cmd, read: read, pristine: map[string]map[string][]string{}}
	for _, h := range e.lab.Hosts {
		for _, args := range setup {
			if _, err := e.lab.Exec(e.ctx, h.NS, cmd, args...); err != nil {
				e.t.Fatal(err)
			}
		}
		fs.pristine[h.Name] = map[string][]string{}
		for _, tb := range foreignTables {
			fs.pristine[h.Name][tb] = read(h, tb)
		}
	}
	return fs
}

// check reports every host's table whose foreign rules are no longer the
// pristine ones, at stage.
func (fs *foreignState) check(t *testing.T, hosts []*lab.Host, stage string) {
	t.Helper()
	for _, h := range hosts {
		for _, tb := range foreignTables {
			if got, want := foreignLines(fs.read(h, tb)), fs.pristine[h.Name][tb]; !slices.Equal(got, want) {
				t.Errorf("%s: %s %s %s foreign rules changed:\ngot  %q\nwant %q", stage, h.Name, fs.cmd, tb, got, want)
			}
		}
	}
}

// checkPristine reports host h's tables that are not exactly pristine
// (after weir cleanup: no rule of weir's left, every foreign one kept).
func (fs *foreignState) checkPristine(t *testing.T, h *lab.Host) {
	t.Helper()
	for _, tb := range foreignTables {
		if got, want := fs.read(h, tb), fs.pristine[h.Name][tb]; !slices.Equal(got, want) {
			t.Errorf("after weir cleanup %s %s %s:\ngot  %q\nwant %q", h.Name, fs.cmd, tb, got, want)
		}
	}
}
