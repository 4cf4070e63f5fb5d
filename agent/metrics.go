package agent

import (
	"time"

	gometrics "github.com/hashicorp/go-metrics"
	gmprom "github.com/hashicorp/go-metrics/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"weir/agent/source"
	"weir/cluster"
)

// Build says which build of weir runs; weir_build_info carries it as labels.
type Build struct {
	Version   string // release tag or `git describe`
	Commit    string // commit hash, "" when unknown
	GoVersion string // the Go release that built it
}

// Values of the result label of weir_source_fetches_total, weir_applies_total
// and weir_drift_checks_total.
const (
	resultSuccess  = "success"
	resultError    = "error"
	resultInSync   = "in_sync"  // a drift check found the live rules as applied
	resultRepaired = "repaired" // a drift check found drift and re-applied
)

// metrics are the agent's Prometheus metrics, on a registry of their own so
// that two agents in one process (tests) never share counters, and nothing
// reaches the process-wide default registry. Names follow Prometheus'
// conventions: counters end in _total, with a result label where both
// outcomes are counted, so that rates divide (README.md, "Metrics").
type metrics struct {
	registry      *prometheus.Registry
	duration      prometheus.Histogram
	revision      *prometheus.GaugeVec
	rules         prometheus.Gauge
	balancers     prometheus.Gauge
	fetches       *prometheus.CounterVec // by source and result
	specErrors    prometheus.Counter
	applies       *prometheus.CounterVec // by result
	driftChecks   *prometheus.CounterVec // by result
	driftRepairs  prometheus.Counter
	driftInterval prometheus.Gauge
	lastApply     prometheus.Gauge
	passOverruns  prometheus.Counter
	saveErrors    prometheus.Counter
	apiRefused    *prometheus.CounterVec
	apiInFlight   prometheus.Gauge
	source        string      // the fetches' source label: git or dir
	gossip        *gossipSink // memberlist's go-metrics, exported on registry
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
		rules:     gauge("weir_rules", "Rules this host has applied."),
		balancers: gauge("weir_balancers", "Balancers this host sets."),
		fetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_source_fetches_total",
			Help: "Fetches from the spec source by source (git or dir) and result (success or error); an overdue fetch counts as an error once.",
		}, []string{"source", "result"}),
		specErrors: counter("weir_rejected_revisions_total", "Fetched revisions rejected by validation."),
		applies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_applies_total",
			Help: "Applies of a planned ruleset to netfilter by result (success or error); drift repairs are in weir_drift_checks_total.",
		}, []string{"result"}),
		driftChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_drift_checks_total",
			Help: "Resync checks of the live rules by result: in_sync, repaired (drifted and re-applied) or error (the check or its repair failed).",
		}, []string{"result"}),
		driftRepairs:  counter("weir_drift_repairs_total", "Resyncs that found the live rules drifted and repaired them (weir_drift_checks_total{result=\"repaired\"})."),
		driftInterval: gauge("weir_drift_check_interval_seconds", "Seconds between drift checks: --resync, or longer when the last check's cost would exceed its CPU budget."),
		lastApply:     gauge("weir_last_apply_timestamp_seconds", "Unix time of the last successful apply."),
		passOverruns:  counter("weir_reconcile_deadline_exceeded_total", "Reconcile passes that overran their deadline."),
		saveErrors:    counter("weir_last_good_save_errors_total", "Failed saves of the last good revision to the state directory; each is retried on the next pass."),
		apiRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_api_requests_refused_total",
			Help: "API requests refused before they were served, by reason (unauthorized, too_large, busy).",
		}, []string{"reason"}),
		apiInFlight: gauge("weir_api_requests_in_flight", "API requests being served now (at most the concurrency limit)."),
		source:      sourceKind(a.deps.Source),
	}
	m.initLabels()
	m.driftInterval.Set(a.cfg.Resync.Seconds())
	m.registry.MustRegister(m.duration, m.revision, m.rules, m.balancers, m.fetches,
		m.specErrors, m.applies, m.driftChecks, m.driftRepairs, m.driftInterval, m.lastApply, m.passOverruns, m.saveErrors,
		m.apiRefused, m.apiInFlight, healthGauge(a), buildInfo(a.cfg.Build),
		&membersCollector{cl: a.deps.Cluster},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.gossip = newGossipSink(m.registry)
	return m
}

