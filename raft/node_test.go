package raft

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/switchyard-io/switchyard/store"
)

func followers(c *cluster, leader int) []int {
	var out []int
	for i, n := range c.nodes {
		if n != nil && i != leader {
			out = append(out, i)
		}
	}
	return out
}

// instanceIDs lists the ids a node's store holds for a service.
func instanceIDs(t testing.TB, n *Node, ns, svc string) []string {
	t.Helper()
	v, err := n.Store().Service(ns, svc)
	if err != nil {
		if errors.Is(err, store.ErrServiceNotFound) {
			return nil
		}
		t.Fatalf("%s: %v", n.ID(), err)
	}
	ids := make([]string, v.Len())
	for i, in := range v.Instances() {
		ids[i] = in.ID
	}
	return ids
}

func TestRegisterOnFollowerReadEverywhere(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.waitLeader()
	f := followers(c, leader)
	ctx := context.Background()

	idx, err := register(ctx, c.nodes[f[0]], "default", "web", "web-1")
	if err != nil {
		t.Fatalf("register on follower: %v", err)
	}
	// Apply returned after the follower itself applied the entry.
	if ids := instanceIDs(t, c.nodes[f[0]], "default", "web"); !slices.Equal(ids, []string{"web-1"}) {
		t.Fatalf("follower that took the write has %v right after it", ids)
	}
	c.waitReplicated(idx)
	var want *store.ServiceView
	for _, n := range c.nodes {
		v, err := n.Store().Service("default", "web")
		if err != nil {
			t.Fatalf("%s: %v", n.ID(), err)
		}
		if want == nil {
			want = v
			continue
		}
		if !reflect.DeepEqual(v.Instances(), want.Instances()) || v.Index != want.Index || v.Service != want.Service {
			t.Fatalf("%s disagrees: %+v vs %+v", n.ID(), v.Instances()[0], want.Instances()[0])
		}
	}
	if want.Instances()[0].RegisteredAt.IsZero() {
		t.Fatalf("leader did not stamp the registration time")
	}

	// A rejection on the leader reaches the follower's caller as the same
	// named error.
	_, err = register(ctx, c.nodes[f[1]], "nope", "web", "web-2")
	if !errors.Is(err, store.ErrNamespaceNotFound) {
		t.Fatalf("register into unknown namespace via follower: got %v, want ErrNamespaceNotFound", err)
	}
}

func TestConsistentReadOnFollower(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.waitLeader()
	f := c.nodes[followers(c, leader)[0]]
	ctx := context.Background()
	for i := range 50 {
		id := fmt.Sprintf("i-%d", i)
		// applyLocal returns once the leader applied, without waiting for
		// followers: a plain follower read right now may miss it.
		if _, err := c.nodes[leader].applyLocal(ctx, &store.Command{Type: store.CommandRegister,
			Namespace: "default", Service: "db", ID: id,
			Instance: &store.Instance{Address: "10.0.0.2", Port: 5432, Weight: 1, Enabled: true, Ephemeral: true}}, false); err != nil {
			t.Fatal(err)
		}
		if err := f.ConsistentRead(ctx); err != nil {
			t.Fatalf("consistent read: %v", err)
		}
		if v, err := f.Store().Service("default", "db"); err != nil || v.Instance(id) == nil {
			t.Fatalf("consistent read on follower misses %s acknowledged by the leader (err %v)", id, err)
		}
	}
}

