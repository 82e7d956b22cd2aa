package raft

import (
	"context"
	"errors"
	"fmt"
	"time"

	hraft "github.com/hashicorp/raft"
)

// AppliedIndex returns the last log index applied to the store.
func (n *Node) AppliedIndex() uint64 {
	idx, _ := n.applied.get()
	return idx
}

// WaitApplied waits until this node has applied index idx.
func (n *Node) WaitApplied(ctx context.Context, idx uint64) error {
	for {
		cur, ch := n.applied.get()
		if cur >= idx {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("raft: wait for index %d (applied %d): %w", idx, cur, ctx.Err())
		case <-n.ctx.Done():
			return fmt.Errorf("raft: %w", ErrShutdown)
		}
	}
}

// ConsistentRead makes this node's store linearizable for a read that
// follows: it learns the index of the last command the leader applied, with
// leadership verified by a quorum, and waits until this node has applied it
// (the "read index" method; why the applied index and not the commit index
// is in DESIGN.md). Works on followers too.
func (n *Node) ConsistentRead(ctx context.Context) error {
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	idx, err := n.toLeader(ctx, false, func(ctx context.Context, leaderAddr string) (uint64, error) {
		if leaderAddr == "" {
			return n.readIndexLocal(ctx)
		}
		return n.fwd.call(ctx, leaderAddr, opReadIndex, nil, true)
	})
	if err != nil {
		return err
	}
	return n.WaitApplied(ctx, idx)
}

// readIndexLocal returns a read index after confirming leadership: the last
// command this leader applied. Every acknowledged write was applied by the
// leader before it was acknowledged, and a new leader first applies a
// barrier in its own term, which covers everything earlier leaders
// acknowledged. The index is that of a command entry (not a no-op or
// barrier), so a follower's FSM reaches it exactly.
func (n *Node) readIndexLocal(ctx context.Context) (uint64, error) {
	if !n.IsLeader() {
		return 0, fmt.Errorf("raft: read index: %w", ErrNoLeader)
	}
	if err := n.ensureBarrier(ctx); err != nil {
		return 0, err
	}
	if err := n.await(n.raft.VerifyLeader()); err != nil {
		return 0, fmt.Errorf("raft: read index: verify leader: %w: %v", ErrNoLeader, err)
	}
	return n.AppliedIndex(), nil
}

func (n *Node) ensureBarrier(ctx context.Context) error {
	term := n.raft.CurrentTerm()
	if n.barrierTerm.Load() == term {
		return nil
	}
	timeout := n.futureTimeout(ctx)
	if err := n.await(n.raft.Barrier(timeout)); err != nil {
		if errors.Is(err, hraft.ErrNotLeader) || errors.Is(err, hraft.ErrLeadershipLost) {
			return fmt.Errorf("raft: barrier: %w", ErrNoLeader)
		}
		return fmt.Errorf("raft: barrier: %w", err)
	}
	n.barrierTerm.Store(term)
	return nil
}

// runLeadership commits a barrier as soon as this node wins an election, so
// consistent reads on the new leader need not wait for one.
func (n *Node) runLeadership() {
	defer n.wg.Done()
	ch := n.raft.LeaderCh()
	for {
		select {
		case <-n.ctx.Done():
			return
		case isLeader := <-ch:
			n.leadership.Add(1)
			if !isLeader {
				continue
			}
			n.logger.Info("became leader", "term", n.raft.CurrentTerm())
			ctx, cancel := context.WithTimeout(n.ctx, n.cfg.ApplyTimeout)
			err := n.ensureBarrier(ctx)
			if err != nil {
				n.logger.Warn("barrier after election failed", "err", err)
			}
			cancel()
			if err == nil && n.cfg.OnLeader != nil {
				n.cfg.OnLeader()
			}
		}
	}
}

// Ready reports whether this node has caught up with the leader since it
// started. Until then its local reads could be missing acknowledged writes,
// so the API answers 503 instead.
func (n *Node) Ready() bool { return n.ready.Load() }

// ReadyCh closes once the node is ready (see Ready).
func (n *Node) ReadyCh() <-chan struct{} { return n.readyCh }

// runReadiness marks the node ready once it has applied everything the
// leader had committed when it asked, then records this server in the
// catalog.
func (n *Node) runReadiness() {
	defer n.wg.Done()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !n.ready.Load() {
		select {
		case <-n.ctx.Done():
			return
		case <-tick.C:
		}
		if addr, _ := n.raft.LeaderWithID(); addr == "" {
			continue
		}
		ctx, cancel := context.WithTimeout(n.ctx, 2*time.Second)
		err := n.ConsistentRead(ctx)
		cancel()
		if err != nil {
			n.logger.Debug("not caught up yet", "err", err)
			continue
		}
		n.ready.Store(true)
		close(n.readyCh)
		n.logger.Info("caught up with the leader", "applied_index", n.AppliedIndex(),
			"after", time.Since(n.started).Round(time.Millisecond))
	}
	n.announce()
}

// Staleness reports whether a leader is known and how long ago this node
// last heard from it (zero on the leader).
func (n *Node) Staleness() (knownLeader bool, lastContact time.Duration) {
	if n.IsLeader() {
		return true, 0
	}
	addr, _ := n.raft.LeaderWithID()
	lc := n.raft.LastContact()
	if lc.IsZero() {
		return addr != "", 0
	}
	return addr != "", time.Since(lc)
}
