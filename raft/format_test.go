package raft

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/switchyard-io/switchyard/store"
)

// bodyKinds returns, for each command of the log entry at idx on n, '{' for
// a JSON body or 1 for a binary one.
func bodyKinds(t *testing.T, n *Node, idx uint64) []byte {
	t.Helper()
	var l hraft.Log
	if err := n.logs.GetLog(idx, &l); err != nil {
		t.Fatalf("%s: log entry %d: %v", n.ID(), idx, err)
	}
	b := l.Data
	if len(b) < 2 || store.CommandType(b[0]) != store.CommandBatch {
		t.Fatalf("%s: entry %d is not a batch entry: % x", n.ID(), idx, b[:min(len(b), 8)])
	}
	var kinds []byte
	for rest := b[1:]; len(rest) > 0; {
		size, k := binary.Uvarint(rest)
		cmd := rest[k : k+int(size)]
		kinds = append(kinds, cmd[1])
		rest = rest[k+int(size):]
	}
	return kinds
}

// TestEntryFormatFollowsTheOldestServer is a rolling upgrade: while one
// server announces that it reads only JSON bodies, every entry is written
// in JSON, also for writes forwarded by an upgraded follower; once that
// server runs the new version and announces binary bodies, new register
// entries are binary. Every server applies every entry either way.
func TestEntryFormatFollowsTheOldestServer(t *testing.T) {
	c := newCluster(t, 3, func(cfg *Config) {
		if cfg.ID == "n3" {
			cfg.Protocol = 1
		}
	})
	announced := func(want int) func() bool {
		return func() bool {
			for _, n := range c.nodes {
				for _, id := range []string{"n1", "n2", "n3"} {
					s, ok := n.store.Server(id)
					wantProtocol := ProtocolVersion
					if id == "n3" {
						wantProtocol = want
					}
					if !ok || s.Protocol != wantProtocol {
						return false
					}
				}
			}
			return true
		}
	}
	c.eventually("every server announced", 10*time.Second, announced(1))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	writes := 0
	writeBoth := func(want byte) {
		t.Helper()
		leader := c.waitLeader()
		follower := (leader + 1) % 3
		for _, i := range []int{leader, follower} {
			writes++
			idx, err := register(ctx, c.nodes[i], store.DefaultNamespace, "web", fmt.Sprintf("w%d", writes))
			if err != nil {
				t.Fatalf("register through %s: %v", c.nodes[i].ID(), err)
			}
			c.waitReplicated(idx)
			for _, n := range c.nodes {
				kinds := bodyKinds(t, n, idx)
				for _, k := range kinds {
					if k != want {
						t.Fatalf("write %d through %s: %s holds bodies %q, want all %q", writes, c.nodes[i].ID(), n.ID(), kinds, want)
					}
				}
			}
		}
	}
	writeBoth('{')

	// n3 runs the new version.
	c.stop(2)
	c.cfgs[2].Protocol = 0
	c.start(2)
	c.waitReady()
	c.eventually("n3 announced binary bodies", 10*time.Second, announced(ProtocolVersion))
	writeBoth(1)

	for _, n := range c.nodes {
		v, err := n.store.Service(store.DefaultNamespace, "web")
		if err != nil || v.Len() != writes {
			t.Fatalf("%s: web has %v instances (%v), want %d", n.ID(), v, err, writes)
		}
	}
}

// TestAnnounceRepairsAStrippedRecord: a leader of protocol 1 re-encodes a
// forwarded put-server without the protocol field, so a newer server's
// record reads protocol 0 and the cluster would stay on JSON entries for
// good. Each server checks its record and writes it again; once the leader
// keeps the field, the record is right and binary entries start.
func TestAnnounceRepairsAStrippedRecord(t *testing.T) {
	old := reannounceEvery
	reannounceEvery = 50 * time.Millisecond
	t.Cleanup(func() { reannounceEvery = old })
	c := newCluster(t, 3)
	allAnnounced(c, map[string]int{"n1": 2, "n2": 2, "n3": 2})
	leader := c.nodes[c.waitLeader()]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rec, _ := leader.store.Server("n2")
	rec.Protocol = 0 // what a protocol 1 leader writes
	if _, err := leader.Apply(ctx, &store.Command{Type: store.CommandPutServer, Server: &rec}); err != nil {
		t.Fatal(err)
	}
	if leader.entryFormat() != store.EntryFormatJSON {
		t.Fatal("with n2 recorded at protocol 0 the leader still writes binary entries")
	}
	allAnnounced(c, map[string]int{"n1": 2, "n2": 2, "n3": 2})
	idx, err := register(ctx, leader, store.DefaultNamespace, "web", "after-repair")
	if err != nil {
		t.Fatal(err)
	}
	if kinds := bodyKinds(t, leader, idx); string(kinds) != "\x01" {
		t.Fatalf("after the repair the entry holds bodies %q, want one binary body", kinds)
	}
}
