// Package plan turns a validated spec, the set of alive hosts and the
// reported health of targets into the cluster-wide assignment of each
// balancer's sources and targets: a pure, deterministic function whose
// result every agent computes alike and proves so by gossiping its Digest. Rendering one host's part of a Plan as rules
// is the render package's job, programming them the netfilter package's.
package plan

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"unsafe"

	"weir/spec"
)

// Plan is the cluster-wide assignment for one (spec revision, alive set,
// health view). It is a pure function of its inputs: every agent computes byte-identical Plans, and
// Digest proves it over gossip.
type Plan struct {
	Alive     []string       `json:"alive"`     // sorted host names counted as alive
	Balancers []BalancerPlan `json:"balancers"` // sorted by name
}

// BalancerPlan is one balancer's assignment.
type BalancerPlan struct {
	Name         string        `json:"name"`
	Source       string        `json:"source"`
	Target       string        `json:"target"`
	Frontend     spec.Frontend `json:"frontend"`
	TargetPort   uint16        `json:"targetPort"`
	Strategy     spec.Strategy `json:"strategy"`
	SettingHosts []string      `json:"settingHosts"` // hosts whose guests run Source, sorted
	Sources      []Endpoint    `json:"sources"`      // guests running Source, sorted by (host, guest)
	// FailOpen is set when no target with weight > 0 on an alive host is
	// healthy, so all of them take part (state unhealthy) rather than none.
	FailOpen bool `json:"failOpen"`
	// Targets are the targets taking part, sorted by (host, guest): the ones
	// rendered into rules.
	Targets []Target `json:"targets"`
	// Excluded are the other targets, sorted by (host, guest), each with
	// the state that keeps it out (unhealthy, drained or down) and share 0.
	// Render never reads them; they are there for status and the digest.
	Excluded []Target `json:"excluded"`
}

// Endpoint is a guest taking part in a balancer.
type Endpoint struct {
	Guest   string     `json:"guest"`
	Host    string     `json:"host"`
	Address netip.Addr `json:"address"`
}

// Target is one target guest with its weight, state and resulting share of
// new connections.
type Target struct {
	Endpoint
	Port   uint16      `json:"port"`
	Weight int         `json:"weight"`
	State  TargetState `json:"state"`
	Share  float64     `json:"share"` // Weight / Σ weights of the targets taking part; 0 when excluded
}

// planEncodingVersion names the canonical encoding Digest hashes. Change it
// whenever the encoding changes, so agents running different encodings never
// mistake each other's digests for agreement.
const planEncodingVersion = "weir-plan/2"

// Canonical returns the canonical encoding of the plan that Digest hashes. It
// is line-based text, one record per line, fields separated by single spaces,
// every name quoted with strconv.Quote so no name can forge a separator:
//
//	weir-plan/2
//	alive "host-a" "host-b"
//	sources 0 setting "host-a"
//	source "host-a" "web-1" 198.19.1.2
//	end
//	balancer "frontend-orders" source "frontend" target "orders" frontend "tcp" 198.20.0.10 80 targetPort 8080 strategy "random" sources 0 failOpen false
//	target "host-b" "orders-1" 198.19.2.2 8080 3 healthy
//	excluded "host-c" "orders-3" 198.19.3.2 8080 0 drained
//	end
//
// Balancers come in plan order (by name), endpoints in plan order (by host
// and guest). Each target's state is written, so the digest covers the
// health view as far as it changes the plan: agents that agree on the
// digest agree on which targets take part. Every distinct list of setting hosts and sources is written
// once, as a numbered "sources" group, in the order balancers first use it,
// and balancers refer to it by number: all balancers of one source service
// share it, and written per balancer the encoding of 10,000 balancers on
// 100 hosts would be 80 MB. Groups are told apart by content, so the
// encoding depends only on the plan's value. Shares are not encoded: they
// are a function of the weights, and floating-point text is not a canonical
// form.
func (p *Plan) Canonical() []byte {
	var buf bytes.Buffer
	p.encode(&buf)
	return buf.Bytes()
}

// Digest is the hex SHA-256 of Canonical. Agents gossip it: equal digests mean
// equal plans, whatever each agent's file layout or map iteration order.
func (p *Plan) Digest() string {
	h := sha256.New()
	p.encode(h)
	return hex.EncodeToString(h.Sum(nil))
}

// encode writes Canonical to w in chunks, so Digest never holds the whole
// encoding in memory.
func (p *Plan) encode(w io.Writer) {
	groups, groupOf := p.sourceGroups()
	cw := chunkWriter{w: w, b: make([]byte, 0, encodeChunk+1024)}
	cw.b = appendHeader(cw.b, p.Alive)
	for g, text := range groups {
		cw.b = appendGroup(cw.b, g, text)
		cw.flush(false)
	}
	for i := range p.Balancers {
		cw.b = appendBalancer(cw.b, &p.Balancers[i], groupOf[i])
		cw.flush(false)
	}
	cw.flush(true)
}

// encodeChunk is how many bytes of the encoding encode gathers before it
// hands them to the writer.
const encodeChunk = 64 << 10

// chunkWriter gathers bytes in b and writes them to w once there are
// encodeChunk of them.
type chunkWriter struct {
	w io.Writer
	b []byte
}

func (cw *chunkWriter) flush(force bool) {
	if len(cw.b) >= encodeChunk || force {
		cw.w.Write(cw.b) //nolint:errcheck // hashes and bytes.Buffer never fail
		cw.b = cw.b[:0]
	}
}

