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
func writeStatusTable(w io.Writer, s cluster.Status) error {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tADDRESS\tSTATE\tREVISION\tDIGEST\tBALANCERS\tRULES\tERROR")
	for _, m := range s.Members {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			m.Name, orDash(m.Address), m.State, cluster.ShortRevision(m.Revision), cluster.ShortDigest(m.Digest),
			strconv.Itoa(m.Balancers), strconv.Itoa(m.Rules), m.ErrorLine(60))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("rendering status table: %w", err)
	}
	var out bytes.Buffer
	for _, line := range strings.SplitAfter(buf.String(), "\n") {
		body, nl := strings.CutSuffix(line, "\n")
		out.WriteString(strings.TrimRight(body, " "))
		if nl {
			out.WriteByte('\n')
		}
	}
	out.WriteString(statusSummary(s))
	out.WriteByte('\n')
	_, err := w.Write(out.Bytes())
	if err != nil {
		return fmt.Errorf("writing status table: %w", err)
	}
	return nil
}

// statusSummary is the one-line verdict under the status table.
func statusSummary(s cluster.Status) string {
	alive := 0
	for _, m := range s.Members {
		if m.Alive() {
			alive++
		}
	}
	counts := fmt.Sprintf("%d/%d alive", alive, len(s.Members))
	var line string
	if s.Converged {
		digest := ""
		for _, m := range s.Members {
			if m.Alive() {
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
