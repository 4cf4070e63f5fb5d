package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"weir/cluster"
)

// fakeKeysAgent answers /keys like an agent of three members, host-c of
// which does not answer; it records the requests.
func fakeKeysAgent(t *testing.T) (string, *[]string) {
	t.Helper()
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.Path+" "+string(body))
		mu.Unlock()
		rep := cluster.KeyReport{Op: cluster.KeyOp(strings.TrimPrefix(r.URL.Path, "/keys/")), Key: "sha256:00000000000000aa", Members: []cluster.KeyMember{
			{Name: "host-a", OK: true}, {Name: "host-b", OK: true}, {Name: "host-c", Error: "no answer"}}}
		switch {
		case r.URL.Path == "/keys":
			rep.Op, rep.Key = cluster.KeyList, ""
			rep.Keys = []cluster.KeyHolding{{Fingerprint: "sha256:00000000000000aa", Members: 2, Primary: 2}, {Fingerprint: "sha256:00000000000000bb", Members: 1}}
		case strings.HasSuffix(r.URL.Path, "/use"):
			http.Error(w, "not using key sha256:00000000000000bb: host-b lack it; run `weir keys install` first", http.StatusConflict)
			return
		}
		json.NewEncoder(w).Encode(rep)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), &got
}

func TestKeysCommand(t *testing.T) {
	api, requests := fakeKeysAgent(t)
	key, _ := cluster.GenerateKey()
	keyFile := agentKeyFile(t, 0o600)
	fromFile, _ := cluster.ReadKeyFile(keyFile)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{"list", []string{"list"}, exitFail, "KEY                      HELD BY  PRIMARY ON\nsha256:00000000000000aa  2/2      2/2\nsha256:00000000000000bb  1/2      0/2\n2/3 members answered\nhost-c: no answer\n", "1 member of 3 failed"},
		{"flags after the operation", []string{"list", "-o", "json"}, exitFail, `"fingerprint": "sha256:00000000000000bb"`, ""},
		{"install", []string{"install", key}, exitFail, "install key sha256:00000000000000aa: ok on 2/3 members\nhost-c: no answer\n", ""},
		{"install from a file", []string{"remove", "@" + keyFile}, exitFail, "remove key", ""},
		{"refused", []string{"use", key}, exitFail, "", "host-b lack it"},
		{"no operation", nil, exitUsage, "", "name an operation"},
		{"unknown operation", []string{"rotate", key}, exitUsage, "", `unknown operation "rotate"`},
		{"no key", []string{"install"}, exitUsage, "", "install takes one KEY"},
		{"bad key", []string{"install", "c2hvcnQ="}, exitUsage, "", "key is 5 bytes"},
		{"world-readable key file", []string{"install", "@" + agentKeyFile(t, 0o644)}, exitUsage, "", "chmod 600"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, runKeys, append([]string{"--api", api}, tt.args...)...)
			if code != tt.wantCode || !strings.Contains(out, tt.wantOut) || !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("weir keys %v = %d\nstdout %q\nstderr %q\nwant %d, stdout with %q, stderr with %q", tt.args, code, out, errOut, tt.wantCode, tt.wantOut, tt.wantErr)
			}
		})
	}
	want := []string{
		"GET /keys ", "GET /keys ",
		`POST /keys/install {"key":"` + key + `"}`,
		`POST /keys/remove {"key":"` + base64Key(fromFile[0]) + `"}`,
		`POST /keys/use {"key":"` + key + `"}`,
	}
	if strings.Join(*requests, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(*requests, "\n"), strings.Join(want, "\n"))
	}
	_ = os.Remove(keyFile)
}

func base64Key(k []byte) string {
	s, _ := json.Marshal(k) // encoding/json writes []byte as standard base64
	return strings.Trim(string(s), `"`)
}

func TestKeysCommandSendsToken(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Get("Authorization")
		json.NewEncoder(w).Encode(cluster.KeyReport{Op: cluster.KeyList, Members: []cluster.KeyMember{{Name: "host-a", OK: true}}})
	}))
	defer srv.Close()
	tokenFile := agentWriteTemp(t, "s3cret\n")
	code, _, errOut := runCLI(t, runKeys, "--api", strings.TrimPrefix(srv.URL, "http://"), "--api-token-file", tokenFile, "list")
	if code != exitOK || got != "Bearer s3cret" {
		t.Errorf("weir keys --api-token-file = %d (%s), Authorization %q; want 0 and Bearer s3cret", code, errOut, got)
	}
}
