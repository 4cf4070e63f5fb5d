package cluster

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"weir/spec"
)

// Health reports. The agent on a host probes its own guests and tells the
// cluster which of its endpoint checks fail; only failing ones need to be
// known, since a check nobody reported counts as healthy. Two kinds of
// message carry them, both under the origin's counter:
//
//   - a transition (msgCheck) says one check now fails or passes:
//
//     payload: id(8) failing(1)
//
//     It is what a change broadcasts, and once more Reannounce later (see
//     healthLoop): small, and independent of how many other checks fail, so
//     the news of one check never waits for the others, however many fail
//     or keep changing.
//
//   - a report (msgHealth) is the host's whole sorted list of failing IDs at
//     a version, split into pages that each fit in a message:
//
//     payload: part(uvarint) parts(uvarint) id(8)…
//
//     Page i carries the counter version+i, so a receiver knows the version
//     from any page (Seq-part). Reports travel in push/pull syncs, where a
//     node joining learns every host's failing checks and a lost transition
//     is repaired at the latest; a report takes effect once all its pages
//     are in. SetHealth reserves a report's counters after the transitions
//     of the same change, so the report of version V reflects every
//     transition below V.
const (
	// healthPageIDs is how many IDs one page carries: 512 bytes of them.
	healthPageIDs = 64
	// maxHealthPages bounds a report, and so what a receiver holds per origin.
	maxHealthPages = 16
	// MaxUnhealthy is the most failing checks one host can report; SetHealth
	// reports the first MaxUnhealthy (by ID) of a longer list, so the others
	// count as healthy elsewhere: traffic goes on to them rather than stopping.
	MaxUnhealthy = healthPageIDs * maxHealthPages
	// checkIDLen is the bytes of a spec.CheckID (checked below).
	checkIDLen = 8
	// maxHealthPayload is the longest page payload.
	maxHealthPayload = 2*binary.MaxVarintLen16 + checkIDLen*healthPageIDs
)

var _ [checkIDLen]byte = spec.CheckID{}

// healthPage is one page of a health report.
type healthPage struct {
	Part, Parts int
	IDs         []spec.CheckID // strictly ascending
}

// payload renders p as a message payload.
func (p healthPage) payload() string {
	b := make([]byte, 0, 2*binary.MaxVarintLen16+len(p.IDs)*checkIDLen)
	b = binary.AppendUvarint(b, uint64(p.Part))
	b = binary.AppendUvarint(b, uint64(p.Parts))
	for _, id := range p.IDs {
		b = append(b, id[:]...)
	}
	return string(b)
}

var errBadHealthPage = errors.New("malformed health report page")

// checkPayload renders a transition's payload.
func checkPayload(id spec.CheckID, failing bool) string {
	b := append(make([]byte, 0, checkIDLen+1), id[:]...)
	if failing {
		return string(append(b, 1))
	}
	return string(append(b, 0))
}

// decodeCheck parses a transition's payload.
func decodeCheck(payload string) (spec.CheckID, bool, error) {
	var id spec.CheckID
	if len(payload) != checkIDLen+1 || payload[checkIDLen] > 1 {
		return id, false, fmt.Errorf("health transition of %d bytes: %w", len(payload), errBadHealthPage)
	}
	copy(id[:], payload)
	return id, payload[checkIDLen] == 1, nil
}

// decodeHealthPage parses a page payload, refusing a part count over
// maxHealthPages, a part out of range, more than healthPageIDs IDs, IDs out
// of order or repeated, and bytes that are not whole IDs.
func decodeHealthPage(payload string) (healthPage, error) {
	var p healthPage
	if len(payload) > maxHealthPayload {
		return p, fmt.Errorf("health page of %d bytes: %w", len(payload), errBadHealthPage)
	}
	r := wireReader{b: []byte(payload)}
	part, parts := r.uvarint(), r.uvarint()
	if r.err != nil {
		return p, fmt.Errorf("%w: %w", errBadHealthPage, r.err)
	}
	if parts == 0 || parts > maxHealthPages || part >= parts {
		return p, fmt.Errorf("health page %d of %d: %w", part, parts, errBadHealthPage)
	}
	const size = checkIDLen
	rest := r.b
	if len(rest)%size != 0 || len(rest)/size > healthPageIDs {
		return p, fmt.Errorf("health page with %d bytes of IDs: %w", len(rest), errBadHealthPage)
	}
	p = healthPage{Part: int(part), Parts: int(parts), IDs: make([]spec.CheckID, len(rest)/size)}
	for i := range p.IDs {
		copy(p.IDs[i][:], rest[i*size:])
		if i > 0 && bytes.Compare(p.IDs[i-1][:], p.IDs[i][:]) >= 0 {
			return healthPage{}, fmt.Errorf("health page IDs out of order: %w", errBadHealthPage)
		}
	}
	return p, nil
}

// healthPages splits a report (sorted IDs, at most MaxUnhealthy) into its
// pages; an empty report is one empty page, which says "nothing fails".
func healthPages(ids []spec.CheckID) []healthPage {
	parts := max(1, (len(ids)+healthPageIDs-1)/healthPageIDs)
	pages := make([]healthPage, parts)
	for i := range pages {
		lo, hi := i*healthPageIDs, min(len(ids), (i+1)*healthPageIDs)
		pages[i] = healthPage{Part: i, Parts: parts, IDs: ids[lo:hi]}
	}
	return pages
}

// healthMessages returns the pages of origin's report version as messages.
func healthMessages(origin string, inc, version uint64, ids []spec.CheckID) []message {
	pages := healthPages(ids)
	out := make([]message, len(pages))
	for i, p := range pages {
		out[i] = message{Kind: msgHealth, Origin: origin, Inc: inc, Seq: version + uint64(i), Payload: p.payload()}
	}
	return out
}

// ascending reports whether ids are strictly ascending.
func ascending(ids []spec.CheckID) bool {
	for i := 1; i < len(ids); i++ {
		if bytes.Compare(ids[i-1][:], ids[i][:]) >= 0 {
			return false
		}
	}
	return true
}
