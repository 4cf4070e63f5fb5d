package cluster

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

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

// statusFixtures are rendered to golden files as table and JSON.
func statusFixtures() map[string]Status {
	converged := BuildStatus(revA, []Member{
		member("host-a", "198.18.0.1:7946", StateAlive, revA, digA, 2, 6, ""),
		member("host-b", "198.18.0.2:7946", StateAlive, revA, digA, 1, 3, ""),
		member("host-c", "198.18.0.3:7946", StateSuspect, revA, digA, 0, 0, ""),
		member("host-d", "198.18.0.4:7946", StateLeft, revB, digB, 1, 2, ""),
		{Name: "laptop", Address: "198.18.0.99:51000", State: StateAlive, Observer: true},
	})
	diverged := BuildStatus("dir:"+digA, []Member{
		member("host-a", "198.18.0.1:7946", StateAlive, "dir:"+digA, digA, 2, 6, ""),
		member("host-b", "198.18.0.2:7946", StateAlive, "dir:"+digB, digB, 2, 6, ""),
		member("host-c", "198.18.0.3:7946", StateAlive, "dir:"+digA, digA, 0, 0, "apply: iptables-restore: exit status 2: line 7 failed"),
		member("host-d", "198.18.0.4:7946", StateDead, "", "", 0, 0, ""),
	})
	diverged.Latest = "dir:" + digB
	return map[string]Status{"status_converged": converged, "status_diverged": diverged}
}

func TestStatusGolden(t *testing.T) {
	for name, s := range statusFixtures() {
		t.Run(name, func(t *testing.T) {
			var table bytes.Buffer
			if err := WriteTable(&table, s); err != nil {
				t.Fatal(err)
			}
			var again bytes.Buffer
			_ = WriteTable(&again, s)
			if !bytes.Equal(table.Bytes(), again.Bytes()) {
				t.Errorf("WriteTable is not deterministic")
			}
			golden(t, name+".txt", table.Bytes())

			js, err := json.MarshalIndent(s, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden(t, name+".json", append(js, '\n'))

			var back Status
			if err := json.Unmarshal(js, &back); err != nil || back.Revision != s.Revision || len(back.Members) != len(s.Members) || back.Converged != s.Converged {
				t.Errorf("JSON round trip = %+v, %v; want %+v", back, err, s)
			}
		})
	}
}

// TestStatusJSONContract checks the field names DESIGN.md promises.
func TestStatusJSONContract(t *testing.T) {
	s := statusFixtures()["status_converged"]
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

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run go test -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden file (run go test -update after checking)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}