// TestLeaderStopWhileWriting stops the leader while 8 writers register and
// checks that every acknowledged registration survives on every remaining
// node. It reports the longest stretch without any acknowledged write.
func TestLeaderStopWhileWriting(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.waitLeader()
	survivors := followers(c, leader)

	var (
		mu      sync.Mutex
		acked   []string
		ackTime []time.Time
	)
	stopAt := make(chan struct{})
	var total atomic.Int64
	var wg sync.WaitGroup
	done := make(chan struct{})
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Writers talk to the survivors only, like clients whose server
			// stays up; their writes are forwarded to whoever leads.
			n := c.nodes[survivors[w%2]]
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				id := fmt.Sprintf("w%d-%d", w, i)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := register(ctx, n, "default", "orders", id)
				cancel()
				if err != nil {
					continue // not acknowledged: nothing to check
				}
				mu.Lock()
				acked = append(acked, id)
				ackTime = append(ackTime, time.Now())
				mu.Unlock()
				if total.Add(1) == 200 {
					close(stopAt)
				}
			}
		}()
	}
	<-stopAt
	stopped := time.Now()
	c.stop(leader)
	// Let writers run until 300 more writes were acknowledged after the stop.
	c.eventually("writes after the leader stopped", 20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, at := range ackTime {
			if at.After(stopped) {
				n++
			}
		}
		return n >= 300
	})
	close(done)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	times := slices.Clone(ackTime)
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	var window time.Duration
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap > window {
			window = gap
		}
	}
	t.Logf("write unavailability window after stopping the leader: %v (%d writes acknowledged)", window, len(acked))

	newLeader := c.waitLeader()
	idx := c.nodes[newLeader].AppliedIndex()
	c.waitReplicated(idx)
	for _, i := range survivors {
		have := map[string]bool{}
		for _, id := range instanceIDs(t, c.nodes[i], "default", "orders") {
			have[id] = true
		}
		for _, id := range acked {
			if !have[id] {
				t.Errorf("%s lost acknowledged registration %s", c.nodes[i].ID(), id)
			}
		}
	}
}

func TestRestartFromDataDirs(t *testing.T) {
	for _, tc := range []struct {
		logStore     string
		withSnapshot bool
	}{{LogStoreBolt, false}, {LogStoreBolt, true}, {LogStoreWAL, false}, {LogStoreWAL, true}} {
		withSnapshot := tc.withSnapshot
		t.Run(fmt.Sprintf("%s/snapshot=%v", tc.logStore, withSnapshot), func(t *testing.T) {
			c := newCluster(t, 3, func(c *Config) { c.TrailingLogs, c.LogStore = 10, tc.logStore })
			for _, n := range c.nodes {
				if n.LogStore() != tc.logStore {
					t.Fatalf("%s keeps its log in %q, want %q", n.ID(), n.LogStore(), tc.logStore)
				}
			}
			ctx := context.Background()
			leader := c.waitLeader()
			if _, err := c.nodes[leader].Apply(ctx, &store.Command{Type: store.CommandPutNamespace,
				Namespace: "prod", NamespaceSettings: &store.NamespaceSettings{Fallback: "default"}}); err != nil {
				t.Fatal(err)
			}
			var last uint64
			for i := range 100 {
				idx, err := register(ctx, c.nodes[i%3], "prod", "cart", fmt.Sprintf("c-%03d", i))
				if err != nil {
					t.Fatal(err)
				}
				last = max(last, idx)
			}
			if _, err := c.nodes[0].Apply(ctx, &store.Command{Type: store.CommandDeregister,
				Namespace: "prod", Service: "cart", ID: "c-050"}); err != nil {
				t.Fatal(err)
			}
			c.waitReplicated(last)
			c.waitReplicated(c.nodes[c.waitLeader()].AppliedIndex())
			before := instanceIDs(t, c.nodes[0], "prod", "cart")
			if len(before) != 99 {
				t.Fatalf("have %d instances before restart, want 99", len(before))
			}
			if withSnapshot {
				for _, n := range c.nodes {
					if err := n.Snapshot(); err != nil {
						t.Fatal(err)
					}
					// The snapshot was timed and its size kept for /metrics.
					if got := snapshotCount(t, n, "capture"); got != 1 {
						t.Fatalf("%s: %d captures timed, want 1", n.ID(), got)
					}
					if got := snapshotCount(t, n, "persist"); got != 1 {
						t.Fatalf("%s: %d persists timed, want 1", n.ID(), got)
					}
					if b := testutil.ToFloat64(n.snapshots.bytes); b < 1000 {
						t.Fatalf("%s: last snapshot %v bytes, want the 99 instances' worth", n.ID(), b)
					}
				}
			}
			c.stopAll()
			for i := range c.nodes {
				c.start(i)
			}
			c.waitLeader()
			c.waitReady()
			for _, n := range c.nodes {
				if got := instanceIDs(t, n, "prod", "cart"); !slices.Equal(got, before) {
					t.Fatalf("%s after restart has %d instances, want %d", n.ID(), len(got), len(before))
				}
				if ns, err := n.Store().Namespace("prod"); err != nil || ns.Namespace.Fallback != "default" {
					t.Fatalf("%s lost namespace prod or its fallback: %v", n.ID(), err)
				}
				// A restart restores the local snapshot, timed, when there is one.
				if got, want := snapshotCount(t, n, "restore"), map[bool]uint64{true: 1, false: 0}[withSnapshot]; got != want {
					t.Fatalf("%s: %d restores timed after restart, want %d", n.ID(), got, want)
				}
				if withSnapshot {
					first, err := n.logs.FirstIndex()
					if err != nil {
						t.Fatal(err)
					}
					if first <= 1 {
						t.Fatalf("%s: log not truncated by snapshot (first index %d)", n.ID(), first)
					}
				}
			}
			// The restarted cluster still takes writes.
			if _, err := register(ctx, c.nodes[2], "prod", "cart", "c-new"); err != nil {
				t.Fatalf("write after restart: %v", err)
			}
		})
	}
}

