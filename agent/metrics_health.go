package agent

import (
	"github.com/prometheus/client_golang/prometheus"

	"weir/agent/health"
)

// healthMetrics are the health-check metrics. Their labels are states, never
// balancers or targets, so the series stay a handful however large the
// specs grow.
type healthMetrics struct {
	transitions *prometheus.CounterVec
}

// registerHealthMetrics adds the health-check metrics to a's registry:
// the transitions counter, and gauges read at scrape time from the prober
// and the applied plan.
func (a *Agent) registerHealthMetrics() {
	a.hm = &healthMetrics{transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weir_health_transitions_total",
		Help: "State changes of this host's endpoint checks, by the state entered (healthy, unhealthy; unknown when a revision removed the check).",
	}, []string{"to"})}
	for _, s := range []health.State{health.Healthy, health.Unhealthy, health.Unknown} {
		a.hm.transitions.WithLabelValues(s.String()) // every series exists from the start
	}
	failOpen := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "weir_balancers_fail_open",
		Help: "Balancers of the applied plan that fail open: no target with weight above 0 passes its health check.",
	}, func() float64 {
		a.mu.Lock()
		defer a.mu.Unlock()
		return float64(len(a.applied.failOpen))
	})
	a.metrics.registry.MustRegister(a.hm.transitions, failOpen, &endpointsCollector{p: a.prober})
}

// transition counts one state change.
func (m *healthMetrics) transition(t health.Transition) {
	m.transitions.WithLabelValues(t.To.String()).Inc()
}

// endpointsCollector reports this host's endpoint checks by state at scrape
// time, so the gauge is never stale between transitions.
type endpointsCollector struct{ p *health.Prober }

var endpointsDesc = prometheus.NewDesc("weir_health_endpoints",
	"Endpoint checks this host probes (its own guests), by state: healthy, unhealthy, or unknown until enough results are in.",
	[]string{"state"}, nil)

// Describe implements prometheus.Collector.
func (c *endpointsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- endpointsDesc }

// Collect implements prometheus.Collector.
func (c *endpointsCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[health.State]int{}
	for _, st := range c.p.Snapshot() {
		counts[st.State]++
	}
	for _, s := range []health.State{health.Healthy, health.Unhealthy, health.Unknown} {
		ch <- prometheus.MustNewConstMetric(endpointsDesc, prometheus.GaugeValue, float64(counts[s]), s.String())
	}
}
