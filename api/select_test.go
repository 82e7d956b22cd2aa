package api_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/api"
	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/route"
	"github.com/switchyard-io/switchyard/store"
)

// The fleet of these tests: region eu (datacenter eu-a with units a1 and
// a2, datacenter eu-b), us (80 ms from eu-a), ap (160 ms).
var fleetSpec = []struct{ id, region, dc, unit string }{
	{"eu-a1-1", "eu", "eu-a", "a1"}, {"eu-a1-2", "eu", "eu-a", "a1"},
	{"eu-a2-1", "eu", "eu-a", "a2"}, {"eu-b-1", "eu", "eu-b", "b1"},
	{"us-1", "us", "us-e", "u1"}, {"ap-1", "ap", "ap-s", "p1"},
}

func localityServer(t *testing.T) *testServer {
	ts := newTestServer(t, func(c *api.Config) {
		c.Locality = store.Locality{Region: "eu", Datacenter: "eu-a", Unit: "a1"}
		c.Topology = route.RTTTable{"eu-a": {"us-e": 80 * time.Millisecond, "ap-s": 160 * time.Millisecond}}
	})
	for _, f := range fleetSpec {
		ts.register(t, "default", "orders", f.id, fmt.Sprintf(
			`{"address":"10.0.0.1","port":8080,"ephemeral":false,"locality":{"region":%q,"datacenter":%q,"unit":%q}}`, f.region, f.dc, f.unit))
	}
	return ts
}

// setHealth marks instances through Raft, as the servers' judge would.
func (ts *testServer) setHealth(t *testing.T, healthy bool, ids ...string) {
	t.Helper()
	var hs []store.HealthChange
	for _, id := range ids {
		hs = append(hs, store.HealthChange{Namespace: "default", Service: "orders", ID: id, Healthy: healthy})
	}
	if _, err := ts.node.Apply(context.Background(), &store.Command{Type: store.CommandSetHealth, Health: hs}); err != nil {
		t.Fatal(err)
	}
}

func (ts *testServer) selection(t *testing.T, query string) wire.InstancesResponse {
	t.Helper()
	var r wire.InstancesResponse
	decode(t, mustOK(t, "lookup "+query, ts.get(t, "/v1/namespaces/default/services/orders/instances?"+query)), &r)
	return r
}

func selIDs(r wire.InstancesResponse) []string {
	var out []string
	for _, in := range r.Instances {
		out = append(out, in.ID+"@"+in.Level)
	}
	return out
}

func TestLookupNear(t *testing.T) {
	ts := localityServer(t)
	// near= states the caller's locality; each instance says its level.
	r := ts.selection(t, "near=eu/eu-a/a1")
	if got := selIDs(r); !slices.Equal(got, []string{"eu-a1-1@unit", "eu-a1-2@unit"}) {
		t.Fatalf("near eu/eu-a/a1: %v", got)
	}
	if !slices.Equal(r.Levels, []string{"unit"}) || r.ServedBy != "default" || r.Near == nil || r.Near.Unit != "a1" {
		t.Fatalf("answer %+v", r)
	}
	// A caller in eu-b gets eu-b; one in us gets us; one with only a
	// region gets its whole region.
	if got := selIDs(ts.selection(t, "near=eu/eu-b")); !slices.Equal(got, []string{"eu-b-1@datacenter"}) {
		t.Fatalf("near eu/eu-b: %v", got)
	}
	if got := selIDs(ts.selection(t, "near=us")); !slices.Equal(got, []string{"us-1@region"}) {
		t.Fatalf("near us: %v", got)
	}
	// healthy=true without near: the caller is where the server runs
	// (eu/eu-a/a1 here).
	if got := selIDs(ts.selection(t, "healthy=true")); !slices.Equal(got, []string{"eu-a1-1@unit", "eu-a1-2@unit"}) {
		t.Fatalf("healthy=true: %v", got)
	}
	// near= (empty): no locality, every instance.
	if got := ts.selection(t, "near="); len(got.Instances) != 6 || !slices.Equal(got.Levels, []string{"anywhere"}) {
		t.Fatalf("near empty: %v", selIDs(got))
	}
	// The plain list is the catalog, without levels.
	_, plain := ts.instances(t, "default", "orders")
	if len(plain.Instances) != 6 || plain.Instances[0].Level != "" || plain.Levels != nil || plain.Near != nil {
		t.Fatalf("plain list: %+v", plain)
	}
	for _, bad := range []string{"EU", "eu/eu-a/a1/x", "eu//a1", "eu/eu_a"} {
		wantError(t, ts.get(t, "/v1/namespaces/default/services/orders/instances?near="+bad), 400, "bad_request")
	}
}

