package render_test

import (
	"math"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"weir/reconcile/render"
)

// The packet tracer walks a rendered Ruleset the way netfilter would for the
// first packet of a new connection from a guest through its host:
//
//	nat PREROUTING → filter FORWARD → nat POSTROUTING
//
// It parses every owned rule (failing the test on any token it does not
// understand, so rules it cannot judge are never skipped silently), follows
// jumps into owned chains and returns from them, matches -s/-d prefixes, -p,
// --dport ranges, -m mark and --ctstate NEW, and branches on statistic random
// probabilities, multiplying them along each path. statistic nth rules keep
// per-rule counters across traces with the kernel's exact semantics, so
// consecutive traces are consecutive connections.

// tracePacket is the first packet of a connection.
type tracePacket struct {
	src, dst netip.Addr
	proto    string
	dport    uint16
}

// tracePath is one way a packet can go, with its probability.
type tracePath struct {
	prob    float64
	verdict string // "DNAT", "REJECT" or "" (no owned rule decided)
	to      string // DNAT destination
	reject  string // --reject-with
	masq    bool   // masqueraded in POSTROUTING
	mark    uint32 // packet mark after nat PREROUTING
	// rules is the number of owned rules evaluated in nat PREROUTING;
	// dispatch counts those in the dispatch tree (or the linear root).
	rules, dispatch int
}

type traceRule struct {
	raw            string
	src, dst       netip.Prefix
	proto          string
	module         map[string]bool
	dportLo        int
	dportHi        int
	markV, markM   uint32
	hasMark        bool
	ctNew          bool
	mode           string
	prob           float64
	every, packet  int
	target         string
	toDest         string
	xmarkV, xmarkM uint32
	rejectWith     string
}

// tracer holds the parsed rules of one Ruleset and the nth counters.
type tracer struct {
	t      testing.TB
	chains map[string]map[string][]*traceRule // table → chain → rules (owned and built-in jumps)
	nth    map[*traceRule]int
}

type traceState struct {
	prob            float64
	mark            uint32
	dst             netip.Addr
	dport           uint16
	rules, dispatch int
}

// newTracer parses rs, failing t on malformed rules, bad chain names, or
// jumps to chains that do not exist (as iptables-restore would).
func newTracer(t testing.TB, rs *render.Ruleset) *tracer {
	t.Helper()
	tr := &tracer{t: t, chains: map[string]map[string][]*traceRule{}, nth: map[*traceRule]int{}}
	for _, tb := range rs.Tables {
		m := map[string][]*traceRule{}
		tr.chains[tb.Name] = m
		for _, c := range tb.Chains {
			if !strings.HasPrefix(c.Name, "WEIR-") || len(c.Name) > 28 {
				t.Fatalf("table %s: chain name %q is not WEIR-… of at most 28 characters", tb.Name, c.Name)
			}
			if _, dup := m[c.Name]; dup {
				t.Fatalf("table %s: chain %s declared twice", tb.Name, c.Name)
			}
			m[c.Name] = []*traceRule{}
			for _, r := range c.Rules {
				m[c.Name] = append(m[c.Name], tr.parse(r))
			}
		}
		for _, j := range tb.Jumps {
			if strings.HasPrefix(j.Chain, "WEIR-") {
				t.Fatalf("table %s: jump from owned chain %s", tb.Name, j.Chain)
			}
			r := tr.parse(strings.Join(j.Rule, " "))
			if !slices.Contains(j.Rule, "--comment") {
				t.Errorf("table %s: jump %v carries no comment", tb.Name, j.Rule)
			}
			m[j.Chain] = append(m[j.Chain], r)
		}
	}
	// nf_tables refuses a ruleset where a base chain reaches more than
	// render.MaxChainDepth nested chains; so does the tracer.
	for tb, m := range tr.chains {
		memo := map[string]int{}
		var depth func(chain string, seen int) int
		depth = func(chain string, seen int) int {
			if seen > 64 {
				t.Fatalf("table %s: jump loop through %s", tb, chain)
			}
			if d, ok := memo[chain]; ok {
				return d
			}
			d := 0
			for _, r := range m[chain] {
				if strings.HasPrefix(r.target, "WEIR-") {
					if _, ok := m[r.target]; ok {
						d = max(d, 1+depth(r.target, seen+1))
					}
				}
			}
			memo[chain] = d
			return d
		}
		for c := range m {
			if !strings.HasPrefix(c, "WEIR-") {
				if d := depth(c, 0); d > render.MaxChainDepth {
					t.Fatalf("table %s: %s reaches %d nested chains; nf_tables allows %d", tb, c, d, render.MaxChainDepth)
				}
			}
		}
	}
	for tb, m := range tr.chains {
		for c, rules := range m {
			for _, r := range rules {
				if strings.HasPrefix(r.target, "WEIR-") {
					if _, ok := m[r.target]; !ok {
						t.Fatalf("table %s chain %s: jump to missing chain %s", tb, c, r.target)
					}
				}
			}
		}
	}
	return tr
}

