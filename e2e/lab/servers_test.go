package lab

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"weir/internal/testsupport"
)

func TestEchoServerKeepsTheConnection(t *testing.T) {
	port := strconv.Itoa(testsupport.FreePort(t))
	if err := serveEcho("orders-1", port, make(chan error, 1)); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp4", "127.0.0.1:"+port)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for _, want := range []string{"orders-1\n", "ping 1\n", "ping 2\n"} {
		if want != "orders-1\n" {
			io.WriteString(c, want)
		}
		if got, err := br.ReadString('\n'); got != want || err != nil {
			t.Fatalf("read %q, %v; want %q", got, err, want)
		}
	}
}

func TestHTTPServerAnswersItsCode(t *testing.T) {
	for _, code := range []int{200, 500} {
		port := strconv.Itoa(testsupport.FreePort(t))
		if err := serveHTTP("orders-2", port+"="+strconv.Itoa(code), make(chan error, 1)); err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get("http://127.0.0.1:" + port + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != code || strings.TrimSpace(string(body)) != "orders-2" {
			t.Errorf("GET = %d %q; want %d orders-2", resp.StatusCode, body, code)
		}
	}
	if err := serveHTTP("x", strconv.Itoa(testsupport.FreePort(t))+"=42", make(chan error, 1)); err == nil {
		t.Error("serveHTTP with status 42: no error")
	}
}
