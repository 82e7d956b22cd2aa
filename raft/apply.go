package raft

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/switchyard-io/switchyard/store"
)

// Apply commits a command through Raft from any node and returns its log
// index once this node has applied it, so a read here right after sees it.
// On a follower the command is forwarded to the leader; during an election
// it waits for the new leader until ctx ends. A command the catalog rejects
// returns the store's error (errors.Is with store.ErrNamespaceNotFound...).
func (n *Node) Apply(ctx context.Context, cmd *store.Command) (uint64, error) {
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	var payload []byte
	idx, err := n.toLeader(ctx, cmd.Idempotent(), func(ctx context.Context, leaderAddr string) (uint64, error) {
		if leaderAddr == "" {
			return n.applyLocal(ctx, cmd, false)
		}
		if payload == nil {
			b, err := cmd.EncodeFormat(n.entryFormat())
			if err != nil {
				return 0, err
			}
			payload = b
		}
		return n.fwd.call(ctx, leaderAddr, opApply, payload, cmd.Idempotent())
	})
	if idx > 0 {
		if werr := n.WaitApplied(ctx, idx); werr != nil && err == nil {
			err = werr
		}
	}
	return idx, err
}

// toLeader runs do on the leader: locally (leaderAddr "") when this node
// leads, or through the forward protocol. While there is no leader, or the
// leader moved before the request reached it, it retries until ctx ends;
// an idempotent request also when the leader stepped down mid-commit.
func (n *Node) toLeader(ctx context.Context, idempotent bool, do func(ctx context.Context, leaderAddr string) (uint64, error)) (uint64, error) {
	backoff := 5 * time.Millisecond
	for {
		var (
			idx uint64
			err error
		)
		leaderAddr, leaderID := n.raft.LeaderWithID()
		switch {
		case n.IsLeader():
			idx, err = do(ctx, "")
		case leaderAddr != "" && string(leaderID) != n.cfg.ID:
			idx, err = do(ctx, string(leaderAddr))
		default:
			err = fmt.Errorf("raft: %w", ErrNoLeader)
		}
		if err == nil || !retryable(err, idempotent) {
			return idx, err
		}
		select {
		case <-n.ctx.Done():
			return 0, fmt.Errorf("raft: %w", ErrShutdown)
		case <-ctx.Done():
			return 0, fmt.Errorf("raft: %w (waited %v): %w", ErrNoLeader, ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 100*time.Millisecond)
	}
}

// retryable says whether a failed leader request may be sent again: it
// certainly did not apply, or it is idempotent and its leader stepped down
// before committing it (an election, a leader starved of CPU), so sent to
// the next leader it applies once whether or not the first attempt
// committed, and the caller sees the election as latency, not as "outcome
// unknown".
func retryable(err error, idempotent bool) bool {
	if errors.Is(err, ErrNoLeader) || (idempotent && errors.Is(err, ErrLeadershipLost)) {
		return true
	}
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial"
}

// applyLocal appends a command on this node, which must be the leader. The
// command joins the next batch entry (see runBatcher).
func (n *Node) applyLocal(ctx context.Context, cmd *store.Command, forwarded bool) (uint64, error) {
	// An entry every replica fails to decode would stop them all for good:
	// refuse a malformed command before it reaches the log.
	if err := cmd.Validate(); err != nil {
		return 0, fmt.Errorf("raft: apply: %w", err)
	}
	p := &pendingApply{cmd: cmd, forwarded: forwarded, done: make(chan applyOutcome, 1)}
	select {
	case n.batchCh <- p:
	case <-ctx.Done():
		return 0, fmt.Errorf("raft: apply %s: %w", cmd.Type, ctx.Err())
	case <-n.ctx.Done():
		return 0, fmt.Errorf("raft: apply %s: %w", cmd.Type, ErrShutdown)
	}
	select {
	case out := <-p.done:
		// A store error (unknown namespace, say) reaches the caller as is;
		// submit already named Raft's own failures.
		return out.index, out.err
	case <-ctx.Done():
		// The command may still commit: the caller hears the outcome is
		// unknown through the context error.
		return 0, fmt.Errorf("raft: apply %s: outcome unknown: %w", cmd.Type, ctx.Err())
	case <-n.ctx.Done():
		return 0, fmt.Errorf("raft: apply %s: %w", cmd.Type, ErrShutdown)
	}
}

// pendingApply is a command waiting for its batch.
type pendingApply struct {
	cmd *store.Command
	// forwarded: a follower sent it, and waits to apply its index itself.
	forwarded bool
	done      chan applyOutcome
}

type applyOutcome struct {
	index uint64
	err   error
}

// maxInflightBatches bounds the batch entries in Raft at once. While they
// are in flight, new commands gather into the next batch: under load one
// entry (one log write, one replication message, one FSM call) carries many
// commands; when idle a command goes alone at once. Every entry costs two
// syncs of bbolt on each of three nodes, so fewer, larger entries win: one
// at a time gave 1.23–1.25× the registrations/s of four at 64 clients
// (docs/benchmarks/history.md#registrations-one-batch-entry-in-flight-26-november-2026-0050-utc).
const maxInflightBatches = 1

// runBatcher turns concurrent applyLocal calls into batch entries.
func (n *Node) runBatcher() {
	defer n.wg.Done()
	slots := make(chan struct{}, maxInflightBatches)
	for {
		var first *pendingApply
		select {
		case first = <-n.batchCh:
		case <-n.ctx.Done():
			return
		}
		batch := []*pendingApply{first}
		n.gathering.Store(1)
	gather:
		for len(batch) < store.MaxBatch {
			select {
			case p := <-n.batchCh:
				batch = append(batch, p)
				n.gathering.Add(1)
			case slots <- struct{}{}:
				break gather
			case <-n.ctx.Done():
				failAll(batch, fmt.Errorf("raft: apply: %w", ErrShutdown))
				return
			}
		}
		if len(batch) == store.MaxBatch {
			select {
			case slots <- struct{}{}:
			case <-n.ctx.Done():
				failAll(batch, fmt.Errorf("raft: apply: %w", ErrShutdown))
				return
			}
		}
		n.gathering.Store(0)
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			defer func() { <-slots }()
			n.submit(batch)
		}()
	}
}

