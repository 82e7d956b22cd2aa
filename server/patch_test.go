package server

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/health"
	"github.com/switchyard-io/switchyard/store"
)

// PATCH changes an instance's weight or traffic and nothing else: an
// unhealthy instance stays unhealthy (a re-registration would make it
// healthy and send it traffic), an ephemeral one is not heard from, and a
// stale if_index gets 409.
func TestPatchInstanceLeavesHealthAndLiveness(t *testing.T) {
	c := startCluster(t, 1)
	s := c.servers[0]
	for _, id := range []string{"p1", "e1"} {
		body := wire.RegisterRequest{Address: "10.0.0.1", Port: 80, Ephemeral: new(bool)}
		if id == "e1" {
			body.Ephemeral = nil
		}
		if err := c.do(s, http.MethodPut, "/v1/namespaces/default/services/web/instances/"+id, body, nil); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.Node().Apply(ctx, &store.Command{Type: store.CommandSetHealth, Health: []store.HealthChange{
		{Namespace: "default", Service: "web", ID: "p1", Healthy: false}}}); err != nil {
		t.Fatal(err)
	}
	var cur store.Instance
	if err := c.do(s, http.MethodGet, "/v1/namespaces/default/services/web/instances/p1", nil, &cur); err != nil || cur.Healthy {
		t.Fatalf("p1 before: %+v %v", cur, err)
	}

	var out store.Instance
	if err := c.do(s, http.MethodPatch, "/v1/namespaces/default/services/web/instances/p1",
		map[string]any{"weight": 5, "enabled": false, "if_index": cur.ModifyIndex}, &out); err != nil {
		t.Fatal(err)
	}
	if out.Weight != 5 || out.Enabled || out.Healthy || out.Address != "10.0.0.1" {
		t.Fatalf("after PATCH: %+v (want weight 5, disabled, still unhealthy)", out)
	}
	err := c.do(s, http.MethodPatch, "/v1/namespaces/default/services/web/instances/p1", map[string]any{"weight": 9, "if_index": cur.ModifyIndex}, nil)
	if he, ok := err.(*httpError); !ok || he.status != http.StatusConflict {
		t.Fatalf("PATCH with a stale if_index: %v, want 409", err)
	}
	for body, want := range map[string]int{`{}`: 400, `{"weight": -1}`: 400, `{"weight": 1, "address": "x"}`: 400} {
		req, _ := http.NewRequest(http.MethodPatch, "http://"+s.HTTPAddr()+"/v1/namespaces/default/services/web/instances/p1", stringsReader(body))
		resp, err := c.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("PATCH %s: %d, want %d", body, resp.StatusCode, want)
		}
	}
	if err := c.do(s, http.MethodPatch, "/v1/namespaces/default/services/web/instances/nope", map[string]any{"weight": 1}, nil); err == nil || err.(*httpError).status != 404 {
		t.Errorf("PATCH of a missing instance: %v, want 404", err)
	}

	// An ephemeral instance's last heartbeat does not move.
	k := health.Key{Namespace: "default", Service: "web", ID: "e1"}
	before, ok := s.liveness.LastSeen(k)
	if !ok {
		t.Fatal("e1 was never heard")
	}
	time.Sleep(20 * time.Millisecond)
	if err := c.do(s, http.MethodPatch, "/v1/namespaces/default/services/web/instances/e1", map[string]any{"weight": 3}, nil); err != nil {
		t.Fatal(err)
	}
	if after, _ := s.liveness.LastSeen(k); !after.Equal(before) {
		t.Errorf("a PATCH counted as a heartbeat: last seen %v, was %v", after, before)
	}
}
