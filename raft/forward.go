package raft

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/switchyard-io/switchyard/store"
)

// The forward protocol carries requests that only the leader can serve from
// a follower to the leader, over a connection on the Raft port that starts
// with connForward. Requests on one connection are sequential; a caller
// takes an idle connection or dials a new one, so concurrent requests use
// concurrent connections, and up to 64 idle ones are kept per leader.
// That is protocol 1; a leader of protocol 2 takes them multiplexed on one
// connection (forwardmux.go).
//
//	request:  op u8 | timeout-ms u32 | len u32 | payload
//	response: status u8 | index u64 | len u32 | payload (error JSON when status=1)
const (
	opApply     byte = 1 // payload: an encoded store.Command; answers its log index
	opReadIndex byte = 2 // answers the leader's last applied command index, leadership verified
	opJoin      byte = 3 // payload: joinRequest JSON
	// opPing (multiplexed sessions only, id 0) is answered at once by the
	// leader's reader, leadership or not: an answer shows the connection
	// carries data both ways.
	opPing byte = 4
	// opLeave: payload leaveRequest JSON; the server named must be the
	// caller (its certificate's name, with TLS). Protocol 2 leaders of
	// older versions answer it as an unknown op, and the departure is
	// then found by the failure detector.
	opLeave byte = 5

	maxFrame = 8 << 20

	// maxDial bounds one connect to the leader.
	maxDial = time.Second
)

type joinRequest struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	// Nonvoter adds the server without a vote (a leader of a version
	// before it adds a voter).
	Nonvoter bool `json:"nonvoter,omitempty"`
}

type wireError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// remoteError is an error that happened on the leader; it unwraps to the
// sentinel its code names, so errors.Is works across the hop.
type remoteError struct {
	msg    string
	target error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.target }

var errorCodes = []struct {
	code string
	err  error
}{
	{"namespace_not_found", store.ErrNamespaceNotFound},
	{"service_not_found", store.ErrServiceNotFound},
	{"instance_not_found", store.ErrInstanceNotFound},
	{"invalid", store.ErrInvalid},
	{"namespace_in_use", store.ErrNamespaceInUse},
	{"conflict", store.ErrConflict},
	{"token_not_found", store.ErrTokenNotFound},
	{"last_admin", store.ErrLockout},
	{"bootstrapped", store.ErrBootstrapped},
	{"unknown_command", store.ErrUnknownCommand},
	{"no_leader", ErrNoLeader},
	{"leadership_lost", ErrLeadershipLost},
	{"shutdown", ErrShutdown},
	{"timeout", context.DeadlineExceeded},
}

func encodeError(err error) []byte {
	code := "internal"
	for _, c := range errorCodes {
		if errors.Is(err, c.err) {
			code = c.code
			break
		}
	}
	b, _ := json.Marshal(wireError{Code: code, Message: err.Error()})
	return b
}

func decodeError(b []byte) error {
	var w wireError
	if err := json.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("raft: forward: undecodable error from leader: %q", b)
	}
	for _, c := range errorCodes {
		if c.code == w.Code {
			return &remoteError{msg: w.Message, target: c.err}
		}
	}
	return &remoteError{msg: w.Message}
}

// serveForwardConn answers forward requests on one connection, sequential
// (connForward) or multiplexed (connForwardMux), until it closes.
func (n *Node) serveForwardConn(kind byte, c net.Conn) {
	defer c.Close()
	n.fwdConns.Store(c, kind)
	defer n.fwdConns.Delete(c)
	// Shutdown cancels n.ctx before it closes the registered connections:
	// one registered after that sweep sees the cancellation here.
	if n.ctx.Err() != nil {
		return
	}
	caller := peerCert(c)
	if kind == connForwardMux {
		n.serveForwardMux(c, caller)
		return
	}
	n.serveForward(c, caller)
}

// serveForward answers sequential forward requests on one connection.
func (n *Node) serveForward(c net.Conn, caller *x509.Certificate) {
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	for {
		op, timeout, payload, err := n.readRequest(c, r)
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(n.ctx, timeout)
		idx, err := n.handleForward(ctx, caller, op, payload)
		cancel()
		var out [13]byte
		var body []byte
		if err != nil {
			out[0] = 1
			body = encodeError(err)
		}
		binary.BigEndian.PutUint64(out[1:9], idx)
		binary.BigEndian.PutUint32(out[9:13], uint32(len(body)))
		w.Write(out[:])
		w.Write(body)
		if err := w.Flush(); err != nil {
			return
		}
	}
}

