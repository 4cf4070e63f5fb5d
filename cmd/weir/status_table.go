package main

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"weir/cluster"
)

// writeStatusTable prints s like `consul members`: one row per member, then
// a summary line such as
//
//	converged: 3/3 alive on 1a2b3c4, digest 9f8e7d6c…
//
// then, when targets fail their health checks, lines naming them and the
// balancers that fail open, and whether gossip is encrypted.
func writeStatusTable(w io.Writer, s cluster.Status) error {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tADDRESS\tSTATE\tREVISION\tDIGEST\tBALANCERS\tRULES\tERROR")
	for _, m := range s.Members {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			m.Name, orDash(m.Address), m.State, cluster.ShortRevision(m.Revision), cluster.ShortDigest(m.Digest),
			strconv.Itoa(m.Balancers), strconv.Itoa(m.Rules), memberNote(m))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("rendering status table: %w", err)
	}
	out := bytes.NewBuffer(trimTrailing(buf.Bytes()))
	out.WriteString(statusSummary(s))
	out.WriteByte('\n')
	for _, line := range healthLines(s) {
		out.WriteString(line)
		out.WriteByte('\n')
	}
	out.WriteString(gossipLine(s.GossipEncrypted))
	out.WriteByte('\n')
	_, err := w.Write(out.Bytes())
	if err != nil {
		return fmt.Errorf("writing status table: %w", err)
	}
	return nil
}

// memberNote is the last column: why a stranger does not count, else the
// first line of the member's error.
func memberNote(m cluster.MemberStatus) string {
	if m.Stranger != "" {
		return "stranger: " + m.Stranger
	}
	return m.ErrorLine(60)
}

// gossipLine says whether gossip is encrypted, under the summary.
func gossipLine(encrypted bool) string {
	if encrypted {
		return "gossip: encrypted"
	}
	return "gossip: NOT ENCRYPTED (--insecure-gossip): anyone who reaches the gossip port can forge membership"
}

// statusSummary is the one-line verdict under the status table.
func statusSummary(s cluster.Status) string {
	alive, hosts, strangers := 0, 0, 0
	for _, m := range s.Members {
		switch {
		case m.Stranger != "":
			strangers++
		case m.Alive():
			alive++
			hosts++
		default:
			hosts++
		}
	}
	counts := fmt.Sprintf("%d/%d alive", alive, hosts)
	var line string
	if s.Converged {
		digest := ""
		for _, m := range s.Members {
			if m.Counts() {
				digest = m.Digest
				break
			}
		}
		short := cluster.ShortDigest(digest)
		if len(digest) > len(short) {
			short += "…"
		}
		line = fmt.Sprintf("converged: %s on %s, digest %s", counts, cluster.ShortRevision(s.Revision), short)
	} else {
		line = fmt.Sprintf("not converged: %s; %s", counts, s.Reason)
	}
	if strangers > 0 {
		line += "; " + plural(strangers, "stranger") + " not counted"
	}
	if s.Latest != "" && s.Latest != s.Revision {
		line += fmt.Sprintf(" (newest fetched %s not applied)", cluster.ShortRevision(s.Latest))
	}
	return line
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// healthLines name the targets failing their health checks and the
// balancers failing open, as the agent's applied plan has them:
//
//	unhealthy: frontend-orders/orders-2 (host-c), frontend-tls/orders-2 (host-c)
//	fail open: frontend-cache
//
// An observer has no plan: it says how many failing checks each host reports.
func healthLines(s cluster.Status) []string {
	h := s.Health
	if h == nil {
		var counts []string
		for _, m := range s.Members {
			if m.UnhealthyChecks > 0 {
				counts = append(counts, fmt.Sprintf("%s %d", m.Name, m.UnhealthyChecks))
			}
		}
		if len(counts) == 0 {
			return nil
		}
		return []string{"failing health checks reported: " + strings.Join(counts, ", ")}
	}
	var lines []string
	if h.UnhealthyTotal > 0 {
		names := make([]string, len(h.Unhealthy))
		for i, t := range h.Unhealthy {
			names[i] = fmt.Sprintf("%s/%s (%s)", t.Balancer, t.Guest, t.Host)
		}
		lines = append(lines, "unhealthy: "+strings.Join(names, ", ")+more(h.UnhealthyTotal-len(names)))
	}
	if h.FailOpenTotal > 0 {
		lines = append(lines, "fail open: "+strings.Join(h.FailOpen, ", ")+more(h.FailOpenTotal-len(h.FailOpen)))
	}
	return lines
}

// more is " and N more" for n > 0.
func more(n int) string {
	if n <= 0 {
		return ""
	}
	return fmt.Sprintf(" and %d more", n)
}
