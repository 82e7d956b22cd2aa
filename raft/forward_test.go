package raft

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/store"
)

func TestConnAlive(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	peer := <-accepted
	if !connAlive(c) {
		t.Fatalf("idle open connection reported dead")
	}
	peer.Close()
	deadline := time.Now().Add(5 * time.Second)
	for connAlive(c) {
		if time.Now().After(deadline) {
			t.Fatalf("connection closed by the peer still reported alive")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestMalformedCommandRefusedOnLeader: a command every replica would fail to
// decode never reaches the log; the cluster keeps working.
func TestMalformedCommandRefusedOnLeader(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.nodes[c.waitLeader()]
	c.waitAnnounced(leader)
	ctx := context.Background()
	for _, cmd := range []*store.Command{
		{Type: store.CommandRegister, Namespace: "default", Service: "web", ID: "w1"}, // no instance
		{Type: store.CommandBatch},
		{Type: 42},
	} {
		before := leader.raft.LastIndex()
		_, err := leader.Apply(ctx, cmd)
		if !errors.Is(err, store.ErrInvalid) && !errors.Is(err, store.ErrUnknownCommand) {
			t.Errorf("Apply(%s): got %v, want a refusal", cmd.Type, err)
		}
		if after := leader.raft.LastIndex(); after != before {
			t.Errorf("Apply(%s) appended to the log (%d -> %d)", cmd.Type, before, after)
		}
	}
	if _, err := register(ctx, leader, "default", "web", "w1"); err != nil {
		t.Fatalf("cluster stopped taking writes: %v", err)
	}
}

// A write forwarded by a follower on an idle cluster is answered as soon as
// the follower applies it: the leader nudges the followers with the new
// commit index instead of leaving it to the next CommitTimeout. With a
// CommitTimeout of 300 ms, every forwarded write would otherwise take 300
// ms or more.
func TestForwardedWriteDoesNotWaitForCommitTimeout(t *testing.T) {
	c := newCluster(t, 3, func(cfg *Config) { cfg.CommitTimeout = 300 * time.Millisecond })
	leader := c.waitLeader()
	c.waitReady()
	follower := c.nodes[(leader+1)%3]
	var took []time.Duration
	for i := range 7 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		start := time.Now()
		_, err := follower.Apply(ctx, &store.Command{Type: store.CommandRegister, Namespace: "default", Service: "web",
			ID: fmt.Sprintf("w%d", i), Instance: &store.Instance{Address: "10.0.0.1", Port: 80, Weight: 1, Enabled: true}})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		took = append(took, time.Since(start))
		time.Sleep(50 * time.Millisecond) // idle between writes: nothing else carries the index
	}
	// Each one, the first after the cluster came up included (it follows
	// the servers' own announcements closely).
	if longest := slices.Max(took); longest >= 250*time.Millisecond {
		t.Fatalf("forwarded writes took %v: at least one waited for the CommitTimeout", took)
	}
	t.Logf("forwarded writes on an idle cluster: %v", took)
}