// readRequest reads the part of a forward request both protocols share:
// op u8 | timeout-ms u32 | len u32 | payload.
func (n *Node) readRequest(c net.Conn, r io.Reader) (op byte, timeout time.Duration, payload []byte, err error) {
	var hdr [9]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, 0, nil, err
	}
	size := binary.BigEndian.Uint32(hdr[5:9])
	if size > maxFrame {
		n.logger.Warn("forward request too large", "remote", c.RemoteAddr(), "bytes", size)
		return 0, 0, nil, fmt.Errorf("forward request of %d bytes", size)
	}
	payload = make([]byte, size)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, 0, nil, err
	}
	return hdr[0], time.Duration(binary.BigEndian.Uint32(hdr[1:5])) * time.Millisecond, payload, nil
}

// handleForward serves one forward request; caller is the certificate the
// connection came with (nil in plaintext).
func (n *Node) handleForward(ctx context.Context, caller *x509.Certificate, op byte, payload []byte) (uint64, error) {
	if !n.IsLeader() {
		// Leadership moved while the request travelled: the sender retries.
		return 0, fmt.Errorf("raft: forward: %s is no longer the leader: %w", n.cfg.ID, ErrNoLeader)
	}
	switch op {
	case opApply:
		n.forwarded.WithLabelValues("apply").Inc()
		cmd, err := store.DecodeCommand(payload)
		if err != nil {
			return 0, fmt.Errorf("%w: %v", store.ErrInvalid, err)
		}
		if cmd == nil {
			return 0, fmt.Errorf("%w: ignorable command forwarded", store.ErrInvalid)
		}
		return n.applyLocal(ctx, cmd, true)
	case opReadIndex:
		n.forwarded.WithLabelValues("read_index").Inc()
		return n.readIndexLocal(ctx)
	case opJoin:
		n.forwarded.WithLabelValues("join").Inc()
		var j joinRequest
		if err := json.Unmarshal(payload, &j); err != nil {
			return 0, fmt.Errorf("%w: join request: %v", store.ErrInvalid, err)
		}
		return 0, n.joinLocal(ctx, j)
	case opLeave:
		var l leaveRequest
		if err := json.Unmarshal(payload, &l); err != nil {
			return 0, fmt.Errorf("%w: leave request: %v", store.ErrInvalid, err)
		}
		return 0, n.leaveLocal(caller, l, false)
	}
	return 0, fmt.Errorf("%w: forward op %d", store.ErrInvalid, op)
}

// forwarder keeps idle forward connections per leader address, or one
// multiplexed session per leader address when the leader speaks it.
type forwarder struct {
	tls *tls.Config // nil: plaintext
	// useMux says whether the server at a Raft address speaks the
	// multiplexed protocol (protocol 2).
	useMux   func(addr string) bool
	mu       sync.Mutex
	idle     map[string][]net.Conn
	sessions map[string]*muxSession
	ping     pingTimes // when a session checks that its connection carries data
	limit    int
	closed   bool
}

func newForwarder(tc *tls.Config) *forwarder {
	return &forwarder{tls: tc, idle: map[string][]net.Conn{}, sessions: map[string]*muxSession{}, limit: 64, ping: defaultPingTimes}
}

// get returns an idle connection to addr (reused=true) or a new one. An
// idle connection the far end has closed (a leader that stopped) is found
// before use and dropped, so a request is not written into a dead socket.
func (f *forwarder) get(addr string, timeout time.Duration, fresh bool) (c net.Conn, reused bool, err error) {
	for !fresh {
		f.mu.Lock()
		conns := f.idle[addr]
		if len(conns) == 0 {
			f.mu.Unlock()
			break
		}
		c := conns[len(conns)-1]
		f.idle[addr] = conns[:len(conns)-1]
		f.mu.Unlock()
		if connAlive(c) {
			return c, true, nil
		}
		c.Close()
	}
	c, err = dialTyped(addr, timeout, connForward, f.tls)
	return c, false, err
}

