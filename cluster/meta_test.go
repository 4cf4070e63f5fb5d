package cluster

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/hashicorp/memberlist"
)

func TestMetaRoundTrip(t *testing.T) {
	hex64 := strings.Repeat("0123456789abcdef", 4)
	tests := []struct {
		name string
		in   nodeMeta
	}{
		{"empty", nodeMeta{}},
		{"observer", nodeMeta{Observer: true}},
		{"commit", nodeMeta{Revision: "1a2b3c4d5e6f708192a3b4c5d6e7f80912345678", Digest: hex64, Balancers: 2, Rules: 6}},
		{"dir", nodeMeta{Revision: "dir:" + hex64, Digest: hex64, Balancers: 1, Rules: 1}},
		{"uppercase hex stays raw", nodeMeta{Revision: "ABCDEF", Digest: "abc"}},
		{"odd hex stays raw", nodeMeta{Revision: "abc", Digest: "dir:abc"}},
		{"dir non-hex", nodeMeta{Revision: "dir:xyz", Digest: "dir:"}},
		{"error", nodeMeta{Revision: "ab", HasError: true, ErrorCRC: errorCRC("boom")}},
		{"incarnation", nodeMeta{Incarnation: math.MaxUint64, Revision: "ab"}},
		{"max counts", nodeMeta{Balancers: math.MaxInt32, Rules: math.MaxInt32}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := encodeMeta(tt.in)
			if err != nil {
				t.Fatalf("encodeMeta(%+v): %v", tt.in, err)
			}
			got, err := decodeMeta(b)
			if err != nil {
				t.Fatalf("decodeMeta(encodeMeta(%+v)): %v", tt.in, err)
			}
			if got != tt.in {
				t.Errorf("decodeMeta(encodeMeta(%+v)) = %+v", tt.in, got)
			}
		})
	}
}

// TestMetaSizeAtLimit encodes the largest state an agent announces and checks
// it stays far below memberlist's MetaMaxSize, also at the codec's own bounds.
func TestMetaSizeAtLimit(t *testing.T) {
	hex64 := strings.Repeat("f", 64)
	largest := metaFromState(NodeState{
		Revision: "dir:" + hex64, Digest: hex64,
		Balancers: math.MaxInt32, Rules: math.MaxInt32, Error: "x",
	}, true, math.MaxUint64)
	b, err := encodeMeta(largest)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("meta at the largest real values: %d bytes (limit %d)", len(b), memberlist.MetaMaxSize)
	if len(b) > 128 {
		t.Errorf("meta at the largest real values is %d bytes; want <= 128 (a quarter of MetaMaxSize %d)", len(b), memberlist.MetaMaxSize)
	}

	// Non-hex strings at the codec's bound, which SetLocal enforces.
	raw := strings.Repeat("Z", maxMetaString)
	b, err = encodeMeta(nodeMeta{Incarnation: math.MaxUint64, Revision: raw, Digest: raw, Balancers: math.MaxInt32, Rules: math.MaxInt32, HasError: true, ErrorCRC: math.MaxUint32})
	if err != nil {
		t.Fatal(err)
	}
	if len(b) >= memberlist.MetaMaxSize*2/3 {
		t.Errorf("meta at the codec bound is %d bytes; want < %d", len(b), memberlist.MetaMaxSize*2/3)
	}

	_, err = encodeMeta(nodeMeta{Revision: raw + "Z"})
	if !errors.Is(err, ErrMetaTooLarge) {
		t.Errorf("encodeMeta(revision of %d bytes) error = %v; want ErrMetaTooLarge", maxMetaString+1, err)
	}
	if _, err := encodeMeta(nodeMeta{Rules: -1}); err == nil {
		t.Error("encodeMeta(negative rules) = nil error")
	}
}

