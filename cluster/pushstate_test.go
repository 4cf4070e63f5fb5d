package cluster

import (
	"encoding/binary"
	"strings"
	"testing"
)

func TestPushStateRoundTripAndBounds(t *testing.T) {
	st := pushState{
		Messages: []pushMessage{
			{AgeMS: 1500, Msg: message{Kind: msgHint, Origin: "host-b", Inc: 7, Seq: 2, Payload: "dir:ab"}},
			{Msg: message{Kind: msgError, Origin: "host-b", Inc: 7, Seq: 3, Payload: "boom"}},
		},
		Gone: []pushMember{{Name: "host-c", Address: "198.18.0.3:7946", State: StateDead, Meta: []byte{metaVersion, 0}}},
	}
	got, err := decodePushState(st.encode())
	if err != nil || len(got.Messages) != 2 || got.Messages[0] != st.Messages[0] || got.Gone[0].Name != "host-c" || got.Gone[0].State != StateDead {
		t.Fatalf("decodePushState(encode(%+v)) = %+v, %v", st, got, err)
	}
	tooMany := binary.AppendUvarint([]byte{pushVersion}, maxPushEntries+1)
	bad := map[string][]byte{
		"over the byte bound":  append([]byte{pushVersion, 0}, make([]byte, maxPushState)...),
		"over the entry bound": tooMany,
		"old version":          {1, 0},
		"unknown entry":        {pushVersion, 1, 'x'},
		"gone without state":   append([]byte{pushVersion, 1, entryGone, 1, 'a', 0, 'z'}, 0),
		"oversized message":    append([]byte{pushVersion, 1, entryMessage, 0}, binary.AppendUvarint(nil, uint64(maxMessage+1))...),
		"bad message":          append([]byte{pushVersion, 1, entryMessage, 0, 3}, "xyz"...),
		"trailing":             append(st.encode(), 0),
	}
	for name, b := range bad {
		if got, err := decodePushState(b); err == nil {
			t.Errorf("decodePushState(%s) = %+v; want an error", name, got)
		} else if !strings.Contains(err.Error(), "push/pull state") {
			t.Errorf("decodePushState(%s) error %q does not say what it refused", name, err)
		}
	}
}