func TestMembersAndJoinIdempotent(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.waitLeader()
	ctx := context.Background()
	// Joining again with the same id and address changes nothing.
	if err := c.nodes[followers(c, leader)[0]].Join(ctx, "n2", c.nodes[1].RaftAddr()); err != nil {
		t.Fatalf("re-join: %v", err)
	}
	// A different id on an address in use is refused.
	err := c.nodes[leader].Join(ctx, "n9", c.nodes[1].RaftAddr())
	if !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("join with a taken address: got %v, want ErrInvalid", err)
	}
	c.eventually("every server recorded with its HTTP address", 5*time.Second, func() bool {
		ms, err := c.nodes[2].Members()
		if err != nil || len(ms) != 3 {
			return false
		}
		leaders := 0
		for _, m := range ms {
			if m.HTTPAddr == "" {
				return false
			}
			if m.Role == "leader" {
				leaders++
			}
		}
		return leaders == 1
	})
}

// TestNotReadyUntilCaughtUp restarts a follower that missed writes and
// checks that the moment it says Ready, its store already holds every write
// acknowledged before the restart.
func TestNotReadyUntilCaughtUp(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.waitLeader()
	lagger := followers(c, leader)[0]
	c.stop(lagger)
	ctx := context.Background()
	var want []string
	for i := range 300 {
		id := fmt.Sprintf("m-%03d", i)
		if _, err := register(ctx, c.nodes[leader], "default", "missed", id); err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
	}
	c.start(lagger)
	n := c.nodes[lagger]
	c.eventually("restarted follower ready", 10*time.Second, n.Ready)
	if got := instanceIDs(t, n, "default", "missed"); !slices.Equal(got, want) {
		t.Fatalf("follower became ready holding %d of %d acknowledged writes", len(got), len(want))
	}
}

// TestForwardAfterLeaderRestart: a follower holds idle forward connections
// to the leader; the leader restarts and leads again. The follower's next
// forwarded write must succeed, not fail on a dead pooled connection.
func TestForwardAfterLeaderRestart(t *testing.T) {
	c := newCluster(t, 3)
	ctx := context.Background()
	leader := c.waitLeader()
	f := followers(c, leader)[0]
	// Several concurrent writes leave several idle connections in the pool.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := register(ctx, c.nodes[f], "default", "web", fmt.Sprintf("a-%d", i)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	c.stop(leader)
	c.start(leader)
	c.waitReady()
	// Hand leadership back to the restarted node.
	c.leadWith(leader)
	for i := range 8 {
		if _, err := register(ctx, c.nodes[f], "default", "web", fmt.Sprintf("b-%d", i)); err != nil {
			t.Fatalf("forwarded write %d after the leader restarted: %v", i, err)
		}
	}
}

