package server

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/switchyard-io/switchyard/api/wire"
)

// A follower restarted after writes it missed answers every read endpoint,
// native and Consul's (agent endpoints included), with 503 not_ready until
// it has caught up: never with a 200, or a 404, from the state it had. Its
// xDS server answers nothing until then, and a stream opened before then
// is answered, fresh, once it has caught up. To
// hold it back long enough to be seen, it restarts while the others are
// down, hammered until they come back and it has caught up.
func TestRestartedFollowerServesNoStaleRead(t *testing.T) {
	c := startCluster(t, 3)
	lead := c.leader()
	fi := -1
	for i, s := range c.servers {
		if s != lead {
			fi = i
			break
		}
	}
	f := c.servers[fi]
	// Instances registered through the follower's agent endpoints: the
	// leader will remove agent1 while the follower is down.
	for _, id := range []string{"agent1", "agent2"} {
		if err := c.do(f, http.MethodPut, "/v1/agent/service/register", map[string]any{"ID": id, "Name": "web", "Address": "10.0.0.9", "Port": 80}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.do(lead, http.MethodPut, "/v1/namespaces/default/services/web/instances/w1", map[string]any{"address": "10.0.0.1", "port": 80}, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "agent2 on the follower", func() error {
		return c.do(f, http.MethodGet, "/v1/namespaces/default/services/web/instances/agent2", nil, nil)
	})
	if err := f.Kill(); err != nil {
		t.Fatal(err)
	}
	// The writes the follower misses.
	if err := c.do(lead, http.MethodPut, "/v1/namespaces/default/services/web/instances/w2", map[string]any{"address": "10.0.0.2", "port": 80}, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.do(lead, http.MethodDelete, "/v1/namespaces/default/services/web/instances/agent1", nil, nil); err != nil {
		t.Fatal(err)
	}
	for i, s := range c.servers {
		if i != fi {
			if err := s.Kill(); err != nil {
				t.Fatal(err)
			}
		}
	}

	// Each read and what a fresh 200 holds.
	has := func(s string) func(string) bool { return func(b string) bool { return strings.Contains(b, s) } }
	reads := []struct {
		path  string
		fresh func(body string) bool
	}{
		{"/v1/namespaces/default/services/web/instances", has(`"w2"`)},
		{"/v1/namespaces/default/services/web/instances?healthy=true", has(`"w2"`)},
		{"/v1/namespaces/default/services/web/instances/w2", has(`"w2"`)},
		{"/v1/namespaces/default/services/web/instances/w2/check", has(`"w2"`)},
		{"/v1/namespaces/default/services/web/heartbeats", func(string) bool { return true }},
		{"/v1/namespaces/default/services", has(`"web"`)},
		{"/v1/agent/services", func(b string) bool { return strings.Contains(b, "agent2") && !strings.Contains(b, "agent1") }},
		{"/v1/health/service/web", has(`"w2"`)},
		{"/v1/catalog/service/web", has(`"w2"`)},
		{"/v1/acl/tokens", func(string) bool { return true }},
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	notReady := 0
	// round reads every endpoint once; ready says the server had caught up
	// before the round began, so that a 503 is wrong too.
	round := func(s *Server, ready bool) {
		t.Helper()
		for _, r := range reads {
			resp, err := hc.Get("http://" + s.HTTPAddr() + r.path)
			if err != nil {
				t.Fatalf("GET %s: %v", r.path, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusOK:
				if !r.fresh(string(b)) {
					t.Fatalf("GET %s answered a stale 200 (ready %v): %.300s", r.path, s.Ready(), b)
				}
			case http.StatusServiceUnavailable:
				var e wire.ErrorBody
				if err := json.Unmarshal(b, &e); err != nil || e.Code != "not_ready" || resp.Header.Get("Retry-After") == "" {
					t.Fatalf("GET %s: 503 %q (Retry-After %q), want the not_ready JSON error with Retry-After", r.path, b, resp.Header.Get("Retry-After"))
				}
				if ready {
					t.Fatalf("GET %s: 503 not_ready after the server caught up", r.path)
				}
				notReady++
			default:
				t.Fatalf("GET %s: %d %.300s from a server catching up (ready %v): want 503 or a fresh 200", r.path, resp.StatusCode, b, s.Ready())
			}
		}
		// A stream may wait for the server to catch up, never answer stale.
		wait := 300 * time.Millisecond
		if ready {
			wait = 10 * time.Second
		}
		cla, err := edsWithin(t, s.XDSAddr(), "web.default", wait)
		switch {
		case status.Code(err) == codes.DeadlineExceeded:
			if ready {
				t.Fatalf("xDS answered nothing within %v after the server caught up", wait)
			}
			notReady++
		case err != nil:
			t.Fatalf("xDS endpoints of web.default from a server catching up: %v", err)
		case !slices.Contains(addresses(cla), "10.0.0.2"):
			t.Fatalf("xDS answered stale endpoints %v (ready %v), without w2", addresses(cla), s.Ready())
		}
	}

	// Alone, it cannot catch up: every read is refused. An xDS stream
	// opened now waits.
	f = c.restart(fi)
	early := adsStream(t, f.XDSAddr(), "")
	if err := early.Send(&discoverygrpc.DiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNames: []string{"web.default"}}); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		round(f, false)
	}
	if f.Ready() {
		t.Fatal("a server with no leader reports ready")
	}
	var health wire.Health
	if err := c.do(f, http.MethodGet, "/v1/health", nil, &health); err == nil {
		t.Fatal("GET /v1/health answered 2xx on a server that has not caught up")
	}
	// The others come back; from the first moment, every answer is fresh
	// or refused.
	for i := range c.servers {
		if i != fi {
			c.restart(i)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for after := 0; after < 5; {
		if time.Now().After(deadline) {
			t.Fatalf("the restarted follower did not catch up within 30 s")
		}
		ready := f.Ready()
		round(f, ready)
		if ready {
			after++
		}
	}
	// The stream opened before the catch-up is answered, and fresh.
	r, err := early.Recv()
	if err != nil {
		t.Fatalf("the xDS stream opened before the catch-up: %v", err)
	}
	var cla endpointv3.ClusterLoadAssignment
	if err := r.GetResources()[0].UnmarshalTo(&cla); err != nil || !slices.Contains(addresses(&cla), "10.0.0.2") {
		t.Fatalf("the xDS stream opened before the catch-up answered %v (%v), without w2", addresses(&cla), err)
	}
	t.Logf("%d not-ready answers before the follower caught up", notReady)
}
