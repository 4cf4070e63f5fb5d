package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"weir/reconcile/plan"
	"weir/spec"
)

// parseGuestPorts parses the value of `weir plan --unhealthy`: a
// comma-separated list of guest or guest:port. It returns a usage problem,
// or "".
func parseGuestPorts(v string) ([]plan.GuestPort, string) {
	var out []plan.GuestPort
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		guest, port, hasPort := strings.Cut(item, ":")
		gp := plan.GuestPort{Guest: guest}
		if hasPort {
			n, err := strconv.ParseUint(port, 10, 16)
			if err != nil || n == 0 {
				return nil, fmt.Sprintf("--unhealthy %q: the port must be 1-65535", item)
			}
			gp.Port = uint16(n)
		}
		out = append(out, gp)
	}
	return out, ""
}

// planHealth is the health view of `weir plan --unhealthy`: every check of
// the named guests fails, as reported by their hosts. A guest that is not in
// s is a usage error; one that no balancer checks (on that port) gets a
// warning.
func planHealth(s *spec.Spec, sick []plan.GuestPort, stderr io.Writer) (plan.Health, error) {
	for _, gp := range sick {
		if s.Guest(gp.Guest) == nil {
			return nil, usageErr("--unhealthy names %q, which is not a guest in the specs", gp.Guest)
		}
	}
	set, unmatched := plan.UnhealthyGuests(s, sick)
	for _, gp := range unmatched {
		what := fmt.Sprintf("%q", gp.Guest)
		if gp.Port != 0 {
			what += fmt.Sprintf(" on port %d", gp.Port)
		}
		fmt.Fprintf(stderr, "weir plan: warning: --unhealthy names %s, which no balancer's health check probes; ignored\n", what)
	}
	return set, nil
}

// writeHealthHeader adds to the header of `weir plan` the targets of p
// (node's part of a plan) that take no part, and the balancers that fail
// open; nothing when there are none.
func writeHealthHeader(b *strings.Builder, p *plan.Plan) {
	var out, open []string
	for _, bp := range p.Balancers {
		for _, t := range bp.Excluded {
			out = append(out, bp.Name+"/"+t.Guest+" "+t.State.String())
		}
		if bp.FailOpen {
			open = append(open, bp.Name)
		}
	}
	if len(out) > 0 {
		fmt.Fprintf(b, "# not taking part: %s\n", strings.Join(out, ", "))
	}
	if len(open) > 0 {
		fmt.Fprintf(b, "# failing open (no target healthy): %s\n", strings.Join(open, ", "))
	}
}
