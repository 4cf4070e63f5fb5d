package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"weir/e2e/lab"
)

// procKB reads a "VmRSS"-style field of /proc/PID/status, in kB.
func procKB(t *testing.T, pid int, field string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestAPIAbuseMemory sends the agent eight 25 MiB bodies with a wrong token
// and eight more with a signature it must check, all at once: every one is
// refused, and the agent's peak memory barely moves.
func TestAPIAbuseMemory(t *testing.T) {
	e := newEnv(t, 1, 1, 1)
	c := e.push("basic", renderSpecs(basicHosts(), []balancerSpec{ordersBalancer(nil)}))
	ha := e.host("host-a")
	secret := filepath.Join(e.lab.Dir, "webhook-secret")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := e.startAgent(ha, append(e.gitArgs(), "--webhook-secret-file", secret)...)
	if _, err := e.weir.WaitConverged(e.ctx, waitFor, []*lab.Host{ha}, c, []string{"host-a"}); err != nil {
		t.Fatal(err)
	}
	rss, hwm := procKB(t, p.Pid(), "VmRSS"), procKB(t, p.Pid(), "VmHWM")

	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return lab.DialIn(ctx, ha.NS, network, addr)
		}}}
	codes := make(chan string, 16)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", "http://"+lab.APIAddr+"/refresh", io.LimitReader(zeroReader{}, 25<<20))
			if i < 8 {
				req.ContentLength = 25 << 20
				req.Header.Set("Authorization", "Bearer wrong")
			} else {
				req.ContentLength = -1 // chunked: the agent must read to check
				req.Header.Set("X-Hub-Signature-256", "sha256="+strings.Repeat("00", 32))
			}
			resp, err := client.Do(req)
			if err != nil {
				codes <- "reset"
				return
			}
			resp.Body.Close()
			codes <- strconv.Itoa(resp.StatusCode)
		})
	}
	wg.Wait()
	close(codes)
	var got []string
	for c := range codes {
		got = append(got, c)
		if c == "202" {
			t.Errorf("a request with a wrong token or signature was accepted")
		}
	}
	rss2, hwm2 := procKB(t, p.Pid(), "VmRSS"), procKB(t, p.Pid(), "VmHWM")
	t.Logf("FIGURE agent memory during 16 refused 25 MiB bodies: VmRSS %d → %d kB, VmHWM %d → %d kB (answers %v)", rss, rss2, hwm, hwm2, got)
	if grown := hwm2 - hwm; grown > 32<<10 {
		t.Errorf("the agent's peak memory grew by %d kB; want under 32 MiB", grown)
	}
}
