package netfilter

import "testing"

func TestNormalizeRule(t *testing.T) {
	tests := []struct{ rendered, saved string }{
		{"-p tcp -s 198.19.1.2 -d 198.20.0.10 --dport 80 -j X", "-s 198.19.1.2/32 -d 198.20.0.10/32 -p tcp -m tcp --dport 80 -j X"},
		{"-m statistic --mode random --probability 0.3333333333 -j X", "-m statistic --mode random --probability 0.33333333349 -j X"},
		{"-m comment --comment \"a b\" -j X", `-m comment --comment "a b" -j X`},
		{"! -s 10.0.0.0/8 -j X", "! -s 10.0.0.0/8 -j X"},
		{"--protocol udp --destination 198.20.0.1 --dport 53 --jump X", "-d 198.20.0.1/32 -p udp -m udp --dport 53 -j X"},
		{"-s 10.1.2.3/8 -j X", "-s 10.0.0.0/8 -j X"},
		{"-d 198.20.0.17/32 -p tcp --dport 0:65535 -j X", "-d 198.20.0.17/32 -p tcp -j X"},
		// Render's shapes: DNAT straight from a WEIR-SVC rule, and a dispatch
		// leaf that matches its only source guest.
		{"-p udp -m comment --comment b -m statistic --mode random --probability 0.3333333333 -j DNAT --to-destination 198.19.2.3:53",
			"-p udp -m comment --comment b -m statistic --mode random --probability 0.33333333349 -j DNAT --to-destination 198.19.2.3:53"},
		{"-d 198.20.0.10 -s 198.19.1.2 -p tcp --dport 80 -m comment --comment b -j WEIR-SVC-X",
			"-s 198.19.1.2/32 -d 198.20.0.10/32 -p tcp -m tcp --dport 80 -m comment --comment b -j WEIR-SVC-X"},
	}
	for _, tt := range tests {
		if a, b := normalizeRule(tt.rendered), normalizeRule(tt.saved); a != b {
			t.Errorf("normalizeRule(%q) = %q; normalizeRule(%q) = %q; want equal", tt.rendered, a, tt.saved, b)
		}
	}
	if a, b := normalizeRule("-d 198.20.0.1/32 -j X"), normalizeRule("-d 198.20.0.2/32 -j X"); a == b {
		t.Errorf("normalizeRule maps different addresses to the same %q", a)
	}
	if a, b := normalizeRule("-m statistic --mode random --probability 0.25 -j X"), normalizeRule("-m statistic --mode random --probability 0.5 -j X"); a == b {
		t.Errorf("normalizeRule maps different probabilities to the same %q", a)
	}
}