// pickLevels picks n times and counts the level of each pick.
func (ts *testServer) pickLevels(t *testing.T, n int, query string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for range n {
		var p wire.PickResponse
		decode(t, mustOK(t, "pick", ts.get(t, "/v1/namespaces/default/services/orders/pick?"+query)), &p)
		out[p.Instance.Locality.Datacenter]++
	}
	return out
}

// The caller's datacenter loses every healthy instance: picks go to the
// same region; the region goes: to the nearest region by RTT (us, not ap);
// everything comes back: traffic returns home.
func TestPickSpillsOverAndReturns(t *testing.T) {
	ts := localityServer(t)
	q := "near=eu/eu-a/a1"
	if got := ts.pickLevels(t, 50, q); got["eu-a"] != 50 {
		t.Fatalf("healthy: %v", got)
	}
	ts.setHealth(t, false, "eu-a1-1", "eu-a1-2", "eu-a2-1")
	if got := ts.pickLevels(t, 50, q); got["eu-b"] != 50 {
		t.Fatalf("datacenter eu-a down: %v", got)
	}
	ts.setHealth(t, false, "eu-b-1")
	if got := ts.pickLevels(t, 50, q); got["us-e"] != 50 {
		t.Fatalf("region eu down: %v (us is 80 ms away, ap 160 ms)", got)
	}
	ts.setHealth(t, true, "eu-a1-1", "eu-a1-2", "eu-a2-1", "eu-b-1")
	if got := ts.pickLevels(t, 50, q); got["eu-a"] != 50 {
		t.Fatalf("back: %v", got)
	}
	// Half of the unit is enough to keep it (min_healthy_ratio 0.5).
	ts.setHealth(t, false, "eu-a1-1")
	var p wire.PickResponse
	decode(t, mustOK(t, "pick", ts.get(t, "/v1/namespaces/default/services/orders/pick?"+q)), &p)
	if p.Instance.ID != "eu-a1-2" || p.Instance.Level != "unit" || p.ServedBy != "default" {
		t.Fatalf("pick %+v", p)
	}
}

func TestPickBalancersAndErrors(t *testing.T) {
	ts := localityServer(t)
	base := "/v1/namespaces/default/services/orders/pick"
	// Sticky with consistent hashing.
	var first wire.PickResponse
	decode(t, mustOK(t, "pick", ts.get(t, base+"?near=&balancer=consistent_hash&key=user-7")), &first)
	for range 20 {
		var p wire.PickResponse
		decode(t, mustOK(t, "pick", ts.get(t, base+"?near=&balancer=consistent_hash&key=user-7")), &p)
		if p.Instance.ID != first.Instance.ID || p.Balancer != "consistent_hash" {
			t.Fatalf("consistent hash moved: %s then %s", first.Instance.ID, p.Instance.ID)
		}
	}
	// Round robin over the whole fleet cycles through everyone.
	seen := map[string]bool{}
	for range 6 {
		var p wire.PickResponse
		decode(t, mustOK(t, "pick", ts.get(t, base+"?near=&balancer=round_robin")), &p)
		seen[p.Instance.ID] = true
	}
	if len(seen) != 6 {
		t.Fatalf("round robin over 6 picks saw %d instances", len(seen))
	}
	// The service's balancer is the default.
	mustOK(t, "settings", ts.put(t, "/v1/namespaces/default/services/orders", `{"balancer":"round_robin"}`))
	var p wire.PickResponse
	decode(t, mustOK(t, "pick", ts.get(t, base)), &p)
	if p.Balancer != "round_robin" {
		t.Fatalf("default balancer %q", p.Balancer)
	}
	wantError(t, ts.get(t, base+"?balancer=fastest"), 400, "bad_request")
	r := ts.get(t, base+"?balancer=consistent_hash")
	wantError(t, r, 400, "bad_request")
	if !strings.Contains(string(r.body), "key=") {
		t.Errorf("consistent hash without key: %s", r.body)
	}
	wantError(t, ts.get(t, "/v1/namespaces/default/services/nothing/pick"), 404, "service_not_found")
	ts.setHealth(t, false, "eu-a1-1", "eu-a1-2", "eu-a2-1", "eu-b-1", "us-1", "ap-1")
	wantError(t, ts.get(t, base), 503, "no_instance")
}