// tokens splits a rule into arguments, honouring double quotes.
func tokens(rule string) []string {
	var out []string
	var cur strings.Builder
	in, quoted := false, false
	for i := 0; i < len(rule); i++ {
		c := rule[i]
		switch {
		case quoted && c == '\\' && i+1 < len(rule):
			i++
			cur.WriteByte(rule[i])
		case c == '"':
			quoted, in = !quoted, true
		case c == ' ' && !quoted:
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if in {
		out = append(out, cur.String())
	}
	return out
}

func (tr *tracer) parse(raw string) *traceRule {
	t := tr.t
	t.Helper()
	r := &traceRule{raw: raw, module: map[string]bool{}, dportLo: -1}
	args := tokens(raw)
	next := func(i *int) string {
		*i++
		if *i >= len(args) {
			t.Fatalf("rule %q: %s needs a value", raw, args[*i-1])
		}
		return args[*i]
	}
	num := func(s string) int {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("rule %q: bad number %q", raw, s)
		}
		return n
	}
	hex := func(s string) uint32 {
		n, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 32)
		if err != nil || !strings.HasPrefix(s, "0x") {
			t.Fatalf("rule %q: bad mark %q", raw, s)
		}
		return uint32(n)
	}
	valMask := func(s string) (uint32, uint32) {
		v, m, ok := strings.Cut(s, "/")
		if !ok {
			t.Fatalf("rule %q: mark %q without mask", raw, s)
		}
		return hex(v), hex(m)
	}
	for i := 0; i < len(args); i++ {
		switch a := args[i]; a {
		case "-s", "-d":
			p, err := netip.ParsePrefix(next(&i))
			if err != nil || p.Masked() != p {
				t.Fatalf("rule %q: bad or unmasked prefix %q", raw, args[i])
			}
			if a == "-s" {
				r.src = p
			} else {
				r.dst = p
			}
		case "-p":
			r.proto = next(&i)
		case "-m":
			m := next(&i)
			switch m {
			case "comment", "statistic", "mark", "conntrack":
			case "tcp", "udp", "sctp":
				if r.proto != m {
					t.Fatalf("rule %q: -m %s without -p %s before it", raw, m, m)
				}
			default:
				t.Fatalf("rule %q: unknown match module %q", raw, m)
			}
			r.module[m] = true
		case "--comment":
			next(&i)
		case "--dport":
			if !r.module[r.proto] {
				t.Fatalf("rule %q: --dport without -m %s", raw, r.proto)
			}
			lo, hi, isRange := strings.Cut(next(&i), ":")
			r.dportLo = num(lo)
			r.dportHi = r.dportLo
			if isRange {
				r.dportHi = num(hi)
			}
			if r.dportLo > r.dportHi || r.dportHi > 65535 {
				t.Fatalf("rule %q: bad port range", raw)
			}
		case "--mode":
			r.mode = next(&i)
		case "--probability":
			p, err := strconv.ParseFloat(next(&i), 64)
			if err != nil || p < 0 || p > 1 {
				t.Fatalf("rule %q: bad probability", raw)
			}
			r.prob = p
		case "--every":
			r.every = num(next(&i))
		case "--packet":
			r.packet = num(next(&i))
		case "--mark":
			r.markV, r.markM = valMask(next(&i))
			r.hasMark = true
		case "--ctstate":
			if s := next(&i); s != "NEW" {
				t.Fatalf("rule %q: ctstate %s not supported", raw, s)
			}
			r.ctNew = true
		case "-j":
			r.target = next(&i)
		case "--to-destination":
			r.toDest = next(&i)
			if _, err := netip.ParseAddrPort(r.toDest); err != nil {
				t.Fatalf("rule %q: bad DNAT destination: %v", raw, err)
			}
		case "--set-xmark":
			r.xmarkV, r.xmarkM = valMask(next(&i))
		case "--reject-with":
			r.rejectWith = next(&i)
			if r.rejectWith == "tcp-reset" && r.proto != "tcp" {
				t.Fatalf("rule %q: tcp-reset needs -p tcp", raw)
			}
		default:
			t.Fatalf("rule %q: token %q not understood by the tracer", raw, a)
		}
	}
	switch {
	case r.target == "":
		t.Fatalf("rule %q: no -j target", raw)
	case r.target == "DNAT" && (r.toDest == "" || r.proto == ""):
		t.Fatalf("rule %q: DNAT with a port needs -p and --to-destination", raw)
	case r.module["statistic"] && r.mode == "random" && r.prob == 0:
		t.Fatalf("rule %q: random mode without probability", raw)
	case r.module["statistic"] && r.mode == "nth" && r.every < 1:
		t.Fatalf("rule %q: nth mode without --every", raw)
	case r.module["statistic"] && r.mode != "random" && r.mode != "nth":
		t.Fatalf("rule %q: statistic mode %q", raw, r.mode)
	}
	return r
}

