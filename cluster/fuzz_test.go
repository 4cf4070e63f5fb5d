package cluster

import (
	"bytes"
	"reflect"
	"testing"

	"weir/spec"
)

// The gossip decoders read what any key holder sends. Each fuzz target
// checks that a decoder never panics, never accepts more than its bounds,
// and that what it accepts encodes back to something it decodes equally.
// Seeds live in testdata/fuzz and run with `go test` (make test); fuzz
// longer with, e.g., go test ./cluster -run '^$' -fuzz FuzzDecodeMessage.

func FuzzDecodeMessage(f *testing.F) {
	f.Add(message{Kind: msgHint, Origin: "host-a", Inc: 1, Seq: 1, Payload: "dir:ab"}.encode())
	f.Add(message{Kind: msgHealth, Origin: "host-b", Inc: 2, Seq: 4, Payload: healthPage{Part: 1, Parts: 2, IDs: []spec.CheckID{{9}}}.payload()}.encode())
	f.Add(message{Kind: msgCheck, Origin: "host-c", Inc: 3, Seq: 5, Payload: checkPayload(spec.CheckID{7}, true)}.encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMessage(b)
		if err != nil {
			return
		}
		if len(b) > maxMessage || len(m.Origin) > maxName || len(m.Payload) > maxPayloadLen {
			t.Fatalf("decodeMessage accepted %d bytes: %+v", len(b), m)
		}
		if again, err := decodeMessage(m.encode()); err != nil || again != m {
			t.Fatalf("decodeMessage(encode(%+v)) = %+v, %v", m, again, err)
		}
	})
}

func FuzzDecodeMeta(f *testing.F) {
	b, _ := encodeMeta(nodeMeta{Incarnation: 9, Revision: "dir:abcd", Digest: "ef", Balancers: 2, Rules: 6, HasError: true, ErrorCRC: 3})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil {
			return
		}
		enc, err := encodeMeta(m)
		if err != nil {
			t.Fatalf("encodeMeta(decodeMeta(%x) = %+v): %v", b, m, err)
		}
		if again, err := decodeMeta(enc); err != nil || again != m {
			t.Fatalf("decodeMeta(encodeMeta(%+v)) = %+v, %v", m, again, err)
		}
	})
}

func FuzzDecodePushState(f *testing.F) {
	st := pushState{
		Messages: []pushMessage{{AgeMS: 5, Msg: message{Kind: msgError, Origin: "host-b", Inc: 2, Seq: 3, Payload: "boom"}}},
		Gone:     []pushMember{{Name: "host-c", Address: "198.18.0.3:7946", State: StateLeft, Meta: []byte{metaVersion, 0}}},
	}
	f.Add(st.encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := decodePushState(b)
		if err != nil {
			return
		}
		if len(st.Messages)+len(st.Gone) > maxPushEntries {
			t.Fatalf("decodePushState accepted %d entries", len(st.Messages)+len(st.Gone))
		}
		again, err := decodePushState(st.encode())
		if err != nil || !reflect.DeepEqual(normalizePush(again), normalizePush(st)) {
			t.Fatalf("decodePushState(encode(%+v)) = %+v, %v", st, again, err)
		}
	})
}

// normalizePush makes nil and empty metas compare equal.
func normalizePush(st pushState) pushState {
	for i := range st.Gone {
		if len(st.Gone[i].Meta) == 0 {
			st.Gone[i].Meta = nil
		}
	}
	return st
}

func FuzzDecodeKeyRequest(f *testing.F) {
	f.Add(keyRequest{ID: 1, Origin: "host-a", Inc: 2, Op: opInstall, Key: bytes.Repeat([]byte{7}, 32)}.encode())
	f.Add(keyRequest{ID: 1, Origin: "host-a", Inc: 2, Op: opList}.encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := decodeKeyRequest(b)
		if err != nil {
			return
		}
		if len(q.Key) > maxKeyLen || len(q.Origin) > maxName {
			t.Fatalf("decodeKeyRequest accepted %+v", q)
		}
		again, err := decodeKeyRequest(q.encode())
		if err != nil || !reflect.DeepEqual(again, q) {
			t.Fatalf("decodeKeyRequest(encode(%+v)) = %+v, %v", q, again, err)
		}
	})
}

func FuzzDecodeKeyReply(f *testing.F) {
	f.Add(keyReply{ID: 1, Node: "host-b", OK: true, Keys: []heldKey{{Fingerprint: [8]byte{1}, Primary: true}}}.encode())
	f.Add(keyReply{ID: 1, Node: "host-b", Error: "no"}.encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodeKeyReply(b)
		if err != nil {
			return
		}
		if len(p.Keys) > maxKeysInReply || len(p.Error) > maxKeyError {
			t.Fatalf("decodeKeyReply accepted %d keys, %d error bytes", len(p.Keys), len(p.Error))
		}
		again, err := decodeKeyReply(p.encode())
		if err != nil || !reflect.DeepEqual(again, p) {
			t.Fatalf("decodeKeyReply(encode(%+v)) = %+v, %v", p, again, err)
		}
	})
}

func FuzzDecodeHealthPage(f *testing.F) {
	f.Add([]byte(healthPage{Part: 0, Parts: 1}.payload()))
	f.Add([]byte(healthPage{Part: 1, Parts: 3, IDs: []spec.CheckID{{1}, {2, 3}}}.payload()))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodeHealthPage(string(b))
		if err != nil {
			return
		}
		if len(p.IDs) > healthPageIDs || p.Parts > maxHealthPages || p.Part >= p.Parts || !ascending(p.IDs) {
			t.Fatalf("decodeHealthPage accepted %+v", p)
		}
		again, err := decodeHealthPage(p.payload())
		if err != nil || !reflect.DeepEqual(normalizePage(again), normalizePage(p)) {
			t.Fatalf("decodeHealthPage(payload(%+v)) = %+v, %v", p, again, err)
		}
	})
}

// normalizePage makes nil and empty ID lists compare equal.
func normalizePage(p healthPage) healthPage {
	if len(p.IDs) == 0 {
		p.IDs = nil
	}
	return p
}