// feature-42 → staging → prod: a lookup in feature-42 borrows what it lacks
// from the nearest ancestor that has a usable instance, says which, and
// wakes up when a nearer one gets one.
func TestFallbackChain(t *testing.T) {
	ts := newTestServer(t)
	mustOK(t, "prod", ts.put(t, "/v1/namespaces/prod", `{}`))
	mustOK(t, "staging", ts.put(t, "/v1/namespaces/staging", `{"fallback":"prod"}`))
	mustOK(t, "feature-42", ts.put(t, "/v1/namespaces/feature-42", `{"fallback":"staging"}`))
	wantError(t, ts.put(t, "/v1/namespaces/prod", `{"fallback":"feature-42"}`), 400, "invalid")

	ts.register(t, "prod", "orders", "p-1", `{"address":"10.0.0.1","port":80,"ephemeral":false}`)
	ts.register(t, "feature-42", "search", "f-1", `{"address":"10.0.0.2","port":80,"ephemeral":false}`)
	get := func(path string) wire.InstancesResponse {
		var r wire.InstancesResponse
		decode(t, mustOK(t, path, ts.get(t, path)), &r)
		return r
	}
	r := get("/v1/namespaces/feature-42/services/orders/instances?healthy=true")
	if r.ServedBy != "prod" || r.Namespace != "feature-42" || len(r.Instances) != 1 || r.Instances[0].ID != "p-1" {
		t.Fatalf("feature-42 orders: %+v", r)
	}
	// What feature-42 has, it serves itself.
	if r := get("/v1/namespaces/feature-42/services/search/instances?healthy=true"); r.ServedBy != "feature-42" {
		t.Fatalf("feature-42 search served by %q", r.ServedBy)
	}
	// Nothing crosses namespaces otherwise: prod does not see feature-42's
	// service, and the plain list does not follow fallbacks.
	wantError(t, ts.get(t, "/v1/namespaces/prod/services/search/instances?healthy=true"), 404, "service_not_found")
	wantError(t, ts.get(t, "/v1/namespaces/feature-42/services/orders/instances"), 404, "service_not_found")

	// A blocking lookup in feature-42 wakes when staging gets an instance.
	idx := index(t, ts.get(t, "/v1/namespaces/feature-42/services/orders/instances?healthy=true"))
	done := make(chan wire.InstancesResponse, 1)
	go func() {
		var r wire.InstancesResponse
		resp := ts.get(t, fmt.Sprintf("/v1/namespaces/feature-42/services/orders/instances?healthy=true&index=%d&wait=10s", idx))
		if resp.status == http.StatusOK {
			decode(t, resp, &r)
		}
		done <- r
	}()
	time.Sleep(50 * time.Millisecond)
	ts.register(t, "staging", "orders", "s-1", `{"address":"10.0.0.3","port":80,"ephemeral":false}`)
	select {
	case r := <-done:
		if r.ServedBy != "staging" || len(r.Instances) != 1 || r.Instances[0].ID != "s-1" {
			t.Fatalf("after staging registered: %+v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the blocking lookup did not wake when the fallback gained an instance")
	}
	// Staging's instance goes unhealthy: prod serves again.
	if _, err := ts.node.Apply(context.Background(), &store.Command{Type: store.CommandSetHealth,
		Health: []store.HealthChange{{Namespace: "staging", Service: "orders", ID: "s-1", Healthy: false}}}); err != nil {
		t.Fatal(err)
	}
	if r := get("/v1/namespaces/feature-42/services/orders/instances?healthy=true"); r.ServedBy != "prod" {
		t.Fatalf("staging unhealthy: served by %q", r.ServedBy)
	}
}