// dropIdle closes the idle connections to addr: after a failure on one of
// them, the others likely lead to the same dead process.
func (f *forwarder) dropIdle(addr string) {
	f.mu.Lock()
	conns := f.idle[addr]
	delete(f.idle, addr)
	f.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

func (f *forwarder) put(addr string, c net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || len(f.idle[addr]) >= f.limit {
		c.Close()
		return
	}
	f.idle[addr] = append(f.idle[addr], c)
}

func (f *forwarder) close() {
	f.mu.Lock()
	f.closed = true
	for addr, conns := range f.idle {
		for _, c := range conns {
			c.Close()
		}
		delete(f.idle, addr)
	}
	sessions := f.sessions
	f.sessions = map[string]*muxSession{}
	f.mu.Unlock()
	for _, s := range sessions {
		s.fail(ErrShutdown)
	}
}

// errStaleConn marks a failure on a reused idle connection before any byte
// of an answer arrived: the far end had closed it (a leader that stopped or
// restarted), so the request is sent again on a fresh connection.
var errStaleConn = errors.New("stale idle connection")

// call sends one request to addr and waits for its answer. idempotent says
// whether applying the request twice is the same as once: only such a
// request is sent again after a reused connection died without an answer,
// since the leader may have read and applied it before dying.
func (f *forwarder) call(ctx context.Context, addr string, op byte, payload []byte, idempotent bool) (uint64, error) {
	if f.useMux != nil && f.useMux(addr) {
		return f.callMux(ctx, addr, op, payload, idempotent)
	}
	idx, err := f.callOnce(ctx, addr, op, payload, false)
	if errors.Is(err, errStaleConn) {
		f.dropIdle(addr)
		if !idempotent {
			return 0, fmt.Errorf("raft: forward to %s: leader connection lost, outcome unknown: %w", addr, err)
		}
		idx, err = f.callOnce(ctx, addr, op, payload, true)
	}
	return idx, err
}

// connAlive peeks at an idle connection without blocking: an idle forward
// connection has nothing to read, so a readable end-of-file or error means
// the far end closed it.
func connAlive(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := true
	err = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case n > 0:
			alive = false // unexpected bytes: the stream is out of step
		case rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK:
		default:
			alive = false // 0 bytes (closed) or an error
		}
		return true
	})
	return err == nil && alive
}

func (f *forwarder) callOnce(ctx context.Context, addr string, op byte, payload []byte, fresh bool) (uint64, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(defaultTimeout)
	}
	timeout := time.Until(deadline)
	if timeout <= 0 {
		return 0, fmt.Errorf("raft: forward to %s: %w", addr, context.DeadlineExceeded)
	}
	// A leader that died leaves an address nobody answers: a connect there
	// can hang for seconds (ARP, SYN retries) while a new leader is being
	// elected. Connects are quick on a LAN or WAN; a failed one is
	// retried against whatever leader is known by then.
	c, reused, err := f.get(addr, min(timeout, maxDial), fresh)
	if err != nil {
		return 0, fmt.Errorf("raft: forward to %s: %w", addr, err)
	}
	_ = c.SetDeadline(deadline)
	// Leave the leader a little less time than we wait, so its answer
	// (even a timeout) arrives before we give up on the connection.
	leaderTimeout := max(timeout-timeout/10, time.Millisecond)
	buf := make([]byte, 9+len(payload))
	buf[0] = op
	binary.BigEndian.PutUint32(buf[1:5], uint32(leaderTimeout/time.Millisecond))
	binary.BigEndian.PutUint32(buf[5:9], uint32(len(payload)))
	copy(buf[9:], payload)
	// Cancellation closes the connection so a blocked read returns.
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	if _, err := c.Write(buf); err != nil {
		c.Close()
		if reused && ctx.Err() == nil {
			return 0, fmt.Errorf("raft: forward to %s: %w: %w", addr, errStaleConn, err)
		}
		return 0, fmt.Errorf("raft: forward to %s: %w", addr, err)
	}
	var hdr [13]byte
	if n, err := io.ReadFull(c, hdr[:]); err != nil {
		c.Close()
		if ctx.Err() != nil {
			return 0, fmt.Errorf("raft: forward to %s: %w", addr, ctx.Err())
		}
		if reused && n == 0 && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
			return 0, fmt.Errorf("raft: forward to %s: %w: %w", addr, errStaleConn, err)
		}
		return 0, fmt.Errorf("raft: forward to %s: %w", addr, err)
	}
	idx := binary.BigEndian.Uint64(hdr[1:9])
	size := binary.BigEndian.Uint32(hdr[9:13])
	if size > maxFrame {
		c.Close()
		return 0, fmt.Errorf("raft: forward to %s: answer of %d bytes", addr, size)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(c, body); err != nil {
		c.Close()
		return 0, fmt.Errorf("raft: forward to %s: %w", addr, err)
	}
	_ = c.SetDeadline(time.Time{})
	if !stop() {
		// The context fired while we finished: the deadline may be set.
		c.Close()
	} else {
		f.put(addr, c)
	}
	if hdr[0] != 0 {
		return idx, decodeError(body)
	}
	return idx, nil
}
