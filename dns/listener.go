package dns

import (
	"net"
	"sync"
	"sync/atomic"
)

// limitListener admits at most max connections at once: one accepted above
// that is closed at once, so a caller who opens connections and leaves them
// silent holds no more than max file descriptors and goroutines, and each
// for no longer than the idle timeout. (Closing rather than leaving it in
// the backlog, as golang.org/x/net/netutil does, tells the client at once
// and keeps the backlog free for the connections that will be admitted.)
type limitListener struct {
	net.Listener
	max   int64
	open  atomic.Int64
	stats *Stats
}

func newLimitListener(ln net.Listener, max int, stats *Stats) *limitListener {
	return &limitListener{Listener: ln, max: int64(max), stats: stats}
}

// Accept returns the next connection that fits under the limit.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) > l.max {
			l.open.Add(-1)
			l.stats.tcpRefused.Add(1)
			// No linger: the client sees a reset and no TIME_WAIT stays
			// behind on this side.
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetLinger(0)
			}
			c.Close()
			continue
		}
		return &limitedConn{Conn: c, open: &l.open}, nil
	}
}

// limitedConn gives its slot back when it is closed, once.
type limitedConn struct {
	net.Conn
	open *atomic.Int64
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.open.Add(-1) })
	return err
}
