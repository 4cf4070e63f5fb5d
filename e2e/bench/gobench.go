package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// BenchLine is one result line of `go test -bench`:
// "BenchmarkX/sub-2  3  123 ns/op  4.5 floor-ms  12 B/op  1 allocs/op".
type BenchLine struct {
	Name   string // without the -GOMAXPROCS suffix
	N      int64
	Values map[string]float64 // by unit
}

// Get returns the value for unit and whether the line had it.
func (b BenchLine) Get(unit string) (float64, bool) {
	v, ok := b.Values[unit]
	return v, ok
}

var benchRE = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+(.+)$`)

// ParseBench returns the result lines of go test -bench output by name; a
// name seen more than once (-count > 1) gets the median of each unit.
func ParseBench(out string) map[string]BenchLine {
	runs := map[string][]BenchLine{}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := benchRE.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		n, err := strconv.ParseInt(m[2], 10, 64)
		if err != nil {
			continue
		}
		f := strings.Fields(m[3])
		if len(f)%2 != 0 {
			continue
		}
		vals := map[string]float64{}
		ok := true
		for i := 0; i < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				ok = false
				break
			}
			vals[f[i+1]] = v
		}
		if ok {
			runs[m[1]] = append(runs[m[1]], BenchLine{Name: m[1], N: n, Values: vals})
		}
	}
	res := map[string]BenchLine{}
	for name, lines := range runs {
		med := BenchLine{Name: name, N: lines[len(lines)-1].N, Values: map[string]float64{}}
		for unit := range lines[0].Values {
			var vs []float64
			for _, l := range lines {
				if v, ok := l.Values[unit]; ok {
					vs = append(vs, v)
				}
			}
			slices.Sort(vs)
			med.Values[unit] = vs[len(vs)/2]
		}
		res[name] = med
	}
	return res
}

// goTest runs `go <args>` from the repository root, keeps its combined output
// in the raw dir as <name>.txt and returns it.
func (s *suite) goTest(ctx context.Context, name string, args ...string) (string, error) {
	out, err := runCmd(ctx, filepath.Join(s.rawDir, name+".txt"), "go", args...)
	if err != nil {
		return out, fmt.Errorf("go %s: %w (output in %s)", strings.Join(args, " "), err, filepath.Join(s.rawDir, name+".txt"))
	}
	return out, nil
}

// runCmd runs a command, writing its combined output to logPath (when not
// empty) and returning it.
func runCmd(ctx context.Context, logPath, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if logPath != "" {
		header := fmt.Sprintf("# %s %s\n# %s\n", name, shellJoin(args), time.Now().Format(time.RFC3339))
		if werr := os.WriteFile(logPath, append([]byte(header), out...), 0o644); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		tail := string(out)
		if len(tail) > 2000 {
			tail = "…" + tail[len(tail)-2000:]
		}
		return string(out), fmt.Errorf("%w: %s", err, strings.TrimSpace(tail))
	}
	return string(out), nil
}

// shellJoin quotes args the way a user would type them in a shell.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " '\"$^*?[]|&;<>()\\") {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		} else {
			q[i] = a
		}
	}
	return strings.Join(q, " ")
}

// goCmd is the user-facing command line of go args.
func goCmd(args ...string) string { return "go " + shellJoin(args) }

// SimFigures are the percentiles TestSimulation logs for one measurement.
type SimFigures struct {
	Nodes              int
	P50, P90, P99, Max time.Duration
}

var (
	simHintRE  = regexp.MustCompile(`hint to (\d+) nodes: p50 (\S+), p90 (\S+), p99 (\S+), max (\S+?);`)
	simDeathRE = regexp.MustCompile(`crash seen dead by (\d+) nodes: p50 (\S+), p90 (\S+), p99 (\S+), max (\S+?) \(`)
	simStartRE = regexp.MustCompile(`(\d+) nodes started in (\S+); full membership everywhere (\S+) later`)
)

// ParseSim reads the hint and death figures from TestSimulation's -v output.
func ParseSim(out string) (hint, death SimFigures, err error) {
	parse := func(re *regexp.Regexp, what string) (SimFigures, error) {
		m := re.FindStringSubmatch(out)
		if m == nil {
			return SimFigures{}, fmt.Errorf("no %s figures in TestSimulation output", what)
		}
		var f SimFigures
		f.Nodes, _ = strconv.Atoi(m[1])
		for i, p := range []*time.Duration{&f.P50, &f.P90, &f.P99, &f.Max} {
			d, err := time.ParseDuration(m[i+2])
			if err != nil {
				return SimFigures{}, fmt.Errorf("parsing %s %q: %w", what, m[i+2], err)
			}
			*p = d
		}
		return f, nil
	}
	if hint, err = parse(simHintRE, "hint"); err != nil {
		return
	}
	death, err = parse(simDeathRE, "death")
	return
}
