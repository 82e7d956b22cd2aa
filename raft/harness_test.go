package raft

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/switchyard-io/switchyard/internal/testlog"
	"github.com/switchyard-io/switchyard/store"
)

// testLogger writes through t.Log, so logs show only when a test fails.
func testLogger(t testing.TB) *slog.Logger { return testlog.New(t, slog.LevelInfo) }

// cluster is an in-process cluster of real nodes: real TCP on loopback, real
// bolt files in the test's temp dir, short timeouts.
type cluster struct {
	t     testing.TB
	dir   string
	cfgs  []Config
	nodes []*Node // nil while stopped
}

func fastConfig(t testing.TB, dir, id string) Config {
	c := DefaultConfig()
	c.ID = id
	c.DataDir = filepath.Join(dir, id)
	c.RaftAddr = "127.0.0.1:0"
	c.HTTPAddr = "127.0.0.1:1" + id[len(id)-1:]
	// Short enough for quick elections, long enough that a loaded 2-core
	// machine running -race does not depose a healthy leader.
	c.HeartbeatTimeout = 400 * time.Millisecond
	c.ElectionTimeout = 400 * time.Millisecond
	c.LeaderLeaseTimeout = 300 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	c.ApplyTimeout = 5 * time.Second
	c.Logger = testLogger(t)
	return c
}

// newCluster starts n nodes: the first bootstraps, the others join it.
func newCluster(t testing.TB, n int, opts ...func(*Config)) *cluster {
	t.Helper()
	c := &cluster{t: t, dir: t.TempDir()}
	for i := range n {
		cfg := fastConfig(t, c.dir, fmt.Sprintf("n%d", i+1))
		cfg.Bootstrap = i == 0
		for _, o := range opts {
			o(&cfg)
		}
		c.cfgs = append(c.cfgs, cfg)
		c.nodes = append(c.nodes, nil)
		c.start(i)
		if i == 0 {
			c.waitLeader()
			continue
		}
		// A join can race an election on a loaded machine; like the
		// server's --join, retry until it lands.
		var err error
		c.eventually("join of "+cfg.ID, 20*time.Second, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err = c.nodes[0].Join(ctx, cfg.ID, c.nodes[i].RaftAddr())
			if err != nil {
				t.Logf("join %s: %v (retrying)", cfg.ID, err)
			}
			return err == nil
		})
	}
	t.Cleanup(c.stopAll)
	c.waitReady()
	return c
}

func (c *cluster) start(i int) {
	c.t.Helper()
	n, err := Open(c.cfgs[i], store.New())
	if err != nil {
		c.t.Fatalf("open %s: %v", c.cfgs[i].ID, err)
	}
	// Restart on the same port: peers know this address.
	c.cfgs[i].RaftAddr = n.RaftAddr()
	c.cfgs[i].AdvertiseAddr = ""
	c.nodes[i] = n
}

func (c *cluster) stop(i int) {
	c.t.Helper()
	if c.nodes[i] == nil {
		return
	}
	if err := c.nodes[i].Shutdown(); err != nil {
		c.t.Errorf("shutdown %s: %v", c.cfgs[i].ID, err)
	}
	c.nodes[i] = nil
}

func (c *cluster) stopAll() {
	for i := range c.nodes {
		c.stop(i)
	}
}

// eventually polls cond until it holds or the deadline passes.
func (c *cluster) eventually(what string, d time.Duration, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitLeader returns the index of the leader among running nodes.
func (c *cluster) waitLeader() int {
	c.t.Helper()
	leader := -1
	c.eventually("a leader", 10*time.Second, func() bool {
		for i, n := range c.nodes {
			if n != nil && n.IsLeader() {
				leader = i
				return true
			}
		}
		return false
	})
	return leader
}

func (c *cluster) waitReady() {
	c.t.Helper()
	c.eventually("all running nodes ready", 10*time.Second, func() bool {
		for _, n := range c.nodes {
			if n != nil && !n.Ready() {
				return false
			}
		}
		return true
	})
}

// waitAnnounced waits until the leader's catalog holds every running
// node's server record: each node writes it once it has joined (announce),
// and a test that counts log entries must not see those writes land in
// the middle of its count. Once written, a record is only checked again
// every reannounceEvery.
func (c *cluster) waitAnnounced(leader *Node) {
	c.t.Helper()
	c.eventually("every node's server record in the catalog", 10*time.Second, func() bool {
		for _, n := range c.nodes {
			if n == nil {
				continue
			}
			if _, ok := leader.store.Server(n.cfg.ID); !ok {
				return false
			}
		}
		return true
	})
}

// waitReplicated waits until every running node has applied idx.
func (c *cluster) waitReplicated(idx uint64) {
	c.t.Helper()
	for _, n := range c.nodes {
		if n == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := n.WaitApplied(ctx, idx)
		cancel()
		if err != nil {
			c.t.Fatalf("%s: %v", n.ID(), err)
		}
	}
}

func register(ctx context.Context, n *Node, ns, svc, id string) (uint64, error) {
	return n.Apply(ctx, &store.Command{Type: store.CommandRegister, Namespace: ns, Service: svc, ID: id,
		Instance: &store.Instance{Address: "10.0.0.1", Port: 8080, Weight: 100, Enabled: true, Ephemeral: true}})
}

// leadWith hands leadership to node i and waits until it leads.
func (c *cluster) leadWith(i int) {
	c.t.Helper()
	c.eventually(c.cfgs[i].ID+" leads", 20*time.Second, func() bool {
		cur := c.waitLeader()
		if cur == i {
			return true
		}
		err := c.nodes[cur].raft.LeadershipTransferToServer(
			hraft.ServerID(c.cfgs[i].ID), hraft.ServerAddress(c.nodes[i].RaftAddr())).Error()
		if err != nil {
			c.t.Logf("leadership transfer to %s: %v", c.cfgs[i].ID, err)
		}
		return false
	})
}
