package raft

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/store"
)

// forwardConns counts the forward connections of a kind a node serves.
func forwardConns(n *Node, kind byte) int {
	count := 0
	n.fwdConns.Range(func(_, k any) bool {
		if k == kind {
			count++
		}
		return true
	})
	return count
}

// allAnnounced waits until every node's catalog records every server at
// the given protocols.
func allAnnounced(c *cluster, want map[string]int) {
	c.t.Helper()
	c.eventually("every server announced", 10*time.Second, func() bool {
		for _, n := range c.nodes {
			for id, p := range want {
				if s, ok := n.store.Server(id); !ok || s.Protocol != p {
					return false
				}
			}
		}
		return true
	})
}

// concurrentRegisters registers k instances through n at once.
func concurrentRegisters(t *testing.T, n *Node, prefix string, k int) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := register(ctx, n, store.DefaultNamespace, "web", fmt.Sprintf("%s-%d", prefix, i)); err != nil {
				t.Errorf("register %s-%d through %s: %v", prefix, i, n.ID(), err)
			}
		}()
	}
	wg.Wait()
}

// TestForwardMuxOneConnection: a follower of protocol 2 sends 200
// concurrent writes to a leader of protocol 2 on one connection, and each
// gets its own outcome (one of them a refusal). Between servers of
// protocol 1 and 2, in either direction, the sequential protocol carries
// them, on as many connections as there are requests in flight.
func TestForwardMuxOneConnection(t *testing.T) {
	c := newCluster(t, 3)
	allAnnounced(c, map[string]int{"n1": 2, "n2": 2, "n3": 2})
	leader := c.waitLeader()
	f := c.nodes[followers(c, leader)[0]]
	before := forwardConns(c.nodes[leader], connForwardMux)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, err := register(context.Background(), f, "missing", "web", "x")
		if !errors.Is(err, store.ErrNamespaceNotFound) {
			t.Errorf("forwarded write to a missing namespace: %v, want ErrNamespaceNotFound", err)
		}
	}()
	concurrentRegisters(t, f, "mux", 200)
	wg.Wait()
	// Each follower holds at most one connection to the leader, opened
	// for its first forwarded request (its own catalog record, perhaps).
	if got := forwardConns(c.nodes[leader], connForwardMux); got > 2 || got-before > 1 {
		t.Fatalf("after 200 concurrent forwarded writes the leader serves %d multiplexed connections (%d before), want at most one per follower", got, before)
	}
	f.fwd.mu.Lock()
	sessions := len(f.fwd.sessions)
	f.fwd.mu.Unlock()
	if sessions != 1 {
		t.Fatalf("the follower holds %d multiplexed sessions, want 1", sessions)
	}
	if got := len(instanceIDs(t, f, store.DefaultNamespace, "web")); got != 200 {
		t.Fatalf("the follower holds %d instances, want 200", got)
	}
}

func TestForwardSequentialWithProtocol1(t *testing.T) {
	for _, old := range []string{"leader", "follower"} {
		t.Run("old "+old, func(t *testing.T) {
			// n1 bootstraps and leads; in "old follower" every follower is old.
			c := newCluster(t, 3, func(cfg *Config) {
				if (old == "leader") == (cfg.ID == "n1") {
					cfg.Protocol = 1
				}
			})
			want := map[string]int{"n1": 2, "n2": 2, "n3": 2}
			for id := range want {
				if (old == "leader") == (id == "n1") {
					want[id] = 1
				}
			}
			allAnnounced(c, want)
			leader := 0
			c.leadWith(leader)
			f := c.nodes[followers(c, leader)[0]]
			before := forwardConns(c.nodes[leader], connForward)
			concurrentRegisters(t, f, old, 50)
			if got := len(instanceIDs(t, f, store.DefaultNamespace, "web")); got != 50 {
				t.Fatalf("the follower holds %d instances, want 50", got)
			}
			if got := forwardConns(c.nodes[leader], connForward) - before; got < 2 {
				t.Fatalf("50 concurrent forwarded writes took %d new sequential connection(s)", got)
			}
			if got := forwardConns(c.nodes[leader], connForwardMux); got != 0 {
				t.Fatalf("a protocol 1 server took part in %d multiplexed connection(s)", got)
			}
		})
	}
}

