package spec

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"time"
)

// CheckProtocol is how a health check probes a target.
type CheckProtocol string

// Health check protocols; CheckTCP is the default.
const (
	// CheckTCP passes when a TCP connection to the port is established.
	CheckTCP CheckProtocol = "tcp"
	// CheckHTTP passes when a GET of the path answers 2xx or 3xx.
	CheckHTTP CheckProtocol = "http"
)

// Defaults and bounds of a health check (README.md, "Health checks").
const (
	DefaultCheckInterval  = 2 * time.Second
	DefaultCheckTimeout   = time.Second
	DefaultCheckThreshold = 2
	DefaultCheckPath      = "/"

	MinCheckInterval   = time.Second
	MaxCheckInterval   = 5 * time.Minute
	MinCheckTimeout    = 100 * time.Millisecond
	MinCheckThreshold  = 1
	MaxCheckThreshold  = 10
	MaxCheckPathLength = 1024
)

// HealthCheck is a balancer's health check with every default filled in:
// the agent on each target's host probes the target with it.
type HealthCheck struct {
	Protocol           CheckProtocol
	Port               uint16 // defaulted to the balancer's TargetPort
	Path               string // http only ("/" by default); "" for tcp
	Interval           time.Duration
	Timeout            time.Duration // less than Interval
	HealthyThreshold   int           // consecutive passes that make a target healthy
	UnhealthyThreshold int           // consecutive failures that make it unhealthy
}

// EndpointCheck is one health check of one target address: what the agent on
// the target's host probes. Balancers that check the same guest address with
// the same parameters share one EndpointCheck, probed once.
type EndpointCheck struct {
	Address netip.Addr
	HealthCheck
}

// CheckID names an EndpointCheck compactly and stably: the first 8 bytes of
// the SHA-256 of its canonical form. Every agent computes the same ID for
// the same check, so a host can report its checks' results by ID alone.
type CheckID [8]byte

// checkEncodingVersion prefixes the canonical form an ID hashes; change it
// whenever that form changes, so IDs of different forms never collide.
const checkEncodingVersion = "weir-check/1"

// ID returns the check's CheckID.
func (c EndpointCheck) ID() CheckID {
	var buf [128]byte
	sum := sha256.Sum256(c.AppendCanonical(buf[:0]))
	var id CheckID
	copy(id[:], sum[:])
	return id
}

// AppendCanonical appends the canonical form of the check that ID hashes:
// one line of space-separated fields, durations in nanoseconds, the path
// quoted so it cannot forge a separator.
//
//	weir-check/1 http 198.19.2.2 8080 "/healthz" 2000000000 1000000000 2 2
func (c EndpointCheck) AppendCanonical(b []byte) []byte {
	b = append(b, checkEncodingVersion...)
	b = append(b, ' ')
	b = append(b, c.Protocol...)
	b = append(b, ' ')
	b = c.Address.Unmap().AppendTo(b)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(c.Port), 10)
	b = append(b, ' ')
	b = strconv.AppendQuote(b, c.Path)
	for _, n := range []int64{int64(c.Interval), int64(c.Timeout), int64(c.HealthyThreshold), int64(c.UnhealthyThreshold)} {
		b = append(b, ' ')
		b = strconv.AppendInt(b, n, 10)
	}
	return b
}

// String renders the ID as 16 hexadecimal digits.
func (id CheckID) String() string { return hex.EncodeToString(id[:]) }

// MarshalText implements encoding.TextMarshaler, so IDs read as hex in JSON.
func (id CheckID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *CheckID) UnmarshalText(text []byte) error {
	parsed, err := ParseCheckID(string(text))
	if err != nil {
		return err
	}
	*id = parsed
	return nil
}

// ParseCheckID parses the 16 hexadecimal digits of a CheckID.
func ParseCheckID(s string) (CheckID, error) {
	var id CheckID
	if len(s) != 2*len(id) {
		return id, fmt.Errorf("parsing check ID %q: want %d hexadecimal digits", s, 2*len(id))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("parsing check ID %q: %w", s, err)
	}
	return id, nil
}

// String describes the check for logs: "http 198.19.2.2:8080/healthz".
func (c EndpointCheck) String() string {
	s := string(c.Protocol) + " " + netip.AddrPortFrom(c.Address.Unmap(), c.Port).String()
	if c.Protocol == CheckHTTP {
		s += c.Path
	}
	return s
}