func failAll(batch []*pendingApply, err error) {
	for _, p := range batch {
		p.done <- applyOutcome{err: err}
	}
}

// submit appends one batch entry and hands each command its outcome. The
// leader stamps the time here, before the entry exists, so every replica
// applies the same bytes.
func (n *Node) submit(batch []*pendingApply) {
	now := time.Now().UTC()
	format := n.entryFormat()
	// Commands that fail to encode are answered now and left out.
	kept := make([]*pendingApply, 0, len(batch))
	entry := make([][]byte, 0, len(batch))
	for _, p := range batch {
		c := *p.cmd
		c.Time = now
		b, err := c.EncodeFormat(format)
		if err != nil {
			p.done <- applyOutcome{err: err}
			continue
		}
		kept = append(kept, p)
		entry = append(entry, b)
	}
	if len(kept) == 0 {
		return
	}
	n.applyGate.RLock()
	start := time.Now()
	n.submitted.Add(1)
	f := n.raft.Apply(store.EncodeBatch(entry), n.cfg.ApplyTimeout)
	err := n.await(f)
	n.applyGate.RUnlock()
	if err == nil {
		n.commitTime.Observe(time.Since(start).Seconds())
	}
	if err != nil {
		switch {
		case errors.Is(err, ErrShutdown), errors.Is(err, hraft.ErrRaftShutdown):
			err = ErrShutdown
		case errors.Is(err, hraft.ErrNotLeader), errors.Is(err, hraft.ErrLeadershipTransferInProgress):
			err = ErrNoLeader // not appended: the caller may retry
		case errors.Is(err, hraft.ErrEnqueueTimeout):
			err = context.DeadlineExceeded
		case errors.Is(err, hraft.ErrLeadershipLost):
			// Appended, then the leader stepped down: the entry may still
			// commit under the next one.
			err = fmt.Errorf("outcome unknown: %w", ErrLeadershipLost)
		default:
			err = fmt.Errorf("outcome unknown: %w", err)
		}
		failAll(kept, fmt.Errorf("raft: apply: %w", err))
		return
	}
	results, _ := f.Response().([]store.Result)
	for _, p := range kept {
		if p.forwarded {
			n.nudge()
			break
		}
	}
	for i, p := range kept {
		out := applyOutcome{index: f.Index()}
		if i < len(results) {
			out.err = results[i].Err
		}
		p.done <- out
	}
}

// nudgeAfter is how long the leader waits for a next entry to carry the
// commit index before it sends a barrier to carry it.
const nudgeAfter = 2 * time.Millisecond

// EntriesAppended counts the batch entries this node appended as leader
// (catalog changes; barriers and Raft's own entries are not counted).
func (n *Node) EntriesAppended() uint64 { return n.submitted.Load() }

// nudge asks runNudger to tell the followers the commit index of a batch
// that just committed with forwarded writes in it: a follower that forwarded
// a write answers only once it has applied the write itself, and it learns
// the commit index only with the leader's next message, which an idle
// leader sends after CommitTimeout (5–10 ms).
func (n *Node) nudge() {
	want := n.submitted.Load() // every entry appended so far, this one included
	for {
		cur := n.nudgeWant.Load()
		if cur >= want || n.nudgeWant.CompareAndSwap(cur, want) {
			break
		}
	}
	select {
	case n.nudgeCh <- struct{}{}:
	default: // a request is pending; it reads nudgeWant when it runs
	}
}

// runNudger sends a barrier when no batch entry followed a committed one
// with forwarded writes within nudgeAfter: the barrier's message carries
// the commit index at once. Under load the next entry comes first and
// carries it, and no barrier is added (each costs every server a log
// write).
func (n *Node) runNudger() {
	defer n.wg.Done()
	for {
		select {
		case <-n.nudgeCh:
		case <-n.ctx.Done():
			return
		}
		select {
		case <-time.After(nudgeAfter):
		case <-n.ctx.Done():
			return
		}
		if n.submitted.Load() > n.nudgeWant.Load() || len(n.batchCh) > 0 || n.gathering.Load() > 0 {
			continue // an entry appended after the commit, or about to be, carries the index
		}
		_ = n.await(n.raft.Barrier(n.cfg.ApplyTimeout))
	}
}
