package cluster

import (
	"encoding/json"
	"strings"
	"testing"
)

const (
	revA = "1a2b3c4d5e6f708192a3b4c5d6e7f80912345678"
	revB = "0f0e0d0c0b0a09080706050403020100ffeeddcc"
	digA = "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0"
	digB = "0000111122223333444455556666777788889999aaaabbbbccccddddeeeeffff"
)

func member(name, addr string, st State, rev, dig string, bal, rules int, errText string) Member {
	return Member{Name: name, Address: addr, State: st, NodeState: NodeState{Revision: rev, Digest: dig, Balancers: bal, Rules: rules, Error: errText}}
}

func TestBuildStatus(t *testing.T) {
	a := member("host-a", "198.18.0.1:7946", StateAlive, revA, digA, 2, 6, "")
	b := member("host-b", "198.18.0.2:7946", StateAlive, revA, digA, 1, 3, "")
	c := member("host-c", "198.18.0.3:7946", StateSuspect, revA, digA, 0, 0, "")
	obs := Member{Name: "laptop", Address: "198.18.0.99:40000", State: StateAlive, Observer: true}
	tests := []struct {
		name          string
		revision      string
		members       []Member
		wantConverged bool
		wantRevision  string
		wantReason    string
		wantListed    int
	}{
		{"all agree", revA, []Member{c, a, b}, true, revA, "", 3},
		{"observer not listed", revA, []Member{a, obs, b}, true, revA, "", 2},
		{"dead member ignored", revA, []Member{a, b, member("host-d", "198.18.0.4:7946", StateDead, revB, digB, 1, 1, "old")}, true, revA, "", 3},
		{"left member ignored", revA, []Member{a, member("host-d", "", StateLeft, "", "", 0, 0, "")}, true, revA, "", 2},
		{"other revision", revA, []Member{a, member("host-b", "x", StateAlive, revB, digB, 1, 1, "")}, false, revA, "host-b on 0f0e0d0, not 1a2b3c4", 2},
		{"other digest", revA, []Member{a, b, member("host-c", "x", StateAlive, revA, digB, 1, 1, "")}, false, revA, "host-c digest 00001111 differs from 9f8e7d6c", 3},
		{"error", revA, []Member{a, member("host-b", "x", StateAlive, revA, digA, 1, 1, "specs/a.yaml:3: unknown field\nmore")}, false, revA, "host-b: specs/a.yaml:3: unknown field", 2},
		{"nothing applied", revA, []Member{a, member("host-b", "x", StateAlive, "", "", 0, 0, "")}, false, revA, "host-b has applied no revision", 2},
		{"observer picks majority", "", []Member{obs, a, b, member("host-c", "x", StateAlive, revB, digB, 0, 0, "")}, false, revA, "host-c on 0f0e0d0, not 1a2b3c4", 3},
		{"no alive member", "", []Member{obs}, false, "", "no alive member", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := BuildStatus(tt.revision, tt.members)
			if s.Converged != tt.wantConverged || s.Revision != tt.wantRevision || s.Reason != tt.wantReason || len(s.Members) != tt.wantListed {
				t.Errorf("BuildStatus(%.7s, …) = converged %v revision %.7s reason %q listed %d; want %v %.7s %q %d",
					tt.revision, s.Converged, s.Revision, s.Reason, len(s.Members), tt.wantConverged, tt.wantRevision, tt.wantReason, tt.wantListed)
			}
			for i := 1; i < len(s.Members); i++ {
				if s.Members[i-1].Name >= s.Members[i].Name {
					t.Errorf("members not sorted: %s before %s", s.Members[i-1].Name, s.Members[i].Name)
				}
			}
		})
	}
}

func TestStatusCurrent(t *testing.T) {
	s := BuildStatus(revA, []Member{member("host-a", "x", StateAlive, revA, digA, 1, 1, "")})
	if ok, why := s.Current(); !ok {
		t.Errorf("Current() = false, %q; want true", why)
	}
	s.Latest = revB
	if ok, why := s.Current(); ok || !strings.Contains(why, "0f0e0d0 is not applied") {
		t.Errorf("Current() with newer Latest = %v, %q; want false naming 0f0e0d0", ok, why)
	}
}

func TestErrorLine(t *testing.T) {
	tests := []struct {
		err  string
		n    int
		want string
	}{
		{"", 10, ""},
		{"short", 10, "short"},
		{"  first line  \nsecond", 80, "first line"},
		{"0123456789", 10, "0123456789"},
		{"0123456789a", 10, "012345678…"},
		{"ééééééé", 5, "éééé…"},
	}
	for _, tt := range tests {
		if got := (MemberStatus{Error: tt.err}).ErrorLine(tt.n); got != tt.want {
			t.Errorf("ErrorLine(%q, %d) = %q; want %q", tt.err, tt.n, got, tt.want)
		}
	}
}

// TestStatusJSONContract checks the field names README.md documents for
// `weir status -o json`.
func TestStatusJSONContract(t *testing.T) {
	s := BuildStatus(revA, []Member{member("host-a", "198.18.0.1:7946", StateAlive, revA, digA, 2, 6, "")})
	var raw map[string]any
	js, _ := json.Marshal(s)
	if err := json.Unmarshal(js, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"revision", "converged", "members"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("status JSON lacks %q: %s", k, js)
		}
	}
	m := raw["members"].([]any)[0].(map[string]any)
	for _, k := range []string{"name", "address", "state", "revision", "digest", "balancers", "rules", "error"} {
		if _, ok := m[k]; !ok {
			t.Errorf("member JSON lacks %q: %v", k, m)
		}
	}
}