// trace follows the first packet of one connection and returns every path it
// can take. The probabilities of the paths sum to 1.
func (tr *tracer) trace(p tracePacket) []tracePath {
	tr.t.Helper()
	start := traceState{prob: 1, dst: p.dst, dport: p.dport}
	var paths []tracePath
	natDone, natCont := tr.walk("nat", "PREROUTING", p, []traceState{start})
	for _, o := range natCont {
		natDone = append(natDone, tracePath{prob: o.prob, mark: o.mark, rules: o.rules, dispatch: o.dispatch})
	}
	for _, np := range natDone {
		st := traceState{prob: np.prob, mark: np.mark, dst: p.dst, dport: p.dport}
		if np.verdict == "DNAT" {
			ap := netip.MustParseAddrPort(np.to)
			st.dst, st.dport = ap.Addr(), ap.Port()
		}
		fDone, fCont := tr.walk("filter", "FORWARD", p, []traceState{st})
		for _, f := range fDone {
			paths = append(paths, tracePath{prob: f.prob, verdict: f.verdict, reject: f.reject, rules: np.rules, dispatch: np.dispatch})
		}
		for _, f := range fCont {
			pDone, pCont := tr.walk("nat", "POSTROUTING", p, []traceState{f})
			for _, pp := range pDone {
				out := np
				out.prob, out.masq = pp.prob, pp.verdict == "MASQUERADE"
				paths = append(paths, out)
			}
			for _, pc := range pCont {
				out := np
				out.prob = pc.prob
				paths = append(paths, out)
			}
		}
	}
	sum := 0.0
	for _, pa := range paths {
		sum += pa.prob
	}
	if math.Abs(sum-1) > 1e-9 {
		tr.t.Fatalf("trace %v: path probabilities sum to %v", p, sum)
	}
	return paths
}

