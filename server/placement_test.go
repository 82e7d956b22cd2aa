package server

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/raft"
	"github.com/switchyard-io/switchyard/store"
)

func TestChooseVoters(t *testing.T) {
	c := func(id, dc string, voter, leader bool) candidate {
		return candidate{id: id, dc: dc, voter: voter, leader: leader}
	}
	for _, tc := range []struct {
		name  string
		cands []candidate
		want  int
		got   []string
	}{
		{"one per datacenter", []candidate{c("a1", "a", true, true), c("a2", "a", true, false), c("a3", "a", true, false),
			c("b1", "b", false, false), c("c1", "c", false, false)}, 3, []string{"a1", "b1", "c1"}},
		{"at most one more than another", []candidate{c("a1", "a", true, true), c("a2", "a", true, false), c("a3", "a", true, false),
			c("b1", "b", false, false)}, 3, []string{"a1", "a2", "b1"}},
		{"current voters kept within a datacenter", []candidate{c("a1", "a", false, false), c("a2", "a", true, false),
			c("b1", "b", false, false), c("b2", "b", true, true)}, 2, []string{"a2", "b2"}},
		{"five over three", []candidate{c("a1", "a", true, true), c("a2", "a", true, false), c("a3", "a", false, false),
			c("b1", "b", true, false), c("b2", "b", false, false), c("b3", "b", false, false), c("c1", "c", true, false)}, 5,
			[]string{"a1", "a2", "b1", "b2", "c1"}},
		{"fewer candidates than wanted", []candidate{c("a1", "a", true, true), c("b1", "b", true, false)}, 3, []string{"a1", "b1"}},
		{"no locality", []candidate{c("s1", "", true, true), c("s2", "", true, false), c("s3", "", false, false)}, 2, []string{"s1", "s2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := slices.Sorted(maps.Keys(chooseVoters(tc.cands, tc.want)))
			if !slices.Equal(got, tc.got) {
				t.Errorf("chose %v, want %v", got, tc.got)
			}
		})
	}
}

// members returns the leader's view of the Raft configuration by id.
func (c *cluster) members(t *testing.T) map[string]raft.Member {
	t.Helper()
	l := c.leader()
	if l == nil {
		return nil
	}
	ms, err := l.Node().Members()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]raft.Member{}
	for _, m := range ms {
		out[m.ID] = m
	}
	return out
}

// addServer starts one more server that joins the cluster by gossip.
func (c *cluster) addServer(t *testing.T, id string, tune ...func(*Config)) *Server {
	t.Helper()
	cfg := testConfig(t, id)
	cfg.Join = []string{c.servers[0].Pool().Addr()}
	for _, f := range tune {
		f(&cfg)
	}
	s, err := Start(cfg)
	if err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	t.Cleanup(func() { _ = s.Kill() })
	c.add(s)
	return s
}

