package main

import (
	"bufio"
	"fmt"
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

// SimFigures are the percentiles TestSimulation logs for one measurement.
type SimFigures struct {
	Nodes              int
	P50, P90, P99, Max time.Duration
}

var (
	simHintRE  = regexp.MustCompile(`hint to (\d+) nodes: p50 (\S+), p90 (\S+), p99 (\S+), max (\S+?);`)
	simDeathRE = regexp.MustCompile(`crash seen dead by (\d+) nodes: p50 (\S+), p90 (\S+), p99 (\S+), max (\S+?) \(`)
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
