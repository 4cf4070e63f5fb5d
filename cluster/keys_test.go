package cluster

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestParseKeys(t *testing.T) {
	k16 := base64.StdEncoding.EncodeToString(make([]byte, 16))
	k32 := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))
	k24 := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("m", 24)))
	tests := []struct {
		name    string
		in      string
		want    []int // key lengths in order
		wantErr string
	}{
		{"one", k32 + "\n", []int{32}, ""},
		{"comments and blanks", "# primary\n\n  " + k16 + "  \n# old\n" + k24 + "\n", []int{16, 24}, ""},
		{"no trailing newline", k32 + "\n" + k16, []int{32, 16}, ""},
		{"empty", "# nothing\n\n", nil, "no key"},
		{"bad base64", k32 + "\nnot base64!\n", nil, "line 2: not base64"},
		{"bad length", base64.StdEncoding.EncodeToString(make([]byte, 20)), nil, "line 1: key is 20 bytes"},
		{"duplicate", k32 + "\n" + k32 + "\n", nil, "line 2: same key as line 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, err := ParseKeys([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseKeys(%q) error = %v; want one containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseKeys(%q): %v", tt.in, err)
			}
			var got []int
			for _, k := range keys {
				got = append(got, len(k))
			}
			if len(got) != len(tt.want) {
				t.Fatalf("ParseKeys(%q) key lengths = %v; want %v", tt.in, got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("ParseKeys(%q) key lengths = %v; want %v", tt.in, got, tt.want)
				}
			}
		})
	}
}

func TestGenerateKey(t *testing.T) {
	a, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := GenerateKey()
	if a == b {
		t.Errorf("GenerateKey returned %q twice", a)
	}
	keys, err := ParseKeys([]byte(a + "\n"))
	if err != nil || len(keys) != 1 || len(keys[0]) != 32 {
		t.Errorf("ParseKeys(GenerateKey()) = %d keys, %v; want one 32-byte key", len(keys), err)
	}
}
