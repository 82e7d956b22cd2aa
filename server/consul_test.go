package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	consul "github.com/hashicorp/consul/api"

	"github.com/switchyard-io/switchyard/store"
)

func consulClient(t *testing.T, s *Server) *consul.Client {
	t.Helper()
	c, err := consul.NewClient(&consul.Config{Address: s.HTTPAddr(), HttpClient: &http.Client{Timeout: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestConsulAPI drives the cluster with HashiCorp's own Go client.
func TestConsulAPI(t *testing.T) {
	c := startCluster(t, 3)
	s1, s2, s3 := c.servers[0], c.servers[1], c.servers[2]
	k1, k2, k3 := consulClient(t, s1), consulClient(t, s2), consulClient(t, s3)

	// A real HTTP endpoint for the HTTP check.
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }))
	defer up.Close()

	// Register through the second server's agent: a TTL check and an HTTP one.
	if err := k2.Agent().ServiceRegister(&consul.AgentServiceRegistration{
		ID: "web-1", Name: "web", Port: 8080, Address: "10.0.0.1", Tags: []string{"v1", "primary"},
		Meta: map[string]string{"version": "1"}, Weights: &consul.AgentWeights{Passing: 7, Warning: 1},
		Check: &consul.AgentServiceCheck{TTL: "3s", DeregisterCriticalServiceAfter: "1m"},
	}); err != nil {
		t.Fatal(err)
	}
	if err := k2.Agent().ServiceRegister(&consul.AgentServiceRegistration{
		ID: "web-2", Name: "web", Port: 8081, Address: "10.0.0.2", Tags: []string{"v2"},
		Check: &consul.AgentServiceCheck{CheckID: "web-2-http", HTTP: up.URL, Interval: "100ms", Timeout: "1s"},
	}); err != nil {
		t.Fatal(err)
	}
	if err := k1.Agent().UpdateTTL("service:web-1", "", consul.HealthPassing); err != nil {
		t.Fatal(err)
	}

	// Passing instances, read on the third server.
	eventually(t, 5*time.Second, "both passing on s3", func() error {
		es, _, err := k3.Health().Service("web", "", true, nil)
		if err != nil {
			return err
		}
		if len(es) != 2 {
			return fmt.Errorf("%d passing entries", len(es))
		}
		return nil
	})
	es, meta, err := k3.Health().Service("web", "v1", true, &consul.QueryOptions{AllowStale: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 {
		t.Fatalf("tag v1: %d entries", len(es))
	}
	e := es[0]
	if e.Service.ID != "web-1" || e.Service.Service != "web" || e.Service.Port != 8080 || e.Service.Address != "10.0.0.1" ||
		!slices.Equal(e.Service.Tags, []string{"v1", "primary"}) || e.Service.Weights.Passing != 7 ||
		len(e.Service.Meta) != 1 || e.Service.Meta["version"] != "1" {
		t.Fatalf("service %+v", e.Service)
	}
	if e.Node.Node != s2.cfg.NodeID || e.Node.Address != "10.0.0.1" || e.Node.Datacenter != "dc1" {
		t.Fatalf("node %+v", e.Node)
	}
	if len(e.Checks) != 1 || e.Checks[0].CheckID != "service:web-1" || e.Checks[0].Status != consul.HealthPassing || e.Checks[0].Type != "ttl" {
		t.Fatalf("checks %+v", e.Checks)
	}
	if meta.LastIndex == 0 || !meta.KnownLeader {
		t.Fatalf("query meta %+v", meta)
	}

	eventually(t, 3*time.Second, "catalog services on s1", func() error {
		svcs, _, err := k1.Catalog().Services(nil)
		if err != nil {
			return err
		}
		if got := svcs["web"]; !slices.Equal(got, []string{"primary", "v1", "v2"}) {
			return fmt.Errorf("catalog services %v", svcs)
		}
		return nil
	})
	agentSvcs, err := k2.Agent().Services()
	if err != nil {
		t.Fatal(err)
	}
	if len(agentSvcs) != 2 || agentSvcs["web-2"] == nil || agentSvcs["web-2"].Port != 8081 {
		t.Fatalf("agent services on s2: %v", agentSvcs)
	}
	if other, err := k3.Agent().Services(); err != nil || len(other) != 0 {
		t.Fatalf("agent services on s3: %v %v", other, err)
	}

	// A blocking health query wakes on a change to its service, and not
	// on changes to another.
	_, meta, err = k1.Health().Service("web", "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	idx := meta.LastIndex
	start := time.Now()
	_, m2, err := k1.Health().Service("web", "", false, &consul.QueryOptions{WaitIndex: idx, WaitTime: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if m2.LastIndex != idx || time.Since(start) < 900*time.Millisecond {
		t.Fatalf("unchanged service: index %d → %d after %v", idx, m2.LastIndex, time.Since(start))
	}
	type result struct {
		n     int
		index uint64
		took  time.Duration
		err   error
	}
	woke := make(chan result, 1)
	go func() {
		start := time.Now()
		es, m, err := k1.Health().Service("web", "", false, &consul.QueryOptions{WaitIndex: idx, WaitTime: 30 * time.Second})
		r := result{err: err, took: time.Since(start)}
		if err == nil {
			r.n, r.index = len(es), m.LastIndex
		}
		woke <- r
	}()
	time.Sleep(300 * time.Millisecond)
	// Another service changes: the watcher stays asleep.
	if err := k3.Agent().ServiceRegister(&consul.AgentServiceRegistration{ID: "db-1", Name: "db", Port: 5432, Address: "10.0.0.9"}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-woke:
		t.Fatalf("woken by another service: %+v", r)
	case <-time.After(500 * time.Millisecond):
	}
	// Its own service changes, through the native API on another server.
	if err := c.do(s3, http.MethodPut, "/v1/namespaces/default/services/web/instances/web-3", map[string]any{
		"address": "10.0.0.3", "port": 8082, "ephemeral": false}, nil); err != nil {
		t.Fatal(err)
	}
	r := <-woke
	if r.err != nil || r.n != 3 || r.index <= idx || r.took > 5*time.Second {
		t.Fatalf("blocking query after the change: %+v (index was %d)", r, idx)
	}

	// The native API sees what Consul's registered, and the other way round.
	ins, err := c.instances(s1, "default", "web")
	if err != nil {
		t.Fatal(err)
	}
	if len(ins.Instances) != 3 || ins.Instances[0].ID != "web-1" || ins.Instances[0].Weight != 7 || !ins.Instances[0].Ephemeral {
		t.Fatalf("native listing %+v", ins.Instances)
	}
	eventually(t, 3*time.Second, "web-3 in s2's catalog", func() error {
		cs, _, err := k2.Catalog().Service("web", "", nil)
		if err != nil {
			return err
		}
		if len(cs) != 3 || cs[2].ServiceID != "web-3" || cs[2].ServicePort != 8082 || cs[2].Node != "10.0.0.3" {
			return fmt.Errorf("catalog service %+v", cs)
		}
		return nil
	})

	// A TTL fail takes the instance out of passing answers at once, and a
	// pass brings it back.
	if err := k3.Agent().FailTTL("service:web-1", "broken"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "web-1 critical everywhere", func() error {
		for _, k := range []*consul.Client{k1, k2, k3} {
			es, _, err := k.Health().Service("web", "v1", true, nil)
			if err != nil || len(es) != 0 {
				return fmt.Errorf("%d passing v1 entries, %v", len(es), err)
			}
		}
		return nil
	})
	// It stays critical although its last pass is younger than the TTL.
	time.Sleep(time.Second)
	if es, _, err := k1.Health().Service("web", "v1", true, nil); err != nil || len(es) != 0 {
		t.Fatalf("web-1 passing again without a pass: %d %v", len(es), err)
	}
	if err := k3.Agent().PassTTL("service:web-1", ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "web-1 passing again", func() error {
		es, _, err := k1.Health().Service("web", "v1", true, nil)
		if err != nil || len(es) != 1 {
			return fmt.Errorf("%d passing v1 entries, %v", len(es), err)
		}
		return nil
	})

	// Maintenance takes it out of traffic, with Consul's maintenance check.
	if err := k2.Agent().EnableServiceMaintenance("web-2", "upgrade"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "web-2 in maintenance", func() error {
		checks, _, err := k1.Health().Checks("web", nil)
		if err != nil {
			return err
		}
		for _, ch := range checks {
			if ch.CheckID == "_service_maintenance:web-2" && ch.Status == consul.HealthCritical && ch.Notes == "upgrade" {
				return nil
			}
		}
		return fmt.Errorf("checks %v", checks)
	})
	if err := k2.Agent().DisableServiceMaintenance("web-2"); err != nil {
		t.Fatal(err)
	}

	leader, err := k1.Status().Leader()
	if err != nil || leader != c.leader().Node().RaftAddr() {
		t.Fatalf("leader %q %v, want %q", leader, err, c.leader().Node().RaftAddr())
	}
	if peers, err := k3.Status().Peers(); err != nil || len(peers) != 3 {
		t.Fatalf("peers %v %v", peers, err)
	}
	self, err := k1.Agent().Self()
	if err != nil || self["Config"]["NodeName"] != s1.cfg.NodeID || self["Config"]["Datacenter"] != "dc1" {
		t.Fatalf("agent self %v %v", self, err)
	}

	// Bad input: a clear 4xx, nothing changed.
	err = k1.Agent().ServiceRegister(&consul.AgentServiceRegistration{ID: "Web_1", Name: "web", Port: 80})
	if err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "DNS label") {
		t.Fatalf("bad id: %v", err)
	}
	err = k1.Agent().ServiceRegister(&consul.AgentServiceRegistration{Name: "sh", Port: 80, Check: &consul.AgentServiceCheck{Args: []string{"true"}, Interval: "1s"}})
	if err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Fatalf("script check: %v", err)
	}
	if err := k1.Agent().PassTTL("service:nope", ""); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("unknown check: %v", err)
	}
	if err := k1.Agent().PassTTL("web-2-http", ""); err == nil || !strings.Contains(err.Error(), "not a TTL check") {
		t.Fatalf("pass on an HTTP check: %v", err)
	}
	if _, _, err := k1.Health().Service("web", "", false, &consul.QueryOptions{Filter: `Service.Port > 80 or x`}); err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("unsupported filter: %v", err)
	}
	es, _, err = k1.Health().Service("web", "", false, &consul.QueryOptions{Filter: `Service.Meta.version == "1" and "primary" in Service.Tags`})
	if err != nil || len(es) != 1 || es[0].Service.ID != "web-1" {
		t.Fatalf("filter: %v %v", es, err)
	}

	if err := k2.Agent().ServiceDeregister("web-2"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "web-2 gone", func() error {
		cs, _, err := k3.Catalog().Service("web", "", nil)
		if err != nil || len(cs) != 2 {
			return fmt.Errorf("%d instances, %v", len(cs), err)
		}
		return nil
	})
}

// TestConsulPrometheusDiscovery replays the requests Prometheus's
// consul_sd_configs makes (agent/self once, then blocking catalog/services
// and health/service/{name} with ?stale and wait in ms) and checks every
// field it reads.
func TestConsulPrometheusDiscovery(t *testing.T) {
	c := startCluster(t, 3, func(cfg *Config) { cfg.Locality = store.Locality{Region: "eu", Datacenter: "eu-west-1", Unit: "a"} })
	s := c.servers[1]
	get := func(path string) (http.Header, []byte) {
		t.Helper()
		resp, err := http.Get("http://" + s.HTTPAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		return resp.Header, b
	}
	if err := c.do(s, http.MethodPut, "/v1/namespaces/default/services/node-exporter/instances/ne-1", map[string]any{
		"address": "10.1.0.5", "port": 9100, "ephemeral": false, "tags": []string{"prod"}, "metadata": map[string]string{"team": "infra"},
		"locality": map[string]string{"region": "eu", "datacenter": "eu-west-1", "unit": "b"}}, nil); err != nil {
		t.Fatal(err)
	}

	_, b := get("/v1/agent/self")
	var self struct {
		Config struct{ Datacenter, NodeName string }
	}
	if err := json.Unmarshal(b, &self); err != nil || self.Config.Datacenter != "eu-west-1" || self.Config.NodeName != s.cfg.NodeID {
		t.Fatalf("agent/self: %s %v", b, err)
	}
	h, b := get("/v1/catalog/services?stale=&wait=120000ms")
	var svcs map[string][]string
	if err := json.Unmarshal(b, &svcs); err != nil || !slices.Equal(svcs["node-exporter"], []string{"prod"}) {
		t.Fatalf("catalog/services: %s %v", b, err)
	}
	idx := h.Get("X-Consul-Index")
	if n, err := strconv.ParseUint(idx, 10, 64); err != nil || n == 0 || h.Get("X-Consul-KnownLeader") != "true" || h.Get("X-Consul-LastContact") == "" {
		t.Fatalf("headers %v", h)
	}
	h, b = get("/v1/health/service/node-exporter?stale=&wait=120000ms")
	var entries []struct {
		Node struct {
			Address, Node, Datacenter string
			TaggedAddresses           map[string]string
			Meta                      map[string]string
		}
		Service struct {
			ID, Service, Address string
			Port                 int
			Tags                 []string
			Meta                 map[string]string
		}
		Checks []struct{ Status string }
	}
	if err := json.Unmarshal(b, &entries); err != nil || len(entries) != 1 {
		t.Fatalf("health/service: %s %v", b, err)
	}
	en := entries[0]
	if en.Node.Address != "10.1.0.5" || en.Node.Node != "10.1.0.5" || en.Node.Datacenter != "eu-west-1" ||
		en.Node.TaggedAddresses["lan"] != "10.1.0.5" || en.Node.Meta["region"] != "eu" || en.Node.Meta["unit"] != "b" ||
		en.Service.ID != "ne-1" || en.Service.Service != "node-exporter" || en.Service.Address != "10.1.0.5" ||
		en.Service.Port != 9100 || !slices.Equal(en.Service.Tags, []string{"prod"}) || en.Service.Meta["team"] != "infra" {
		t.Fatalf("entry %+v", en)
	}
	// Prometheus's next poll blocks at that index until the service changes.
	hidx := h.Get("X-Consul-Index")
	done := make(chan []byte, 1)
	go func() {
		_, b := get("/v1/health/service/node-exporter?index=" + hidx + "&stale=&wait=30000ms")
		done <- b
	}()
	select {
	case b := <-done:
		t.Fatalf("returned before any change: %s", b)
	case <-time.After(300 * time.Millisecond):
	}
	if err := c.do(s, http.MethodPut, "/v1/namespaces/default/services/node-exporter/instances/ne-2", map[string]any{
		"address": "10.1.0.6", "port": 9100, "ephemeral": false}, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-done:
		if err := json.Unmarshal(b, &entries); err != nil || len(entries) != 2 {
			t.Fatalf("after the change: %s %v", b, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("blocking health query not woken by the change")
	}
	// The services list did not change (same name, same tags): its index
	// did not move, so a watcher of it sleeps on.
	h2, _ := get("/v1/catalog/services?stale=")
	if h2.Get("X-Consul-Index") != idx {
		t.Fatalf("catalog/services index moved %s → %s without a change to its answer", idx, h2.Get("X-Consul-Index"))
	}
	_ = errors.New
}

// near=_agent orders instances by their distance to the server's locality;
// nodes are the agents or hosts the instances run on.
func TestConsulNearAndNodes(t *testing.T) {
	c := startCluster(t, 1, func(cfg *Config) { cfg.Locality = store.Locality{Region: "eu", Datacenter: "eu-west-1", Unit: "a"} })
	s := c.servers[0]
	k := consulClient(t, s)
	for _, r := range []struct {
		id, addr string
		loc      store.Locality
	}{
		{"far", "10.9.0.1", store.Locality{Region: "us", Datacenter: "us-east-1", Unit: "a"}},
		{"region", "10.2.0.1", store.Locality{Region: "eu", Datacenter: "eu-central-1", Unit: "a"}},
		{"dc", "10.1.0.2", store.Locality{Region: "eu", Datacenter: "eu-west-1", Unit: "b"}},
		{"unit", "10.1.0.1", store.Locality{Region: "eu", Datacenter: "eu-west-1", Unit: "a"}},
		{"unit-2", "10.1.0.1", store.Locality{Region: "eu", Datacenter: "eu-west-1", Unit: "a"}},
	} {
		if err := c.do(s, http.MethodPut, "/v1/namespaces/default/services/api/instances/"+r.id, map[string]any{
			"address": r.addr, "port": 80, "ephemeral": false, "locality": r.loc}, nil); err != nil {
			t.Fatal(err)
		}
	}
	es, _, err := k.Health().Service("api", "", false, &consul.QueryOptions{Near: "_agent"})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, e := range es {
		order = append(order, e.Service.ID)
	}
	if !slices.Equal(order, []string{"unit", "unit-2", "dc", "region", "far"}) {
		t.Fatalf("near=_agent order %v", order)
	}
	es, _, err = k.Health().Service("api", "", false, &consul.QueryOptions{Datacenter: "us-east-1"})
	if err != nil || len(es) != 1 || es[0].Service.ID != "far" {
		t.Fatalf("dc=us-east-1: %v %v", es, err)
	}
	nodes, _, err := k.Catalog().Nodes(nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range nodes {
		names = append(names, n.Node)
	}
	if !slices.Equal(names, []string{"10.1.0.1", "10.1.0.2", "10.2.0.1", "10.9.0.1"}) {
		t.Fatalf("nodes %v", names)
	}
	cn, _, err := k.Catalog().Node("10.1.0.1", nil)
	if err != nil || cn == nil || len(cn.Services) != 2 || cn.Services["unit-2"] == nil || cn.Node.Datacenter != "eu-west-1" {
		t.Fatalf("node 10.1.0.1: %+v %v", cn, err)
	}
	if cn, _, err := k.Catalog().Node("nobody", nil); err != nil || cn != nil {
		t.Fatalf("unknown node: %+v %v", cn, err)
	}
	dcs, err := k.Catalog().Datacenters()
	if err != nil || len(dcs) == 0 || dcs[0] != "eu-west-1" {
		t.Fatalf("datacenters %v %v", dcs, err)
	}
	checks, _, err := k.Health().State("any", nil)
	if err != nil || len(checks) != 0 { // persistent instances without a check have none
		t.Fatalf("health/state/any: %v %v", checks, err)
	}
	resp, err := http.Get("http://" + s.HTTPAddr() + "/v1/health/state/sleepy")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "use any, passing, warning or critical") {
		t.Fatalf("bad state: %d %s", resp.StatusCode, b)
	}
}
