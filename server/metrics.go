package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchyard-io/switchyard/gossip"
)

// metricsHandler serves this server's metrics in the Prometheus format.
// Everything is read at scrape time from the catalog, the node and the
// pool, so no hot path pays for a metric it does not update.
func (s *Server) metricsHandler(reg *prometheus.Registry) http.Handler {
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister((*collector)(s))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

type collector Server

var (
	descSelfPreservation = prometheus.NewDesc("switchyard_self_preservation_active",
		"1 while self-preservation holds back the expiry of silent instances.", nil, nil)
	descInstances = prometheus.NewDesc("switchyard_instances",
		"Instances in the catalog, by health.", []string{"healthy"}, nil)
	descServices   = prometheus.NewDesc("switchyard_services", "Services in the catalog.", nil, nil)
	descNamespaces = prometheus.NewDesc("switchyard_namespaces", "Namespaces in the catalog.", nil, nil)
	descApplied    = prometheus.NewDesc("switchyard_raft_applied_index", "Last log index applied by this server.", nil, nil)
	descLeader     = prometheus.NewDesc("switchyard_raft_leader", "1 if this server is the Raft leader.", nil, nil)
	descReady      = prometheus.NewDesc("switchyard_ready", "1 once this server has caught up with the leader.", nil, nil)
	descMembers    = prometheus.NewDesc("switchyard_gossip_members",
		"Servers known to this server's gossip pool, by status.", []string{"status"}, nil)
	descHeard = prometheus.NewDesc("switchyard_heartbeats_received_total",
		"Heartbeats and registrations of ephemeral instances received by this server.", nil, nil)
	descGossipSent = prometheus.NewDesc("switchyard_gossip_sent_bytes_total",
		"Bytes of liveness messages this server sent to the others (payload times recipients).", nil, nil)
	descLiveness = prometheus.NewDesc("switchyard_liveness_entries",
		"Instances in this server's liveness table (heard here or by gossip).", nil, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSelfPreservation, descInstances, descServices, descNamespaces,
		descApplied, descLeader, descReady, descMembers, descHeard, descGossipSent, descLiveness} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.node.Store()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(descSelfPreservation, b2f(st.SelfPreservation().Active))
	healthy, unhealthy, services := 0, 0, 0
	_, namespaces, _ := st.Namespaces()
	for _, ns := range namespaces {
		_, svcs, err := st.Services(ns.Name)
		if err != nil {
			continue
		}
		services += len(svcs)
		for _, v := range svcs {
			h := v.Healthy()
			healthy += h
			unhealthy += len(v.Instances) - h
		}
	}
	gauge(descInstances, float64(healthy), "true")
	gauge(descInstances, float64(unhealthy), "false")
	gauge(descServices, float64(services))
	gauge(descNamespaces, float64(len(namespaces)))
	gauge(descApplied, float64(c.node.AppliedIndex()))
	gauge(descLeader, b2f(c.node.IsLeader()))
	gauge(descReady, b2f(c.node.Ready()))
	counts := map[gossip.Status]int{gossip.StatusAlive: 0, gossip.StatusSuspect: 0, gossip.StatusDead: 0, gossip.StatusLeft: 0}
	for _, m := range c.pool.Members() {
		counts[m.Status]++
	}
	for st, n := range counts {
		gauge(descMembers, float64(n), string(st))
	}
	ch <- prometheus.MustNewConstMetric(descHeard, prometheus.CounterValue, float64(c.liveness.HeardTotal()))
	ch <- prometheus.MustNewConstMetric(descGossipSent, prometheus.CounterValue, float64(c.pool.SentBytes()))
	gauge(descLiveness, float64(c.liveness.Len()))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
