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
	reg.MustRegister(s.node.Collectors()...)
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
	descGossipDropped = prometheus.NewDesc("switchyard_gossip_dropped_messages_total",
		"Liveness messages dropped unsent because a member could not take them for a minute's worth of them (unreachable).", nil, nil)
	descLiveness = prometheus.NewDesc("switchyard_liveness_entries",
		"Instances in this server's liveness table (heard here or by gossip).", nil, nil)
	descProtected = prometheus.NewDesc("switchyard_services_protected",
		"Services whose healthy share is below their protect threshold (answers widened to unhealthy instances).", nil, nil)
	descLeadership = prometheus.NewDesc("switchyard_raft_leadership_changes_total",
		"Times this server became the Raft leader or stopped being it.", nil, nil)
	descGossipFailures = prometheus.NewDesc("switchyard_gossip_member_failures_total",
		"Members this server's gossip pool found dead (not those that left).", nil, nil)
	descGossipSuspicions = prometheus.NewDesc("switchyard_gossip_suspicions_total",
		"Times a member this server's gossip pool held suspect (silent past its probes) answered again.", nil, nil)
	descDNS = prometheus.NewDesc("switchyard_dns_answers_total",
		"DNS answers sent, by response code.", []string{"rcode"}, nil)
	descDNSTruncated = prometheus.NewDesc("switchyard_dns_truncated_total",
		"DNS answers sent truncated (TC set).", nil, nil)
	descXDSStreams = prometheus.NewDesc("switchyard_xds_streams",
		"xDS (ADS) streams open, by protocol variant (sotw, delta).", []string{"variant"}, nil)
	descXDSPushes = prometheus.NewDesc("switchyard_xds_pushes_total",
		"xDS answers sent to clients, by resource type.", []string{"type"}, nil)
	descXDSNacks = prometheus.NewDesc("switchyard_xds_nacks_total",
		"xDS answers a client refused (NACK); the server log names the client and its reason.", nil, nil)
	descXDSRefused = prometheus.NewDesc("switchyard_xds_streams_refused_total",
		"xDS streams the server refused or ended, by gRPC code: Unauthenticated (unknown or revoked token), InvalidArgument (a request it cannot serve).", []string{"code"}, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSelfPreservation, descInstances, descServices, descNamespaces,
		descApplied, descLeader, descReady, descMembers, descHeard, descGossipSent, descGossipDropped, descLiveness,
		descProtected, descLeadership, descGossipFailures, descGossipSuspicions, descDNS, descDNSTruncated,
		descXDSStreams, descXDSPushes, descXDSNacks, descXDSRefused} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.node.Store()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(descSelfPreservation, b2f(st.SelfPreservation().Active))
	healthy, unhealthy, services, protected := 0, 0, 0, 0
	_, namespaces, _ := st.Namespaces()
	for _, ns := range namespaces {
		_, svcs, err := st.Services(ns.Name)
		if err != nil {
			continue
		}
		services += len(svcs)
		for _, v := range svcs {
			if v.Protected() {
				protected++
			}
			h := v.Healthy()
			healthy += h
			unhealthy += v.Len() - h
		}
	}
	gauge(descInstances, float64(healthy), "true")
	gauge(descInstances, float64(unhealthy), "false")
	gauge(descServices, float64(services))
	gauge(descNamespaces, float64(len(namespaces)))
	gauge(descApplied, float64(c.node.AppliedIndex()))
	gauge(descLeader, b2f(c.node.IsLeader()))
	gauge(descReady, b2f(c.node.Ready()))
	counts := map[gossip.Status]int{gossip.StatusAlive: 0, gossip.StatusSuspect: 0, gossip.StatusDead: 0}
	for _, m := range c.pool.Members() {
		counts[m.Status]++
	}
	for st, n := range counts {
		gauge(descMembers, float64(n), string(st))
	}
	ch <- prometheus.MustNewConstMetric(descHeard, prometheus.CounterValue, float64(c.liveness.HeardTotal()))
	ch <- prometheus.MustNewConstMetric(descGossipSent, prometheus.CounterValue, float64(c.pool.SentBytes()))
	ch <- prometheus.MustNewConstMetric(descGossipDropped, prometheus.CounterValue, float64(c.pool.Dropped()))
	gauge(descLiveness, float64(c.liveness.Len()))
	gauge(descProtected, float64(protected))
	ch <- prometheus.MustNewConstMetric(descLeadership, prometheus.CounterValue, float64(c.node.LeadershipChanges()))
	ch <- prometheus.MustNewConstMetric(descGossipFailures, prometheus.CounterValue, float64(c.pool.Failures()))
	ch <- prometheus.MustNewConstMetric(descGossipSuspicions, prometheus.CounterValue, float64(c.pool.Suspicions()))
	if c.dns != nil {
		byCode, truncated := c.dns.Stats().ByRcode()
		for code, n := range byCode {
			ch <- prometheus.MustNewConstMetric(descDNS, prometheus.CounterValue, float64(n), code)
		}
		ch <- prometheus.MustNewConstMetric(descDNSTruncated, prometheus.CounterValue, float64(truncated))
	}
	if c.xdsServer != nil {
		st := c.xdsServer.Stats()
		for v, n := range st.Streams {
			gauge(descXDSStreams, float64(n), v)
		}
		for t, n := range st.Pushes {
			ch <- prometheus.MustNewConstMetric(descXDSPushes, prometheus.CounterValue, float64(n), t)
		}
		ch <- prometheus.MustNewConstMetric(descXDSNacks, prometheus.CounterValue, float64(st.Nacks))
		for code, n := range st.Refused {
			ch <- prometheus.MustNewConstMetric(descXDSRefused, prometheus.CounterValue, float64(n), code)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