// fakeLeader accepts multiplexed forward connections on loopback; on each,
// it reads one request and hands it to answer, which may write a response
// or return false to drop the connection unanswered.
func fakeLeader(t *testing.T, answer func(conn int, id uint64, w io.Writer) bool) string {
	return fakeLeaderEnds(t, answer, nil)
}

// fakeLeaderEnds is fakeLeader that also tells ended (if not nil) why it
// stopped reading each connection.
func fakeLeaderEnds(t *testing.T, answer func(conn int, id uint64, w io.Writer) bool, ended func(conn int, err error)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for conn := 0; ; conn++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var kind [1]byte
				var hdr [muxRequestHeader]byte
				if _, err := io.ReadFull(c, kind[:]); err != nil || kind[0] != connForwardMux {
					return
				}
				for {
					if _, err := io.ReadFull(c, hdr[:]); err != nil {
						if ended != nil {
							ended(conn, err)
						}
						return
					}
					if _, err := io.CopyN(io.Discard, c, int64(binary.BigEndian.Uint32(hdr[13:17]))); err != nil {
						return
					}
					if !answer(conn, binary.BigEndian.Uint64(hdr[0:8]), c) {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func muxAnswer(w io.Writer, id, index uint64) { w.Write(muxResponse(id, index, nil)) }

// muxForwarder is a forwarder that always multiplexes, with the given ping
// times (zero: the defaults), closed at the end of the test.
func muxForwarder(t *testing.T, ping pingTimes) *forwarder {
	f := newForwarder(nil)
	f.useMux = func(string) bool { return true }
	if ping != (pingTimes{}) {
		f.ping = ping
	}
	t.Cleanup(f.close)
	return f
}

// TestForwardMuxLostAnswer: when the leader's connection drops after it
// took a request, an idempotent request is sent again on a new connection
// and answered there; any other request reports that its outcome is
// unknown, and is not sent twice.
func TestForwardMuxLostAnswer(t *testing.T) {
	var mu sync.Mutex
	seen := map[int]int{} // requests per connection
	addr := fakeLeader(t, func(conn int, id uint64, w io.Writer) bool {
		mu.Lock()
		seen[conn]++
		mu.Unlock()
		if conn%2 == 0 {
			return false // the first connection of each case dies unanswered
		}
		muxAnswer(w, id, 42)
		return true
	})
	f := muxForwarder(t, pingTimes{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	idx, err := f.call(ctx, addr, opApply, []byte("idempotent"), true)
	if err != nil || idx != 42 {
		t.Fatalf("idempotent request: index %d, %v; want 42 from the second connection", idx, err)
	}
	// A new session on the same address for the next case.
	f.close()
	f = muxForwarder(t, pingTimes{})
	_, err = f.call(ctx, addr, opApply, []byte("removal"), false)
	if err == nil || !strings.Contains(err.Error(), "outcome unknown") || !errors.Is(err, errSessionLost) {
		t.Fatalf("non-idempotent request on a lost connection: %v; want outcome unknown", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if seen[0] != 1 || seen[1] != 1 || seen[2] != 1 || len(seen) != 3 {
		t.Fatalf("requests per connection %v; want one each on connections 0, 1 and 2", seen)
	}
}

// TestForwardMuxStalledSession: a leader connection that stops carrying
// data (after a partition TCP holds what was written during the cut in its
// retransmission backoff, for seconds after the heal) is found by an
// unanswered ping and closed. An idempotent request waiting on it goes
// again on a new connection, long before its own deadline; any other
// request reports that its outcome is unknown.
func TestForwardMuxStalledSession(t *testing.T) {
	var conns atomic.Int32
	ends := make(chan error, 4)
	addr := fakeLeaderEnds(t, func(conn int, id uint64, w io.Writer) bool {
		conns.Store(int32(max(int(conns.Load()), conn+1)))
		if conn%2 == 0 {
			return true // takes requests and pings, answers nothing
		}
		muxAnswer(w, id, 42)
		return true
	}, func(conn int, err error) {
		if conn == 0 {
			ends <- err
		}
	})
	fast := pingTimes{after: 100 * time.Millisecond, timeout: 300 * time.Millisecond, every: 20 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	f := muxForwarder(t, fast)
	start := time.Now()
	idx, err := f.call(ctx, addr, opApply, []byte("idempotent"), true)
	if err != nil || idx != 42 {
		t.Fatalf("idempotent request on a stalled connection: index %d, %v; want 42 from a new connection", idx, err)
	}
	t.Logf("answered on a new connection after %v", time.Since(start).Round(time.Millisecond))
	// The stalled connection was reset, not closed: what it still held
	// unsent is dropped, never delivered late.
	if err := <-ends; !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the stalled connection ended with %v at the leader; want a reset", err)
	}

	f.close()
	f = muxForwarder(t, fast)
	_, err = f.call(ctx, addr, opApply, []byte("removal"), false)
	if err == nil || !strings.Contains(err.Error(), "outcome unknown") || !errors.Is(err, errSessionStalled) {
		t.Fatalf("non-idempotent request on a stalled connection: %v; want outcome unknown, no answer to a ping", err)
	}
	if ctx.Err() != nil {
		t.Fatal("the stall was found only at the request's deadline")
	}
	if got := conns.Load(); got != 3 {
		t.Fatalf("%d connections; want 3 (stalled, new, stalled)", got)
	}
}

// TestForwardMuxIdempotentOutlastsStalls: a leader that stalls one session
// after another (a long pause) and then answers gets an idempotent request
// answered within its deadline, however many sessions it took.
func TestForwardMuxIdempotentOutlastsStalls(t *testing.T) {
	var conns atomic.Int32
	addr := fakeLeaderEnds(t, func(conn int, id uint64, w io.Writer) bool {
		conns.Store(int32(max(int(conns.Load()), conn+1)))
		if conn < 3 {
			return true // takes requests and pings, answers nothing
		}
		muxAnswer(w, id, 7)
		return true
	}, func(int, error) {})
	fast := pingTimes{after: 100 * time.Millisecond, timeout: 300 * time.Millisecond, every: 20 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f := muxForwarder(t, fast)
	idx, err := f.call(ctx, addr, opApply, []byte("idempotent"), true)
	if err != nil || idx != 7 {
		t.Fatalf("idempotent request through three stalled sessions: index %d, %v; want 7 from the fourth", idx, err)
	}
	if got := conns.Load(); got != 4 {
		t.Fatalf("%d connections; want 4 (three stalled, one answering)", got)
	}
}

// TestForwardMuxSlowAnswerIsNotAStall: a leader that takes longer than the
// ping timeout to commit, but answers pings, keeps the session: the request
// is answered on its first connection.
func TestForwardMuxSlowAnswerIsNotAStall(t *testing.T) {
	var mu sync.Mutex // one writer at a time on each connection
	var conns, pings atomic.Int32
	addr := fakeLeader(t, func(conn int, id uint64, w io.Writer) bool {
		conns.Store(int32(max(int(conns.Load()), conn+1)))
		if id == 0 {
			pings.Add(1)
			mu.Lock()
			muxAnswer(w, 0, 0)
			mu.Unlock()
			return true
		}
		go func() {
			time.Sleep(time.Second)
			mu.Lock()
			muxAnswer(w, id, 7)
			mu.Unlock()
		}()
		return true
	})
	f := muxForwarder(t, pingTimes{after: 100 * time.Millisecond, timeout: 300 * time.Millisecond, every: 20 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	idx, err := f.call(ctx, addr, opApply, []byte("removal"), false)
	if err != nil || idx != 7 {
		t.Fatalf("slow answer: index %d, %v; want 7 on the first connection", idx, err)
	}
	if got := conns.Load(); got != 1 {
		t.Fatalf("%d connections; want 1", got)
	}
	if pings.Load() == 0 {
		t.Fatal("no ping while the answer was a second away")
	}
}
