package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/raft"
	"github.com/switchyard-io/switchyard/store"
)

// TestLiveProtocolOutweighsAStaleRecord: a server rolled back to an older
// version keeps the catalog record its newer version wrote (the older one
// never rewrites the protocol). What it tells the gossip pool at each start
// is its own, and that holds the cluster at its protocol: were the record
// believed, the others would write log entries it cannot read. Started
// again at the newer version, it lets the cluster move up.
func TestLiveProtocolOutweighsAStaleRecord(t *testing.T) {
	c := startCluster(t, 3, func(cfg *Config) {
		if cfg.NodeID == "s3" {
			cfg.Raft.Protocol = 1
		}
	})
	// s1 judges: s3's own view is at protocol 1 whatever the records say.
	leader := c.servers[0]
	record := func(id string) int {
		rec, _ := leader.Node().Store().Server(id)
		return rec.Protocol
	}
	eventually(t, 15*time.Second, "records s1=2 s2=2 s3=1", func() error {
		if record("s1") != 2 || record("s2") != 2 || record("s3") != 1 {
			return fmt.Errorf("records s1=%d s2=%d s3=%d", record("s1"), record("s2"), record("s3"))
		}
		return nil
	})
	stale, _ := leader.Node().Store().Server("s3")
	stale.Protocol = raft.ProtocolVersion // what s3 recorded before it was rolled back
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	checked := false
	for attempt := 0; attempt < 5 && !checked; attempt++ {
		if _, err := leader.Node().Apply(ctx, &store.Command{Type: store.CommandPutServer, Server: &stale}); err != nil {
			t.Fatal(err)
		}
		// s3 puts its own record right within seconds; judge only while
		// the stale one stands.
		before := record("s3")
		p := leader.Node().ClusterProtocol()
		if before == raft.ProtocolVersion && record("s3") == raft.ProtocolVersion {
			if p != 1 {
				t.Fatalf("every record says protocol %d but s3 runs 1: the cluster runs at %d", raft.ProtocolVersion, p)
			}
			checked = true
		}
	}
	if !checked {
		t.Fatal("s3's record never stayed stale long enough to judge")
	}

	// s3 upgraded.
	i := 2
	if err := c.servers[i].Kill(); err != nil {
		t.Fatal(err)
	}
	c.servers[i].cfg.Raft.Protocol = 0
	c.restart(i)
	eventually(t, 20*time.Second, "the cluster at protocol 2", func() error {
		for _, s := range c.live() {
			if p := s.Node().ClusterProtocol(); p != raft.ProtocolVersion {
				return fmt.Errorf("%s sees protocol %d", s.cfg.NodeID, p)
			}
		}
		return nil
	})
}
