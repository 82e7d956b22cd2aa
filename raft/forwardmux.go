package raft

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// The multiplexed forward protocol (protocol 2, connForwardMux) carries
// every forwarded request of a follower to the leader on one connection.
// Requests are tagged with an id, the leader handles them concurrently and
// answers each as it is ready. Under load, one write carries the frames of
// many requests and one read takes them in, on both sides (each writer
// yields before it drains its queue and flushes, see DESIGN.md): the per-request
// cost of the sequential protocol (a write and a read syscall each way, and
// a connection per concurrent request) is paid per burst instead.
//
//	request:  id u64 | op u8 | timeout-ms u32 | len u32 | payload
//	response: id u64 | status u8 | index u64 | len u32 | payload (error JSON when status=1)
const (
	muxRequestHeader  = 17
	muxResponseHeader = 21
	// maxMuxInflight bounds the requests a leader handles at once for one
	// connection; the reader waits for a slot beyond that.
	maxMuxInflight = 4096
	muxBuffer      = 64 << 10
)

// A session with answers owed that has read nothing for a second sends a
// ping; if nothing at all arrives within two seconds of it, the
// session is dead and closes, so that the calls after it dial afresh. A
// partition leaves a connection in TCP's retransmission backoff: after the
// network heals, the data written during the cut waits for the next
// retransmission, seconds later (15 s once backed off six times), and every
// request written behind it waits too.
type pingTimes struct {
	after, timeout, every time.Duration // every: how often a session checks
}

var defaultPingTimes = pingTimes{after: time.Second, timeout: 2 * time.Second, every: 250 * time.Millisecond}

// serveForwardMux answers multiplexed forward requests on one connection
// until it closes.
func (n *Node) serveForwardMux(c net.Conn, caller *x509.Certificate) {
	out := make(chan []byte, 256)
	done := make(chan struct{})
	defer close(done)
	go func() {
		// Answers that are ready together go out in one write.
		w := bufio.NewWriterSize(c, muxBuffer)
		for {
			select {
			case b := <-out:
				w.Write(b)
			case <-done:
				return
			}
			// The answers of one commit become ready together: let
			// the handlers woken with this one queue theirs first.
			runtime.Gosched()
		more:
			for {
				select {
				case b := <-out:
					w.Write(b)
				default:
					break more
				}
			}
			if err := w.Flush(); err != nil {
				c.Close() // the reader stops too
				// Keep taking answers, so that no handler waits on out
				// holding a slot the reader needs to reach its error.
				for {
					select {
					case <-out:
					case <-done:
						return
					}
				}
			}
		}
	}()
	r := bufio.NewReaderSize(c, muxBuffer)
	slots := make(chan struct{}, maxMuxInflight)
	var idb [8]byte
	for {
		if _, err := io.ReadFull(r, idb[:]); err != nil {
			return
		}
		id := binary.BigEndian.Uint64(idb[:])
		op, timeout, payload, err := n.readRequest(c, r)
		if err != nil {
			return
		}
		if op == opPing {
			select {
			case out <- muxResponse(id, 0, nil):
			case <-n.ctx.Done():
				return
			}
			continue
		}
		select {
		case slots <- struct{}{}:
		case <-n.ctx.Done():
			return
		}
		go func() {
			defer func() { <-slots }()
			ctx, cancel := context.WithTimeout(n.ctx, timeout)
			idx, err := n.handleForward(ctx, caller, op, payload)
			cancel()
			select {
			case out <- muxResponse(id, idx, err):
			case <-done: // the connection is gone; so is the caller
			}
		}()
	}
}

// muxResponse encodes the answer to request id: its index, or err.
func muxResponse(id, idx uint64, err error) []byte {
	var body []byte
	status := byte(0)
	if err != nil {
		status, body = 1, encodeError(err)
	}
	b := make([]byte, muxResponseHeader+len(body))
	binary.BigEndian.PutUint64(b[0:8], id)
	b[8] = status
	binary.BigEndian.PutUint64(b[9:17], idx)
	binary.BigEndian.PutUint32(b[17:21], uint32(len(body)))
	copy(b[muxResponseHeader:], body)
	return b
}

// errSessionLost: the connection of a multiplexed session failed before
// the request's answer arrived.
var errSessionLost = errors.New("leader connection lost")

// muxSession is a follower's multiplexed connection to one leader address.
type muxSession struct {
	addr   string
	c      net.Conn
	sendCh chan *muxCall
	dead   chan struct{}

	mu     sync.Mutex
	calls  map[uint64]*muxCall
	nextID uint64
	err    error // why the session died; set once

	lastRead atomic.Int64 // unix nanoseconds of the last frame read (or of the start)
	ping     pingTimes
}

// errSessionStalled: a session owed answers and read nothing, not even the
// answer to a ping.
var errSessionStalled = errors.New("no answer to a ping")

