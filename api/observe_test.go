package api_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-io/switchyard/api"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Every write leaves an audit line (who, what, outcome); reads do not.
// Every request is counted by route and status; blocking queries held
// open are a gauge.
func TestAuditAndRequestMetrics(t *testing.T) {
	var audit syncBuffer
	reg := prometheus.NewRegistry()
	ts := newTestServer(t, func(c *api.Config) {
		c.Audit = slog.New(slog.NewTextHandler(&audit, nil))
		c.Registerer = reg
	})
	ts.register(t, "default", "web", "web-1", `{"address":"10.0.0.1","port":80,"ephemeral":false}`)
	if r := ts.put(t, "/v1/namespaces/default/services/web/instances/web-2", `{"port":0}`); r.status != 400 {
		t.Fatalf("bad register: %s", r)
	}
	ts.get(t, "/v1/namespaces/default/services/web/instances")
	ts.get(t, "/v1/nowhere")

	lines := strings.Split(strings.TrimSpace(audit.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("audit lines:\n%s", audit.String())
	}
	for i, want := range []string{"status=200", "status=400"} {
		l := lines[i]
		if !strings.Contains(l, "msg=write") || !strings.Contains(l, "method=PUT") || !strings.Contains(l, "client=127.0.0.1:") ||
			!strings.Contains(l, "path=/v1/namespaces/default/services/web/instances/web-") || !strings.Contains(l, want) {
			t.Fatalf("audit line %d: %s", i, l)
		}
	}

	idx := ts.serviceIndex(t, "default", "web")
	held := make(chan response, 1)
	go func() {
		held <- ts.get(t, fmt.Sprintf("/v1/namespaces/default/services/web/instances?index=%d&wait=30s", idx))
	}()
	gauge := func() float64 { return blockingGauge(t, reg) }
	deadline := time.Now().Add(3 * time.Second)
	for gauge() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("blocking gauge %v, want 1", gauge())
		}
		time.Sleep(5 * time.Millisecond)
	}
	ts.register(t, "default", "web", "web-3", `{"address":"10.0.0.3","port":80,"ephemeral":false}`)
	<-held
	if g := gauge(); g != 0 {
		t.Fatalf("blocking gauge %v after the answer", g)
	}

	counts := map[string]uint64{}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "switchyard_http_request_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var key []string
			for _, lp := range m.GetLabel() {
				key = append(key, lp.GetName()+"="+lp.GetValue())
			}
			counts[strings.Join(key, ",")] = m.GetHistogram().GetSampleCount()
		}
	}
	for key, want := range map[string]uint64{
		"code=200,method=PUT,route=/v1/namespaces/:ns/services/:svc/instances/:id": 2,
		"code=400,method=PUT,route=/v1/namespaces/:ns/services/:svc/instances/:id": 1,
		"code=404,method=GET,route=unmatched":                                      1,
	} {
		if counts[key] != want {
			t.Errorf("%s: %d requests counted, want %d (all: %v)", key, counts[key], want, counts)
		}
	}
}
