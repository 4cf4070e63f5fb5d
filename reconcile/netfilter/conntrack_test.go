package netfilter

import (
	"fmt"
	"net/netip"
	"testing"

	"weir/reconcile/render"
	"weir/spec"
)

func TestRemovedFlows(t *testing.T) {
	fe := spec.Frontend{Address: netip.MustParseAddr("198.20.0.1"), Port: 53, Protocol: spec.UDP}
	fe2 := fe
	fe2.Port = 54
	tcp := fe
	tcp.Protocol = spec.TCP
	a, b := netip.MustParseAddrPort("198.19.1.1:53"), netip.MustParseAddrPort("198.19.1.2:53")
	flow := func(fe spec.Frontend, targets ...netip.AddrPort) render.Flow {
		return render.Flow{Balancer: "x", Frontend: fe, Targets: targets}
	}
	tests := []struct {
		name     string
		old, new []render.Flow
		want     []string
	}{
		{"unchanged", []render.Flow{flow(fe, a, b)}, []render.Flow{flow(fe, b, a)}, nil},
		{"target left", []render.Flow{flow(fe, a, b)}, []render.Flow{flow(fe, a)}, []string{"udp 198.20.0.1:53->198.19.1.2:53"}},
		{"balancer gone", []render.Flow{flow(fe, a)}, nil, []string{"udp 198.20.0.1:53->198.19.1.1:53"}},
		{"frontend moved", []render.Flow{flow(fe, a)}, []render.Flow{flow(fe2, a)}, []string{"udp 198.20.0.1:53->198.19.1.1:53"}},
		{"tcp ignored", []render.Flow{flow(tcp, a)}, nil, nil},
	}
	for _, tt := range tests {
		var got []string
		for _, f := range removedFlows(tt.old, tt.new) {
			got = append(got, f.String())
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("removedFlows(%s) = %q; want %q", tt.name, got, tt.want)
		}
	}
}