// A read server joins as a Raft non-voter and is never given a vote; it
// answers reads from its own replica with the staleness headers, forwards
// writes, serves consistent reads through the leader, and keeps answering
// reads when the voters have lost their quorum, without ever leading.
func TestReadServer(t *testing.T) {
	c := startCluster(t, 3)
	r := c.addServer(t, "r1", func(cfg *Config) { cfg.Role = store.RoleRead })
	eventually(t, 15*time.Second, "r1 in the configuration as a read server", func() error {
		m, ok := c.members(t)["r1"]
		if !ok || m.Role != "nonvoter" || m.ServerRole != store.RoleRead {
			return fmt.Errorf("r1: %+v (in: %v)", m, ok)
		}
		return nil
	})
	c.waitReconciles(5)
	if m := c.members(t)["r1"]; m.Role != "nonvoter" {
		t.Fatalf("a read server was given a vote: %+v", m)
	}
	var ms wire.MembersResponse
	if err := c.do(r, http.MethodGet, "/v1/cluster/members", nil, &ms); err != nil {
		t.Fatal(err)
	}
	roles := map[string]string{}
	for _, m := range ms.Members {
		roles[m.ID] = m.Role + "/" + m.ServerRole
	}
	if roles["r1"] != "nonvoter/read" || roles["s2"] == "" || roles["s2"] == "nonvoter/voter" {
		t.Errorf("members through the read server: %v", roles)
	}

	// A write through the read server is forwarded; the read server answers
	// it from its replica, and a consistent read through the leader.
	if err := c.do(r, http.MethodPut, "/v1/namespaces/default/services/web/instances/w1",
		map[string]any{"address": "10.0.0.1", "port": 80, "ephemeral": false}, nil); err != nil {
		t.Fatalf("register through the read server: %v", err)
	}
	for _, q := range []string{"", "?consistent=true"} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+r.HTTPAddr()+"/v1/namespaces/default/services/web/instances"+q, nil)
		resp, err := c.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Switchyard-Index") == "" || resp.Header.Get("X-Switchyard-Known-Leader") != "true" {
			t.Errorf("lookup%s on the read server: %d, headers %v", q, resp.StatusCode, resp.Header)
		}
	}
	res, err := c.instances(r, "default", "web")
	if err != nil || len(res.Instances) != 1 {
		t.Fatalf("lookup on the read server: %+v, %v", res, err)
	}
	if ips, rc, err := dnsA(r.DNSAddr(), "web.default.svc.switchyard."); err != nil || rc != 0 || !slices.Equal(ips, []string{"10.0.0.1"}) {
		t.Errorf("DNS on the read server: %v, rcode %d, %v", ips, rc, err)
	}
	// A blocking query parked on the read server wakes up with a write
	// made through the leader.
	woke := make(chan error, 1)
	go func() {
		var after wire.InstancesResponse
		err := c.do(r, http.MethodGet, fmt.Sprintf("/v1/namespaces/default/services/web/instances?index=%d&wait=10s", res.Index), nil, &after)
		if err == nil && len(after.Instances) != 2 {
			err = fmt.Errorf("woke with %d instances", len(after.Instances))
		}
		woke <- err
	}()
	if err := c.do(c.leader(), http.MethodPut, "/v1/namespaces/default/services/web/instances/w2",
		map[string]any{"address": "10.0.0.2", "port": 80, "ephemeral": false}, nil); err != nil {
		t.Fatal(err)
	}
	if err := <-woke; err != nil {
		t.Errorf("blocking query on the read server: %v", err)
	}

	// Two voters die: one voter and the read server are left, and the read
	// server's replica is no vote, so no leader can be elected. The read
	// server never leads, and it still answers from its replica.
	var killed int
	for _, s := range c.live() {
		if s != r && !s.Node().IsLeader() && killed < 2 {
			_ = s.Kill()
			killed++
		}
	}
	eventually(t, 15*time.Second, "no leader anywhere", func() error {
		for _, s := range c.live() {
			if id, _ := s.Node().Leader(); id != "" {
				return fmt.Errorf("%s sees leader %s", s.cfg.NodeID, id)
			}
		}
		return nil
	})
	// Ten election timeouts (400 ms each) without a leader.
	for range 40 {
		for _, s := range c.live() {
			if s.Node().IsLeader() {
				t.Fatalf("%s leads with one voter of three alive (a read server voted?)", s.cfg.NodeID)
			}
		}
		res, err := c.instances(r, "default", "web")
		if err != nil || len(res.Instances) != 2 {
			t.Fatalf("stale lookup on the read server without a quorum: %+v, %v", res, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// xDS too answers from the replica.
	if n := edsEndpoints(t, r.XDSAddr(), "web.default"); n != 2 {
		t.Errorf("xDS endpoints of web.default on the read server without a quorum: %d, want 2", n)
	}
}

// With Voters 3, a fourth server of role voter waits as a standby; when a
// voter dies it is given the vote, and the dead one loses its vote, long
// before dead-server-after would remove it.
func TestStandbyReplacesADeadVoter(t *testing.T) {
	c := startCluster(t, 3, func(cfg *Config) { cfg.Voters = 3 })
	s4 := c.addServer(t, "s4", func(cfg *Config) { cfg.Voters = 3 })
	eventually(t, 15*time.Second, "s4 a standby", func() error {
		if m, ok := c.members(t)["s4"]; !ok || m.Role != "nonvoter" || m.ServerRole != store.RoleVoter {
			return fmt.Errorf("s4: %+v (in: %v)", m, ok)
		}
		return nil
	})
	c.waitReconciles(5)
	if m := c.members(t)["s4"]; m.Role != "nonvoter" {
		t.Fatalf("a fourth voter with voters=3: %+v", m)
	}
	var victim *Server
	for _, s := range c.live() {
		if s != s4 && !s.Node().IsLeader() {
			victim = s
			break
		}
	}
	if err := victim.Kill(); err != nil {
		t.Fatal(err)
	}
	died := time.Now()
	eventually(t, 20*time.Second, "s4 voting in place of "+victim.cfg.NodeID, func() error {
		ms := c.members(t)
		if ms["s4"].Role == "nonvoter" || ms[victim.cfg.NodeID].Role != "nonvoter" {
			return fmt.Errorf("s4 %s, %s %s", ms["s4"].Role, victim.cfg.NodeID, ms[victim.cfg.NodeID].Role)
		}
		return nil
	})
	t.Logf("standby voting %v after a voter died (dead-server-after %v)", time.Since(died).Round(time.Millisecond), victim.cfg.DeadServerAfter)
	if err := c.do(s4, http.MethodPut, "/v1/namespaces/default/services/web/instances/w1",
		map[string]any{"address": "10.0.0.1", "port": 80, "ephemeral": false}, nil); err != nil {
		t.Fatalf("write after the replacement: %v", err)
	}
}

// Voters are spread over datacenters: three voters in dc-a and a server
// in dc-b end as two voters in dc-a and one in dc-b.
func TestVotersSpreadOverDatacenters(t *testing.T) {
	dc := func(name string) func(*Config) {
		return func(cfg *Config) {
			cfg.Voters = 3
			cfg.Locality = store.Locality{Region: "r1", Datacenter: name, Unit: name + "-1"}
		}
	}
	c := startCluster(t, 3, dc("dc-a"))
	c.addServer(t, "b1", dc("dc-b"))
	eventually(t, 20*time.Second, "voters spread 2 + 1", func() error {
		per := map[string]int{}
		ms := c.members(t)
		for _, m := range ms {
			if m.Role != "nonvoter" {
				per[m.Locality.Datacenter]++
			}
		}
		if len(ms) != 4 || per["dc-a"] != 2 || per["dc-b"] != 1 {
			return fmt.Errorf("voters per datacenter %v of %d servers", per, len(ms))
		}
		return nil
	})
}

// A read server never votes, so it cannot found a cluster; a role other
// than voter or read is refused.
func TestReadServerConfig(t *testing.T) {
	for _, tc := range []struct {
		tune func(*Config)
		want string
	}{
		{func(c *Config) { c.Role, c.Bootstrap = store.RoleRead, true }, "cannot bootstrap"},
		{func(c *Config) { c.Role, c.BootstrapExpect = store.RoleRead, 3 }, "cannot bootstrap"},
		{func(c *Config) { c.Role = "king" }, `role "king"`},
		{func(c *Config) { c.Voters = 0 }, "voters must be at least 1"},
	} {
		cfg := testConfig(t, "x")
		tc.tune(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate: %v, want an error with %q", err, tc.want)
		}
	}
}