type muxCall struct {
	id    uint64
	frame []byte
	// written is set once any byte of the request may have left: from then
	// on the leader may have applied it.
	written atomic.Bool
	done    chan muxResult // buffered
}

type muxResult struct {
	index uint64
	err   error
}

func newMuxSession(c net.Conn, addr string, ping pingTimes) *muxSession {
	s := &muxSession{addr: addr, c: c, sendCh: make(chan *muxCall, 256), dead: make(chan struct{}),
		calls: map[uint64]*muxCall{}, ping: ping}
	s.lastRead.Store(time.Now().UnixNano())
	go s.writeLoop()
	go s.readLoop()
	go s.watch()
	return s
}

// watch pings the leader when the session owes answers and has read
// nothing for a while, and ends the session when the ping goes unanswered.
// The leader answers a ping from its reader, so a slow commit never looks
// like a dead connection; only a connection that carries nothing does.
func (s *muxSession) watch() {
	t := time.NewTicker(s.ping.every)
	defer t.Stop()
	var pinged time.Time // zero: no ping outstanding
	ping := &muxCall{frame: make([]byte, muxRequestHeader), done: make(chan muxResult, 1)}
	ping.frame[8] = opPing // id 0, no payload
	for {
		select {
		case <-t.C:
		case <-s.dead:
			return
		}
		now := time.Now()
		last := time.Unix(0, s.lastRead.Load())
		switch {
		case !pinged.IsZero() && last.After(pinged):
			pinged = time.Time{} // answered, or something else arrived
		case !pinged.IsZero() && now.Sub(pinged) >= s.ping.timeout:
			s.fail(fmt.Errorf("%w within %v", errSessionStalled, s.ping.timeout))
			return
		case pinged.IsZero() && !s.idle() && now.Sub(last) >= s.ping.after:
			pinged = now
			// A writer stuck on a full socket cannot take the ping: that
			// is a stall too, and the timeout above ends it.
			select {
			case s.sendCh <- ping:
			default:
			}
		}
	}
}

// fail ends the session: the connection closes and every pending call
// hears errSessionLost.
func (s *muxSession) fail(err error) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	s.err = err
	calls := s.calls
	s.calls = nil
	s.mu.Unlock()
	close(s.dead)
	if errors.Is(err, errSessionStalled) {
		abort(s.c)
	} else {
		s.c.Close()
	}
	for _, call := range calls {
		call.done <- muxResult{err: fmt.Errorf("%w: %w", errSessionLost, err)}
	}
}

// abort closes c and discards what it still holds unsent or unacknowledged.
// A plain close would leave the kernel retransmitting it: requests whose
// callers were told "outcome unknown" would reach the leader after the
// network heals, seconds late, and a late deregistration could remove an
// instance registered again since. TLS's close alert is skipped too: it is
// a write into the same stuck socket.
func abort(c net.Conn) {
	if t, ok := c.(*tls.Conn); ok {
		c = t.NetConn()
	}
	if t, ok := c.(*net.TCPConn); ok {
		_ = t.SetLinger(0) // close sends a reset and drops the queue
	}
	c.Close()
}

func (s *muxSession) alive() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err == nil
}

func (s *muxSession) idle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls) == 0
}

func (s *muxSession) writeLoop() {
	w := bufio.NewWriterSize(s.c, muxBuffer)
	for {
		var call *muxCall
		select {
		case call = <-s.sendCh:
		case <-s.dead:
			return
		}
		// Requests queued together go out in one write.
		runtime.Gosched()
		for call != nil {
			if !s.alive() {
				return // fail answered every pending call: not written
			}
			call.written.Store(true)
			w.Write(call.frame)
			select {
			case call = <-s.sendCh:
			default:
				call = nil
			}
		}
		if err := w.Flush(); err != nil {
			s.fail(err)
			return
		}
	}
}

func (s *muxSession) readLoop() {
	r := bufio.NewReaderSize(s.c, muxBuffer)
	var hdr [muxResponseHeader]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			s.fail(err)
			return
		}
		id := binary.BigEndian.Uint64(hdr[0:8])
		idx := binary.BigEndian.Uint64(hdr[9:17])
		size := binary.BigEndian.Uint32(hdr[17:21])
		if size > maxFrame {
			s.fail(fmt.Errorf("answer of %d bytes", size))
			return
		}
		var body []byte
		if size > 0 {
			body = make([]byte, size)
			if _, err := io.ReadFull(r, body); err != nil {
				s.fail(err)
				return
			}
		}
		s.lastRead.Store(time.Now().UnixNano())
		if id == 0 {
			continue // a ping's answer
		}
		s.mu.Lock()
		call := s.calls[id]
		delete(s.calls, id)
		s.mu.Unlock()
		if call == nil {
			continue // its caller gave up
		}
		res := muxResult{index: idx}
		if hdr[8] != 0 {
			res.err = decodeError(body)
		}
		call.done <- res
	}
}