// sourceGroups returns the text of every distinct (setting hosts, sources)
// group in the order balancers first use it, and each balancer's group
// number. Plans from Assign share one slice per source service, so identical
// slices are recognised by identity first and encoded only once; groups are
// then told apart by content, so the result depends only on the plan's value.
func (p *Plan) sourceGroups() (groups [][]byte, groupOf []int) {
	type ident struct {
		hosts   *string
		nHosts  int
		sources *Endpoint
		nSrc    int
	}
	byIdent := map[ident]int{}
	byText := map[string]int{}
	groupOf = make([]int, len(p.Balancers))
	for i := range p.Balancers {
		bp := &p.Balancers[i]
		id := ident{unsafe.SliceData(bp.SettingHosts), len(bp.SettingHosts), unsafe.SliceData(bp.Sources), len(bp.Sources)}
		g, ok := byIdent[id]
		if !ok {
			b := appendSourceGroup(nil, bp)
			if g, ok = byText[string(b)]; !ok {
				g = len(groups)
				byText[string(b)] = g
				groups = append(groups, b)
			}
			byIdent[id] = g
		}
		groupOf[i] = g
	}
	return groups, groupOf
}

// appendSourceGroup appends the body of bp's sources group: its setting
// hosts, then one line per source.
func appendSourceGroup(b []byte, bp *BalancerPlan) []byte {
	b = append(b, "setting"...)
	for _, h := range bp.SettingHosts {
		b = append(b, ' ')
		b = appendQuote(b, h)
	}
	b = append(b, '\n')
	for _, e := range bp.Sources {
		b = append(b, "source "...)
		b = appendEndpoint(b, e)
		b = append(b, '\n')
	}
	return b
}

// appendHeader appends the version line and the alive hosts.
func appendHeader(b []byte, alive []string) []byte {
	b = append(b, planEncodingVersion...)
	b = append(b, "\nalive"...)
	for _, h := range alive {
		b = append(b, ' ')
		b = appendQuote(b, h)
	}
	return append(b, '\n')
}

// appendGroup appends sources group number g with body text.
func appendGroup(b []byte, g int, text []byte) []byte {
	b = append(b, "sources "...)
	b = strconv.AppendInt(b, int64(g), 10)
	b = append(b, ' ')
	b = append(b, text...)
	return append(b, "end\n"...)
}

// appendBalancer appends bp's record, referring to its sources group by
// number, and its targets.
func appendBalancer(b []byte, bp *BalancerPlan, group int) []byte {
	b = append(b, "balancer "...)
	b = appendQuote(b, bp.Name)
	b = append(b, " source "...)
	b = appendQuote(b, bp.Source)
	b = append(b, " target "...)
	b = appendQuote(b, bp.Target)
	b = append(b, " frontend "...)
	b = appendQuote(b, string(bp.Frontend.Protocol))
	b = append(b, ' ')
	b = bp.Frontend.Address.AppendTo(b)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(bp.Frontend.Port), 10)
	b = append(b, " targetPort "...)
	b = strconv.AppendUint(b, uint64(bp.TargetPort), 10)
	b = append(b, " strategy "...)
	b = appendQuote(b, string(bp.Strategy))
	b = append(b, " sources "...)
	b = strconv.AppendInt(b, int64(group), 10)
	b = append(b, " failOpen "...)
	b = strconv.AppendBool(b, bp.FailOpen)
	b = append(b, '\n')
	for _, t := range bp.Targets {
		b = appendTarget(b, "target ", &t)
	}
	for _, t := range bp.Excluded {
		b = appendTarget(b, "excluded ", &t)
	}
	return append(b, "end\n"...)
}

// appendTarget appends one target line: kind, endpoint, port, weight, state.
func appendTarget(b []byte, kind string, t *Target) []byte {
	b = append(b, kind...)
	b = appendEndpoint(b, t.Endpoint)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(t.Port), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(t.Weight), 10)
	b = append(b, ' ')
	b = append(b, t.State.String()...)
	return append(b, '\n')
}

// appendQuote appends s quoted as strconv.AppendQuote does. Names are
// almost always printable ASCII without quotes or backslashes, which quote
// as themselves between double quotes; only other names go through
// strconv, whose rune-by-rune escaping is most of the encoding's cost.
func appendQuote(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c > '~' || c == '"' || c == '\\' {
			return strconv.AppendQuote(b, s)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func appendEndpoint(b []byte, e Endpoint) []byte {
	b = appendQuote(b, e.Host)
	b = append(b, ' ')
	b = appendQuote(b, e.Guest)
	b = append(b, ' ')
	return e.Address.AppendTo(b)
}

// ForHost returns the part of the plan that host node applies: the balancers
// for which node is a setting host, with the same Alive list. A node that is
// not in the spec, or sets no balancer, gets a plan with no balancers.
func (p *Plan) ForHost(node string) *Plan {
	out := &Plan{Alive: p.Alive, Balancers: []BalancerPlan{}}
	for _, bp := range p.Balancers {
		if bp.SetBy(node) {
			out.Balancers = append(out.Balancers, bp)
		}
	}
	return out
}

// SetBy reports whether node is one of the balancer's setting hosts: a host
// with a source guest of the balancer, which therefore programs its rules.
func (bp *BalancerPlan) SetBy(node string) bool {
	_, ok := slices.BinarySearch(bp.SettingHosts, node)
	return ok
}