// TestConcurrentWritesShareEntries: concurrent writes are gathered into
// batch entries, so the log grows by fewer entries than there were writes,
// and every write is applied with its own outcome.
func TestConcurrentWritesShareEntries(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.nodes[c.waitLeader()]
	before := leader.raft.LastIndex()
	const writers, each = 64, 10
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := register(context.Background(), leader, "default", "batch", fmt.Sprintf("w%d-%d", w, i)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	// One rejected command in the middle of the load fails alone.
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := register(context.Background(), leader, "missing", "batch", "x"); !errors.Is(err, store.ErrNamespaceNotFound) {
			t.Errorf("write to a missing namespace: got %v, want ErrNamespaceNotFound", err)
		}
	}()
	wg.Wait()
	entries := leader.raft.LastIndex() - before
	t.Logf("%d writes took %d log entries", writers*each+1, entries)
	if entries >= writers*each*9/10 {
		t.Fatalf("%d concurrent writes took %d log entries: not batched", writers*each, entries)
	}
	if got := len(instanceIDs(t, leader, "default", "batch")); got != writers*each {
		t.Fatalf("%d instances applied, want %d", got, writers*each)
	}
}

// snapshotCount is how many snapshot phases of this kind n has timed.
func snapshotCount(t *testing.T, n *Node, phase string) uint64 {
	t.Helper()
	var m dto.Metric
	if err := n.snapshots.seconds.WithLabelValues(phase).(prometheus.Histogram).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

// TestLeadershipLostMidCommit: a leader appends a write, then loses its
// followers and steps down before it commits. A removal, which is not
// idempotent, reports that its outcome is unknown; a registration, which
// is, is sent to the next leader by Apply itself once the followers are
// back, and succeeds.
func TestLeadershipLostMidCommit(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.waitLeader()
	ctx := context.Background()
	if _, err := register(ctx, c.nodes[leader], "default", "web", "gone"); err != nil {
		t.Fatal(err)
	}
	c.waitReplicated(c.nodes[leader].AppliedIndex())
	cutOff := func(apply func(ctx context.Context, n *Node) (uint64, error)) (fs []int, done chan error) {
		t.Helper()
		leader := c.waitLeader()
		fs = followers(c, leader)
		for _, i := range fs {
			c.stop(i)
		}
		done = make(chan error, 1)
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		go func() {
			defer cancel()
			_, err := apply(wctx, c.nodes[leader])
			done <- err
		}()
		// Without a quorum the leader steps down after its lease.
		c.eventually("the lone leader steps down", 10*time.Second, func() bool { return !c.nodes[leader].IsLeader() })
		return fs, done
	}

	fs, done := cutOff(func(ctx context.Context, n *Node) (uint64, error) {
		return n.Apply(ctx, &store.Command{Type: store.CommandDeregister, Namespace: "default", Service: "web", ID: "gone"})
	})
	select {
	case err := <-done:
		if !errors.Is(err, ErrLeadershipLost) {
			t.Fatalf("a removal cut off by the election: %v, want outcome unknown (ErrLeadershipLost)", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the removal neither applied nor failed")
	}
	for _, i := range fs {
		c.start(i)
	}

	fs, done = cutOff(func(ctx context.Context, n *Node) (uint64, error) {
		return register(ctx, n, "default", "web", "kept")
	})
	for _, i := range fs {
		c.start(i)
	}
	if err := <-done; err != nil {
		t.Fatalf("a registration cut off by the election: %v, want it applied through the next leader", err)
	}
	c.waitReplicated(c.nodes[c.waitLeader()].AppliedIndex())
	for _, n := range c.nodes {
		if ids := instanceIDs(t, n, "default", "web"); !slices.Contains(ids, "kept") {
			t.Fatalf("%s: the registration is missing (has %v)", n.ID(), ids)
		}
	}
}
