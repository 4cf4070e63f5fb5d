package agent

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"weir/cluster"
)

// metrics are the agent's Prometheus metrics, on a registry of their own so
// that two agents in one process (tests) never share counters.
type metrics struct {
	registry     *prometheus.Registry
	duration     prometheus.Histogram
	revision     *prometheus.GaugeVec
	rules        prometheus.Gauge
	balancers    prometheus.Gauge
	fetchErrors  prometheus.Counter
	specErrors   prometheus.Counter
	driftRepairs prometheus.Counter
	applyErrors  prometheus.Counter
	lastApply    prometheus.Gauge
	passOverruns prometheus.Counter
	saveErrors   prometheus.Counter
	apiRefused   *prometheus.CounterVec
	apiInFlight  prometheus.Gauge
}

func newMetrics(a *Agent) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "weir_reconcile_duration_seconds",
			Help: "Time of one reconcile pass: fetch, validate, plan, apply.",
			// iptables-restore takes milliseconds; a Git fetch can take seconds.
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}),
		revision: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weir_applied_revision_info",
			Help: "The applied (last good) spec revision, as a label; the value is always 1.",
		}, []string{"revision"}),
		rules:        gauge("weir_rules", "Rules this host has applied."),
		balancers:    gauge("weir_balancers", "Balancers this host sets."),
		fetchErrors:  counter("weir_git_fetch_errors_total", "Failed fetches from the spec source (Git or directory)."),
		specErrors:   counter("weir_rejected_revisions_total", "Fetched revisions rejected by validation."),
		driftRepairs: counter("weir_drift_repairs_total", "Resyncs that found the live rules drifted and repaired them."),
		applyErrors:  counter("weir_apply_errors_total", "Failed applies and drift checks."),
		lastApply:    gauge("weir_last_apply_timestamp_seconds", "Unix time of the last successful apply."),
		passOverruns: counter("weir_reconcile_deadline_exceeded_total", "Reconcile passes that overran their deadline."),
		saveErrors:   counter("weir_last_good_save_errors_total", "Failed saves of the last good revision to the state directory; each is retried on the next pass."),
		apiRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_api_requests_refused_total",
			Help: "API requests refused before they were served, by reason (unauthorized, too_large, busy).",
		}, []string{"reason"}),
		apiInFlight: gauge("weir_api_requests_in_flight", "API requests being served now (at most the concurrency limit)."),
	}
	healthy := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "weir_healthy",
		Help: "1 when GET /healthz answers 200, 0 when it answers 503.",
	}, func() float64 {
		if a.Health().OK {
			return 1
		}
		return 0
	})
	m.registry.MustRegister(m.duration, m.revision, m.rules, m.balancers, m.fetchErrors,
		m.specErrors, m.driftRepairs, m.applyErrors, m.lastApply, m.passOverruns, m.saveErrors,
		m.apiRefused, m.apiInFlight, healthy,
		&membersCollector{cl: a.deps.Cluster},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

func gauge(name, help string) prometheus.Gauge {
	return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
}

func counter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
}

// setApplied records a successful apply.
func (m *metrics) setApplied(rev string, d Desired, at time.Time) {
	m.revision.Reset()
	m.revision.WithLabelValues(rev).Set(1)
	m.rules.Set(float64(d.Rules))
	m.balancers.Set(float64(d.Balancers))
	m.lastApply.Set(float64(at.UnixNano()) / 1e9)
}

// membersCollector reports members by state at scrape time, so the gauge is
// never stale between membership events.
type membersCollector struct{ cl Cluster }

var membersDesc = prometheus.NewDesc("weir_members", "Cluster members by gossip state (observers excluded).", []string{"state"}, nil)

// Describe implements prometheus.Collector.
func (c *membersCollector) Describe(ch chan<- *prometheus.Desc) { ch <- membersDesc }

// Collect implements prometheus.Collector.
func (c *membersCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[cluster.State]int{}
	for _, m := range c.cl.Members() {
		if !m.Observer {
			counts[m.State]++
		}
	}
	for _, s := range []cluster.State{cluster.StateAlive, cluster.StateSuspect, cluster.StateDead, cluster.StateLeft} {
		ch <- prometheus.MustNewConstMetric(membersDesc, prometheus.GaugeValue, float64(counts[s]), string(s))
	}
}
