package cluster

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metrics "github.com/hashicorp/go-metrics"

	"weir/spec"
)

// sentSink is a go-metrics sink that adds up memberlist's own counters of
// the bytes it sends: memberlist.udp.sent (gossip, probes, broadcasts) and
// memberlist.tcp.sent (push/pull syncs, both ways, and joins).
type sentSink struct{ udp, tcp atomic.Int64 }

func (s *sentSink) count(key []string, v float32) {
	switch strings.Join(key, ".") {
	case "memberlist.udp.sent":
		s.udp.Add(int64(v))
	case "memberlist.tcp.sent":
		s.tcp.Add(int64(v))
	}
}

func (s *sentSink) SetGauge([]string, float32)                                     {}
func (s *sentSink) SetGaugeWithLabels([]string, float32, []metrics.Label)          {}
func (s *sentSink) SetPrecisionGauge([]string, float64)                            {}
func (s *sentSink) SetPrecisionGaugeWithLabels([]string, float64, []metrics.Label) {}
func (s *sentSink) EmitKey([]string, float32)                                      {}
func (s *sentSink) IncrCounter(key []string, v float32)                            { s.count(key, v) }
func (s *sentSink) IncrCounterWithLabels(key []string, v float32, _ []metrics.Label) {
	s.count(key, v)
}
func (s *sentSink) AddSample([]string, float32)                            {}
func (s *sentSink) AddSampleWithLabels([]string, float32, []metrics.Label) {}

// hostChecks are the 1,000 endpoint check IDs of host i.
func hostChecks(i int) []spec.CheckID {
	out := make([]spec.CheckID, 1000)
	for j := range out {
		binary.BigEndian.PutUint32(out[j][:], uint32(i))
		binary.BigEndian.PutUint32(out[j][4:], uint32(j))
	}
	return out
}

// BenchmarkHealthGossip measures the bytes per second each host of a
// ten-node LAN-profile cluster sends (memberlist's own counters: UDP
// gossip and TCP push/pull) while every host has 1,000 endpoint checks:
// none failing, 100 failing, and 100 failing with 1 or 10 of them changing
// state per second on every host. The window is the LAN push/pull interval
// (30 s), so each node's periodic sync is in it. Run with -benchtime 1x.
func BenchmarkHealthGossip(b *testing.B) {
	sink := &sentSink{}
	cfg := metrics.DefaultConfig("")
	cfg.EnableHostname, cfg.EnableRuntimeMetrics, cfg.EnableServiceLabel = false, false, false
	if _, err := metrics.NewGlobal(cfg, sink); err != nil {
		b.Fatal(err)
	}
	for _, sc := range []struct {
		name            string
		failing, perSec int
	}{{"idle", 0, 0}, {"5-failing+1/s", 5, 1}, {"100-failing", 100, 0}, {"100-failing+1/s", 100, 1}, {"100-failing+10/s", 100, 10}} {
		b.Run(sc.name, func(b *testing.B) {
			for range b.N {
				perHost, lag := gossipWindow(b, sink, sc.failing, sc.perSec, 30*time.Second)
				b.ReportMetric(perHost, "B/s/host")
				b.ReportMetric(float64(lag.Milliseconds()), "max-lag-ms")
			}
		})
	}
}

// gossipWindow starts ten nodes, reports failing checks of each, then
// counts the bytes sent during window while perSec checks per host change
// state every second; it returns bytes per second per host, and the longest
// a change of host 0 took to reach every node meanwhile (a check of host 0
// that starts failing every second, and stays so).
func gossipWindow(b *testing.B, sink *sentSink, failing, perSec int, window time.Duration) (float64, time.Duration) {
	nodes := lanCluster(b, 10)
	sets := make([][]spec.CheckID, len(nodes))
	for i, c := range nodes {
		sets[i] = slices.Clone(hostChecks(i)[:failing])
		if err := c.SetHealth(sets[i]); err != nil {
			b.Fatal(err)
		}
	}
	// The initial reports are sent and passed on before the window opens.
	eventually(b, time.Minute, "every queue empty", func() (bool, string) {
		for _, c := range nodes {
			if n := c.queue.NumQueued(); n > 0 {
				return false, fmt.Sprintf("%s has %d queued", c.cfg.Node, n)
			}
		}
		return true, ""
	})
	time.Sleep(2 * time.Second) // the joins' own gossip dies down too
	udp0, tcp0 := sink.udp.Load(), sink.tcp.Load()
	start := time.Now()
	var lagNS atomic.Int64
	var wg sync.WaitGroup
	for n := 0; time.Since(start) < window; n++ {
		for i, c := range nodes {
			for range perSec {
				sets[i] = toggle(sets[i], hostChecks(i)[failing+rand.IntN(1000-failing)])
			}
			if i == 0 && perSec > 0 {
				marker := hostChecks(999)[n] // a check no toggle touches
				sets[0] = append(sets[0], marker)
				wg.Go(func() {
					d := int64(seenBy(nodes, c.cfg.Node, marker))
					for old := lagNS.Load(); d > old && !lagNS.CompareAndSwap(old, d); old = lagNS.Load() {
					}
				})
			}
			if perSec > 0 {
				if err := c.SetHealth(sets[i]); err != nil {
					b.Fatal(err)
				}
			}
		}
		time.Sleep(time.Second) // pacing the changes, not waiting for a condition
	}
	sent := sink.udp.Load() - udp0 + sink.tcp.Load() - tcp0
	elapsed := time.Since(start).Seconds()
	wg.Wait()
	lag := time.Duration(lagNS.Load())
	b.Logf("udp %d B, tcp %d B in %.1f s; max lag %v", sink.udp.Load()-udp0, sink.tcp.Load()-tcp0, elapsed, lag)
	for _, c := range nodes {
		c.Shutdown()
	}
	return float64(sent) / elapsed / float64(len(nodes)), lag
}

// seenBy returns how long it takes until every node holds id in origin's
// report (at most 10 s).
func seenBy(nodes []*Cluster, origin string, id spec.CheckID) time.Duration {
	start := time.Now()
	for time.Since(start) < 10*time.Second {
		all := true
		for _, c := range nodes {
			if _, ok := slices.BinarySearchFunc(c.UnhealthyChecks()[origin], id, compareID); !ok {
				all = false
				break
			}
		}
		if all {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

func compareID(a, b spec.CheckID) int { return bytes.Compare(a[:], b[:]) }

// toggle adds id to set, or removes it when it is there.
func toggle(set []spec.CheckID, id spec.CheckID) []spec.CheckID {
	if i := slices.Index(set, id); i >= 0 {
		return slices.Delete(set, i, i+1)
	}
	return append(set, id)
}
