package plan

import (
	"strconv"
	"testing"
)

// appendQuote must write exactly what strconv.AppendQuote writes: the
// canonical encoding, and so every digest, depends on it.
func TestAppendQuoteIsStrconv(t *testing.T) {
	for _, s := range []string{"", "web-1", "host-a", `a"b`, `a\b`, "tab\there", "new\nline", "del\x7f", "é", "\xff", "~ !", "日本"} {
		if got, want := string(appendQuote([]byte("x"), s)), string(strconv.AppendQuote([]byte("x"), s)); got != want {
			t.Errorf("appendQuote(%q) = %s; want %s", s, got, want)
		}
	}
}

func FuzzAppendQuote(f *testing.F) {
	f.Add("orders-1")
	f.Add("a\"\\\x00é")
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := string(appendQuote(nil, s)), strconv.Quote(s); got != want {
			t.Errorf("appendQuote(%q) = %s; want %s", s, got, want)
		}
	})
}
