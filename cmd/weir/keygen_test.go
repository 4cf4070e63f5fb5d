package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"weir/cluster"
)

func TestKeygen(t *testing.T) {
	var keys []string
	for range 2 {
		var out, errOut bytes.Buffer
		if code := runKeygen(context.Background(), nil, &out, &errOut); code != exitOK {
			t.Fatalf("weir keygen = %d; stderr %s", code, errOut.String())
		}
		parsed, err := cluster.ParseKeys(out.Bytes())
		if err != nil || len(parsed) != 1 || len(parsed[0]) != 32 {
			t.Fatalf("weir keygen printed %q: %d keys, %v; want one 32-byte key", out.String(), len(parsed), err)
		}
		keys = append(keys, strings.TrimSpace(out.String()))
	}
	if keys[0] == keys[1] {
		t.Errorf("weir keygen printed the same key twice: %s", keys[0])
	}
	var out, errOut bytes.Buffer
	if code := runKeygen(context.Background(), []string{"extra"}, &out, &errOut); code != exitUsage {
		t.Errorf("weir keygen extra = %d; want %d", code, exitUsage)
	}
}
