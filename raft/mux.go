package raft

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	hraft "github.com/hashicorp/raft"
)

// Every connection to the Raft port starts with one byte that says what it
// carries, so Raft and forwarded requests share one port (and, later, one
// TLS configuration).
const (
	connRaft    byte = 'R'
	connForward byte = 'F'
	// connForwardMux: multiplexed forward requests (protocol 2).
	connForwardMux byte = 'M'
)

// mux owns the Raft listener. It is the hashicorp/raft StreamLayer for Raft
// connections and hands forward connections to a handler.
type mux struct {
	ln        net.Listener
	tls       *tls.Config // nil: plaintext
	advertise net.Addr
	raftCh    chan net.Conn
	forward   func(kind byte, c net.Conn)
	logger    *slog.Logger

	closeOnce sync.Once
	closed    chan struct{}
	wg        sync.WaitGroup

	// served are the Raft connections handed to hashicorp/raft's
	// transport, until its handler closes them (see drain).
	servedMu sync.Mutex
	served   map[*servedConn]struct{}
	handled  sync.WaitGroup
}

// servedConn is a Raft connection handed to the transport. Its handler
// closes it when it returns (NetworkTransport.handleConn defers Close).
type servedConn struct {
	net.Conn
	m    *mux
	once sync.Once
}

func (c *servedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.m.servedMu.Lock()
		delete(c.m.served, c)
		c.m.servedMu.Unlock()
		c.m.handled.Done()
	})
	return err
}

// drain closes every Raft connection still served and waits, at most
// timeout, until their handlers have returned. hashicorp/raft answers
// heartbeats on the transport's goroutines, outside its run loop: one
// that arrived just before Shutdown may still be writing the current term
// to the log store, which must stay open until it is done.
func (m *mux) drain(timeout time.Duration) bool {
	m.servedMu.Lock()
	for c := range m.served {
		c.Conn.Close() // the handler's next read fails; it returns and calls Close
	}
	m.servedMu.Unlock()
	done := make(chan struct{})
	go func() {
		m.handled.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}

func newMux(ln net.Listener, advertise net.Addr, logger *slog.Logger) *mux {
	return &mux{ln: ln, advertise: advertise, raftCh: make(chan net.Conn, 16),
		logger: logger, closed: make(chan struct{})}
}

// serve accepts connections until the listener closes. forward handles
// forward connections, each on its own goroutine.
func (m *mux) serve(forward func(kind byte, c net.Conn)) {
	m.forward = forward
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for {
			c, err := m.ln.Accept()
			if err != nil {
				select {
				case <-m.closed:
					return
				default:
				}
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					continue
				}
				m.logger.Error("raft listener stopped", "err", err)
				return
			}
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				m.route(c)
			}()
		}
	}()
}

func (m *mux) route(c net.Conn) {
	if m.tls != nil {
		tc := tls.Server(c, m.tls)
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if err := tc.Handshake(); err != nil {
			m.logger.Warn("refused a connection on the raft port", "remote", c.RemoteAddr(), "err", err)
			c.Close()
			return
		}
		_ = c.SetDeadline(time.Time{})
		c = tc
	}
	var b [1]byte
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(b[:]); err != nil {
		c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	switch b[0] {
	case connRaft:
		select {
		case m.raftCh <- c:
		case <-m.closed:
			c.Close()
		}
	case connForward, connForwardMux:
		m.forward(b[0], c)
	default:
		m.logger.Warn("unknown connection type on raft port", "remote", c.RemoteAddr(), "byte", b[0])
		c.Close()
	}
}

// Accept returns the next Raft connection.
func (m *mux) Accept() (net.Conn, error) {
	select {
	case c := <-m.raftCh:
		sc := &servedConn{Conn: c, m: m}
		m.servedMu.Lock()
		if m.served == nil {
			m.served = map[*servedConn]struct{}{}
		}
		m.served[sc] = struct{}{}
		m.handled.Add(1)
		m.servedMu.Unlock()
		return sc, nil
	case <-m.closed:
		return nil, fmt.Errorf("raft: mux closed: %w", net.ErrClosed)
	}
}

// Close stops the listener. It does not wait for forward handlers; wait does.
func (m *mux) Close() error {
	m.closeOnce.Do(func() {
		close(m.closed)
		m.ln.Close()
	})
	return nil
}

func (m *mux) wait() { m.wg.Wait() }

// Addr is the advertised address.
func (m *mux) Addr() net.Addr { return m.advertise }

// Dial opens a Raft connection.
func (m *mux) Dial(addr hraft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return dialTyped(string(addr), timeout, connRaft, m.tls)
}

// dialTyped connects to a raft port: TLS first when tc is set, then the
// byte that says what the connection carries.
func dialTyped(addr string, timeout time.Duration, kind byte, tc *tls.Config) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	if tc != nil {
		t := tls.Client(c, tc)
		_ = c.SetDeadline(time.Now().Add(timeout))
		if err := t.Handshake(); err != nil {
			c.Close()
			return nil, fmt.Errorf("tls with %s: %w", addr, err)
		}
		_ = c.SetDeadline(time.Time{})
		c = t
	}
	if _, err := c.Write([]byte{kind}); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}