// walk evaluates chain of table for the states in, returning the paths that
// ended in a verdict and the states that fell through the chain.
func (tr *tracer) walk(table, chain string, p tracePacket, in []traceState) (done []tracePath, cont []traceState) {
	rules := tr.chains[table][chain]
	isDispatch := chain == render.ServicesChain || chain == render.RejectChain ||
		strings.HasPrefix(chain, "WEIR-"+render.KindDST+"-") || strings.HasPrefix(chain, "WEIR-"+render.KindPRO+"-") ||
		strings.HasPrefix(chain, "WEIR-"+render.KindPRT+"-")
	live := in
	for _, r := range rules {
		var next []traceState
		for _, st := range live {
			if strings.HasPrefix(chain, "WEIR-") {
				st.rules++
				if isDispatch {
					st.dispatch++
				}
			}
			if !tr.matches(r, p, st) {
				next = append(next, st)
				continue
			}
			matched := st
			if r.module["statistic"] {
				switch r.mode {
				case "random":
					matched.prob = st.prob * r.prob
					if miss := st.prob * (1 - r.prob); miss > 0 {
						st.prob = miss
						next = append(next, st)
					}
					if matched.prob == 0 {
						continue
					}
				case "nth":
					if len(live) != 1 || st.prob != 1 {
						tr.t.Fatalf("rule %q: nth after a random branch; the tracer cannot order connections", r.raw)
					}
					// xt_statistic: every is stored as every-1 and the counter
					// starts at --packet; the rule matches when the counter wraps.
					c, ok := tr.nth[r]
					if !ok {
						c = r.packet
					}
					if c == r.every-1 {
						c = 0
					} else {
						c++
					}
					tr.nth[r] = c
					if c != 0 {
						next = append(next, st)
						continue
					}
				}
			}
			switch r.target {
			case "DNAT":
				done = append(done, tracePath{prob: matched.prob, verdict: "DNAT", to: r.toDest,
					mark: matched.mark, rules: matched.rules, dispatch: matched.dispatch})
			case "REJECT":
				done = append(done, tracePath{prob: matched.prob, verdict: "REJECT", reject: r.rejectWith})
			case "MASQUERADE":
				done = append(done, tracePath{prob: matched.prob, verdict: "MASQUERADE"})
			case "MARK":
				matched.mark = matched.mark&^r.xmarkM ^ r.xmarkV
				next = append(next, matched)
			case "RETURN":
				cont = append(cont, matched)
			default:
				if !strings.HasPrefix(r.target, "WEIR-") {
					tr.t.Fatalf("rule %q: target %s not understood by the tracer", r.raw, r.target)
				}
				d, c := tr.walk(table, r.target, p, []traceState{matched})
				done = append(done, d...)
				next = append(next, c...)
			}
		}
		live = next
	}
	return done, append(cont, live...)
}

func (tr *tracer) matches(r *traceRule, p tracePacket, st traceState) bool {
	switch {
	case r.src.IsValid() && !r.src.Contains(p.src),
		r.dst.IsValid() && !r.dst.Contains(st.dst),
		r.proto != "" && r.proto != p.proto,
		r.dportLo >= 0 && (int(st.dport) < r.dportLo || int(st.dport) > r.dportHi),
		r.hasMark && st.mark&r.markM != r.markV:
		return false
	}
	// --ctstate NEW: the tracer follows first packets only.
	return true
}

// shares sums the paths of one trace by outcome: the DNAT destination
// ("198.19.2.3:8080", with " masq" appended when masqueraded), "REJECT", or
// "none" when no owned rule touched the packet.
func shares(paths []tracePath) map[string]float64 {
	out := map[string]float64{}
	for _, p := range paths {
		k := "none"
		switch p.verdict {
		case "DNAT":
			k = p.to
			if p.masq {
				k += " masq"
			}
		case "REJECT":
			k = "REJECT"
		}
		out[k] += p.prob
	}
	return out
}

// maxRules returns the most owned nat rules, and dispatch rules, any path evaluated.
func maxRules(paths []tracePath) (rules, dispatch int) {
	for _, p := range paths {
		rules, dispatch = max(rules, p.rules), max(dispatch, p.dispatch)
	}
	return rules, dispatch
}

func formatShares(m map[string]float64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + "=" + strconv.FormatFloat(m[k], 'g', 12, 64) + " ")
	}
	return strings.TrimSpace(b.String())
}

// sharesEqual compares two share maps within tolerance.
func sharesEqual(a, b map[string]float64, tol float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || math.Abs(v-w) > tol {
			return false
		}
	}
	return true
}