// initLabels creates every series known in advance at zero, so that a
// rate over them exists before the first event (Prometheus' advice).
func (m *metrics) initLabels() {
	for _, r := range []string{resultSuccess, resultError} {
		m.fetches.WithLabelValues(m.source, r)
		m.applies.WithLabelValues(r)
	}
	for _, r := range []string{resultInSync, resultRepaired, resultError} {
		m.driftChecks.WithLabelValues(r)
	}
	for _, r := range []string{"unauthorized", "too_large", "busy"} {
		m.apiRefused.WithLabelValues(r)
	}
}

// sourceKind is the source label of weir_source_fetches_total.
func sourceKind(s source.Source) string {
	switch s.(type) {
	case *source.Git:
		return "git"
	case *source.Dir:
		return "dir"
	}
	return "other"
}

// fetched counts one fetch from the source.
func (m *metrics) fetched(ok bool) {
	m.fetches.WithLabelValues(m.source, result(ok)).Inc()
}

// applied counts one apply.
func (m *metrics) applied(ok bool) { m.applies.WithLabelValues(result(ok)).Inc() }

func result(ok bool) string {
	if ok {
		return resultSuccess
	}
	return resultError
}

// healthGauge is weir_healthy: what GET /healthz answers, at scrape time.
func healthGauge(a *Agent) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "weir_healthy",
		Help: "1 when GET /healthz answers 200, 0 when it answers 503.",
	}, func() float64 {
		if a.Health().OK {
			return 1
		}
		return 0
	})
}

// buildInfo is weir_build_info, the usual constant 1 with the build as labels.
func buildInfo(b Build) prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "weir_build_info",
		Help: "The running build: version, commit and Go version as labels; the value is always 1.",
	}, []string{"version", "commit", "goversion"})
	g.WithLabelValues(b.Version, b.Commit, b.GoVersion).Set(1)
	return g
}

// GossipMetrics returns the go-metrics sink that exports memberlist's own
// metrics (weir_memberlist_*) on this agent's registry. memberlist reports
// through go-metrics' process-wide default, so the wiring installs it with
// InstallGossipMetrics, once per process.
func (a *Agent) GossipMetrics() gometrics.MetricSink { return a.metrics.gossip }

// InstallGossipMetrics makes sink the process-wide go-metrics sink that
// memberlist reports to, prefixing every name with "weir_" and adding
// neither host names nor go-metrics' own runtime metrics (the Go collector
// has those).
func InstallGossipMetrics(sink gometrics.MetricSink) error {
	cfg := gometrics.DefaultConfig("weir")
	cfg.EnableHostname, cfg.EnableRuntimeMetrics, cfg.EnableServiceLabel = false, false, false
	_, err := gometrics.NewGlobal(cfg, sink)
	return err
}

// gossipSink adapts go-metrics' Prometheus sink to Prometheus' naming:
// counters get the _total suffix. Timers stay summaries in milliseconds,
// as memberlist measures them (weir_memberlist_gossip, …).
type gossipSink struct{ *gmprom.PrometheusSink }

// newGossipSink returns a sink registered on reg only, never on
// Prometheus' default registry. Its series never expire: memberlist's
// label sets are few, and a series that vanished between scrapes would
// break rate().
func newGossipSink(reg prometheus.Registerer) *gossipSink {
	s, err := gmprom.NewPrometheusSinkFrom(gmprom.PrometheusOpts{Registerer: reg, Name: "weir_memberlist"})
	if err != nil {
		panic(err) // a fresh registry refuses nothing
	}
	return &gossipSink{s}
}

// IncrCounter implements gometrics.MetricSink.
func (s *gossipSink) IncrCounter(key []string, val float32) {
	s.PrometheusSink.IncrCounter(withTotal(key), val)
}

// IncrCounterWithLabels implements gometrics.MetricSink.
func (s *gossipSink) IncrCounterWithLabels(key []string, val float32, labels []gometrics.Label) {
	s.PrometheusSink.IncrCounterWithLabels(withTotal(key), val, labels)
}

func withTotal(key []string) []string {
	return append(key[:len(key):len(key)], "total")
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
