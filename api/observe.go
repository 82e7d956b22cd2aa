package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-io/switchyard/store"
)

// metrics are the API's own Prometheus metrics.
type metrics struct {
	requests *prometheus.HistogramVec
	blocking prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "switchyard_http_request_duration_seconds",
			Help:    "HTTP requests by method, route (its template) and status code, and how long they took (blocking queries included).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5, 30, 300},
		}, []string{"method", "route", "code"}),
		blocking: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchyard_http_blocking_queries",
			Help: "Blocking queries held open now (SDK watchers, index= reads).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.blocking)
	}
	return m
}

// observe times every request for the metrics and writes an audit line for
// every request that may change something (any method but GET and HEAD)
// and every admin read (backups, tokens): who (the token's accessor, and
// the peer's address), what, and the outcome. The accessor is empty while
// access control is off.
func (s *Server) observe(c *gin.Context) {
	start := time.Now()
	c.Next()
	label := c.FullPath()
	if label == "" {
		label = "unmatched"
	}
	status := c.Writer.Status()
	took := time.Since(start)
	method := c.Request.Method
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPost, http.MethodDelete, http.MethodPatch, http.MethodOptions:
	default:
		method = "OTHER" // a label per made-up method would grow without bound
	}
	s.metrics.requests.WithLabelValues(method, label, strconv.Itoa(status)).Observe(took.Seconds())
	m := c.Request.Method
	n := s.needs[routeOf(c)]
	if write := m != http.MethodGet && m != http.MethodHead; write || n.Access == store.AccessAdmin {
		kind := "write"
		if !write {
			kind = "admin-read"
		}
		var k *caller
		if v, ok := c.Get(ctxCaller); ok {
			k = v.(*caller)
		}
		s.audit.Info(kind, "method", m, "path", c.Request.URL.Path, "client", c.Request.RemoteAddr,
			"token", k.accessor(), "status", status, "duration_ms", float64(took.Microseconds())/1000)
	}
}
