package server

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/api/wire"
)

// Three servers started with bootstrap-expect 3 find each other by gossip
// and form one cluster; a fourth joins through an HTTP address and becomes a
// voter with no manual step; a dead server leaves the Raft configuration
// after dead-server-after, but never below min-quorum.
func TestMembershipByGossip(t *testing.T) {
	c := startCluster(t, 3, func(cfg *Config) { cfg.DeadServerAfter = time.Second })

	var ms wire.MembersResponse
	eventually(t, 5*time.Second, "members with gossip status and RTT", func() error {
		if err := c.do(c.servers[1], http.MethodGet, "/v1/cluster/members", nil, &ms); err != nil {
			return err
		}
		if len(ms.Members) != 3 {
			return fmt.Errorf("%d members", len(ms.Members))
		}
		for _, m := range ms.Members {
			if m.Status != "alive" || m.GossipAddr == "" || m.HTTPAddr == "" || m.RaftAddr == "" {
				return fmt.Errorf("member %+v", m)
			}
			if m.Self != (m.ID == "s2") {
				return fmt.Errorf("self flag on %s: %v", m.ID, m.Self)
			}
			if !m.Self && m.RTTMs <= 0 {
				return fmt.Errorf("no RTT to %s", m.ID)
			}
		}
		return nil
	})

	// A fourth server joins through s3's HTTP address.
	cfg := testConfig(t, "s4")
	cfg.Join = []string{c.servers[2].HTTPAddr()}
	cfg.DeadServerAfter = time.Second
	s4, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s4.Kill() })
	c.add(s4)
	c.waitVoters(4, 15*time.Second)

	// s4 dies: after dead-server-after the leader removes it (4 → 3 voters
	// is allowed with min-quorum 3).
	if err := s4.Kill(); err != nil {
		t.Fatal(err)
	}
	c.waitVoters(3, 15*time.Second)
	eventually(t, 5*time.Second, "s4 gone from the members list", func() error {
		if err := c.do(c.servers[0], http.MethodGet, "/v1/cluster/members", nil, &ms); err != nil {
			return err
		}
		for _, m := range ms.Members {
			if m.ID == "s4" {
				return fmt.Errorf("s4 still listed: %+v", m)
			}
		}
		return nil
	})

	// A follower dies: it shows as dead, and stays a voter (3 → 2 would go
	// below min-quorum).
	var victim *Server
	for _, s := range c.live() {
		if !s.Node().IsLeader() {
			victim = s
			break
		}
	}
	if err := victim.Kill(); err != nil {
		t.Fatal(err)
	}
	id := victim.cfg.NodeID
	eventually(t, 10*time.Second, id+" dead in the members list", func() error {
		if err := c.do(c.live()[0], http.MethodGet, "/v1/cluster/members", nil, &ms); err != nil {
			return err
		}
		for _, m := range ms.Members {
			if m.ID == id {
				if m.Status != "dead" || m.Role != "voter" {
					return fmt.Errorf("%+v", m)
				}
				return nil
			}
		}
		return fmt.Errorf("%s not listed", id)
	})
	time.Sleep(3 * cfg.DeadServerAfter) // past dead-server-after: a removal would have happened by now
	ms2, err := c.leader().Node().Members()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms2) != 3 {
		t.Fatalf("dead server removed below min-quorum: %+v", ms2)
	}
}

// A server that comes back with its data at another Raft address (a pod
// rescheduled with a new IP) is moved there in the configuration, keeping
// its vote: with the third server then gone, the leader and it still make
// a quorum and writes commit.
func TestServerBackAtAnotherAddress(t *testing.T) {
	c := startCluster(t, 3)
	leader := c.leader()
	var moved, other int = -1, -1
	for i, s := range c.servers {
		switch {
		case s == leader:
		case moved < 0:
			moved = i
		default:
			other = i
		}
	}
	old := c.servers[moved].Node().RaftAddr()
	if err := c.servers[moved].Kill(); err != nil {
		t.Fatal(err)
	}
	cfg := c.servers[moved].cfg
	cfg.RaftAddr = "127.0.0.1:0" // another port: the old address is gone
	cfg.GossipAddr = c.servers[moved].Pool().Addr()
	cfg.BootstrapExpect, cfg.Join = 0, []string{leader.Pool().Addr()}
	s, err := Start(cfg)
	if err != nil {
		t.Fatalf("restart %s: %v", cfg.NodeID, err)
	}
	t.Cleanup(func() { _ = s.Kill() })
	c.mu.Lock()
	c.servers[moved] = s
	c.mu.Unlock()
	addr := s.Node().RaftAddr()
	if addr == old {
		t.Fatalf("restarted at the same address %s", addr)
	}
	eventually(t, 15*time.Second, cfg.NodeID+" moved to "+addr+" as a voter", func() error {
		m, ok := c.members(t)[cfg.NodeID]
		if !ok || m.RaftAddr != addr || m.Role == "nonvoter" {
			return fmt.Errorf("%+v", m)
		}
		return nil
	})
	if err := c.servers[other].Kill(); err != nil {
		t.Fatal(err)
	}
	body := wire.RegisterRequest{Address: "10.0.0.1", Port: 80, Ephemeral: new(bool)}
	eventually(t, 15*time.Second, "a write committed by the leader and the moved server", func() error {
		l := c.leader()
		if l == nil {
			return fmt.Errorf("no leader")
		}
		return c.do(l, http.MethodPut, "/v1/namespaces/default/services/web/instances/w1", body, nil)
	})
}