func TestDecodeMetaRejectsGarbage(t *testing.T) {
	good, _ := encodeMeta(nodeMeta{Incarnation: 7, Revision: "abcd", Digest: "ef01", Balancers: 3, Rules: 9, HasError: true, ErrorCRC: 7})
	head := []byte{metaVersion, 0, 0, 0, 0, 0, 0, 0, 0, 1}
	long := append(append([]byte{}, head...), strRaw, 0x81, 0x01) // a raw string of 129 bytes
	long = append(long, strings.Repeat("z", 129)...)
	tests := map[string][]byte{
		"nil":            nil,
		"one byte":       {metaVersion},
		"old version":    append([]byte{metaVersion - 1}, good[1:]...),
		"new version":    append([]byte{metaVersion + 1}, good[1:]...),
		"truncated":      good[:len(good)-1],
		"trailing":       append(append([]byte{}, good...), 0),
		"unknown flag":   append([]byte{metaVersion, 0x80}, good[2:]...),
		"bad tag":        append(append([]byte{}, head...), 9, 0),
		"long string":    long,
		"huge count":     append(append([]byte{}, head...), strRaw, 0, strRaw, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0),
		"over meta size": make([]byte, memberlist.MetaMaxSize+1),
	}
	for name, b := range tests {
		if m, err := decodeMeta(b); err == nil {
			t.Errorf("decodeMeta(%s %x) = %+v, nil; want an error", name, b, m)
		}
	}
}

func TestErrorCRC(t *testing.T) {
	if got := errorCRC(""); got != 0 {
		t.Errorf("errorCRC(\"\") = %d; want 0", got)
	}
	if errorCRC("a") == errorCRC("b") || errorCRC("a") == 0 {
		t.Errorf("errorCRC does not tell texts apart")
	}
}

func TestMessageRoundTrip(t *testing.T) {
	for _, m := range []message{
		{Kind: msgHint, Origin: "host-a", Inc: 1, Seq: 1, Payload: "dir:abcd"},
		{Kind: msgError, Origin: "h", Inc: math.MaxUint64, Seq: math.MaxUint64, Payload: strings.Repeat("e", maxErrorText)},
		{Kind: msgLeave, Origin: strings.Repeat("n", maxName), Inc: 9, Seq: 42},
	} {
		got, err := decodeMessage(m.encode())
		if err != nil || got != m {
			t.Errorf("decodeMessage(encode(%+v)) = %+v, %v", m, got, err)
		}
	}
	good := message{Kind: msgHint, Origin: "host-a", Inc: 1, Seq: 1, Payload: "ab"}
	bad := map[string]message{
		"unknown kind":   {Kind: 'x', Origin: "a", Inc: 1, Seq: 1},
		"no origin":      {Kind: msgHint, Inc: 1, Seq: 1},
		"no incarnation": {Kind: msgHint, Origin: "a", Seq: 1},
		"no counter":     {Kind: msgHint, Origin: "a", Inc: 1},
		"long origin":    {Kind: msgHint, Origin: strings.Repeat("n", maxName+1), Inc: 1, Seq: 1},
		"long revision":  {Kind: msgHint, Origin: "a", Inc: 1, Seq: 1, Payload: strings.Repeat("r", maxMetaString+1)},
		"long error":     {Kind: msgError, Origin: "a", Inc: 1, Seq: 1, Payload: strings.Repeat("e", maxErrorText+1)},
		"leave payload":  {Kind: msgLeave, Origin: "a", Inc: 1, Seq: 1, Payload: "x"},
	}
	for name, m := range bad {
		if got, err := decodeMessage(m.encode()); err == nil {
			t.Errorf("decodeMessage(%s) = %+v; want an error", name, got)
		}
	}
	enc := good.encode()
	for name, b := range map[string][]byte{"nil": nil, "truncated": enc[:len(enc)-1], "trailing": append(enc, 0), "huge": make([]byte, maxMessage+1)} {
		if got, err := decodeMessage(b); err == nil {
			t.Errorf("decodeMessage(%s) = %+v; want an error", name, got)
		}
	}
}

func TestTruncateUTF8(t *testing.T) {
	s := strings.Repeat("é", 400) // 800 bytes
	got := truncateUTF8(s, maxErrorText)
	if len(got) > maxErrorText || !strings.HasSuffix(got, "…") || !strings.HasPrefix(got, "éé") {
		t.Errorf("truncateUTF8(800 bytes, %d) = %d bytes %q…", maxErrorText, len(got), got[:10])
	}
	if got := truncateUTF8("short", 10); got != "short" {
		t.Errorf("truncateUTF8(short) = %q", got)
	}
}