// call sends one request and waits for its answer. written reports whether
// the request may have reached the leader.
func (s *muxSession) call(ctx context.Context, op byte, payload []byte, leaderTimeout time.Duration) (idx uint64, written bool, err error) {
	frame := make([]byte, muxRequestHeader+len(payload))
	frame[8] = op
	binary.BigEndian.PutUint32(frame[9:13], uint32(leaderTimeout/time.Millisecond))
	binary.BigEndian.PutUint32(frame[13:17], uint32(len(payload)))
	copy(frame[muxRequestHeader:], payload)
	call := &muxCall{frame: frame, done: make(chan muxResult, 1)}
	s.mu.Lock()
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		return 0, false, fmt.Errorf("%w: %w", errSessionLost, err)
	}
	s.nextID++
	call.id = s.nextID
	binary.BigEndian.PutUint64(frame[0:8], call.id)
	s.calls[call.id] = call
	s.mu.Unlock()
	select {
	case s.sendCh <- call:
	case res := <-call.done: // the session died first
		return 0, false, res.err
	case <-ctx.Done():
		s.forget(call.id)
		return 0, false, ctx.Err()
	}
	select {
	case res := <-call.done:
		return res.index, call.written.Load(), res.err
	case <-ctx.Done():
		s.forget(call.id)
		return 0, true, ctx.Err()
	}
}

func (s *muxSession) forget(id uint64) {
	s.mu.Lock()
	delete(s.calls, id)
	s.mu.Unlock()
}

// session returns the live multiplexed session to addr, dialing one if
// there is none. Sessions to other addresses with nothing pending are
// closed: they lead to a server that is no longer the leader.
func (f *forwarder) session(addr string, timeout time.Duration) (*muxSession, error) {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil, ErrShutdown
	}
	if s := f.sessions[addr]; s != nil && s.alive() {
		f.mu.Unlock()
		return s, nil
	}
	f.mu.Unlock()
	c, err := dialTyped(addr, timeout, connForwardMux, f.tls)
	if err != nil {
		return nil, err
	}
	s := newMuxSession(c, addr, f.ping)
	var stale []*muxSession
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		s.fail(ErrShutdown)
		return nil, ErrShutdown
	}
	if cur := f.sessions[addr]; cur != nil && cur.alive() {
		// Another caller dialed too; keep the first.
		f.mu.Unlock()
		go s.fail(errors.New("duplicate session"))
		return cur, nil
	}
	f.sessions[addr] = s
	for other, o := range f.sessions {
		if other != addr && o.idle() {
			stale = append(stale, o)
			delete(f.sessions, other)
		}
	}
	f.mu.Unlock()
	for _, o := range stale {
		// Closing a TLS connection may wait on the peer: not on this caller.
		go o.fail(errors.New("leader moved"))
	}
	return s, nil
}

// callMux sends a request on the multiplexed session to addr. A request
// the session lost before it was written is sent again on a new session;
// one that may have reached the leader is sent again only if idempotent,
// then until its deadline.
func (f *forwarder) callMux(ctx context.Context, addr string, op byte, payload []byte, idempotent bool) (uint64, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		// Apply always gives one; without, bound the wait here.
		deadline = time.Now().Add(defaultTimeout)
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	for attempt := 0; ; attempt++ {
		timeout := time.Until(deadline)
		if timeout <= 0 {
			return 0, fmt.Errorf("raft: forward to %s: %w", addr, context.DeadlineExceeded)
		}
		s, err := f.session(addr, min(timeout, maxDial))
		if err != nil {
			return 0, fmt.Errorf("raft: forward to %s: %w", addr, err)
		}
		// Leave the leader a little less time than we wait, so its answer
		// (even a timeout) arrives before we give up.
		timeout = time.Until(deadline)
		idx, written, err := s.call(ctx, op, payload, max(timeout-timeout/10, time.Millisecond))
		switch {
		case err == nil:
			return idx, nil
		case !errors.Is(err, errSessionLost):
			var re *remoteError
			if errors.As(err, &re) {
				return idx, err
			}
			return 0, fmt.Errorf("raft: forward to %s: %w", addr, err)
		case idempotent:
			// As often as the deadline allows: sent twice or more, it
			// applies once. A leader stalled by a long pause (a snapshot
			// to install, a collection on a starved machine) stalls one
			// session after another until it answers again; one that
			// drops sessions at once is not redialled in a tight loop.
			if attempt > 0 {
				select {
				case <-ctx.Done():
				case <-time.After(min(10*time.Millisecond<<attempt, 200*time.Millisecond)):
				}
			}
			continue
		case attempt == 0 && !written:
			continue
		case written:
			return 0, fmt.Errorf("raft: forward to %s: outcome unknown: %w", addr, err)
		default:
			return 0, fmt.Errorf("raft: forward to %s: %w", addr, err)
		}
	}
}
