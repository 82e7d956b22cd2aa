package api

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"

	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/internal/cidr"
)

// Limits bound what one client may take from a server. Zero disables a
// limit. Clients are told apart by the TCP peer's IP, or by the
// X-Forwarded-For a trusted proxy wrote (TrustedProxies), never by a header
// any client could set. One IPv6 /64 is one client (see ClientKey).
type Limits struct {
	// RequestsPerSecond and Burst: a token bucket per client IP; above it,
	// 429 with Retry-After.
	RequestsPerSecond float64
	Burst             int
	// BlockingPerClient caps the blocking queries one client IP holds open.
	BlockingPerClient int
	// ConnectionsPerClient caps one client IP's open connections (see
	// LimitListener).
	ConnectionsPerClient int
	// LimitLoopback applies the per-client limits to loopback clients too
	// (local agents and benchmarks are not limited by default, unless
	// TrustedProxies is set: a proxy on this host would make every client
	// it forwards a loopback one).
	LimitLoopback bool
	// TrustedProxies are the proxies whose X-Forwarded-For is believed: a
	// request from one of them counts against the rightmost address of that
	// header that is not a trusted proxy itself. Their own connections are
	// not capped (they carry many clients'). From anyone else the header is
	// ignored. Empty: no proxy is trusted.
	TrustedProxies []netip.Prefix
}

// DefaultLimits: generous enough for a fleet behind one address, tight
// enough that one client cannot hold every connection or goroutine.
func DefaultLimits() Limits {
	return Limits{BlockingPerClient: 512, ConnectionsPerClient: 1024}
}

// maxTrackedClients bounds the per-client state kept; beyond it the
// longest idle client is forgotten.
const maxTrackedClients = 65536

type clientState struct {
	lim      *rate.Limiter
	blocking int
	seen     time.Time
}

// clients is the per-client-IP state of the limits.
type clients struct {
	mu sync.Mutex
	m  map[string]*clientState
}

func (cs *clients) get(ip string, l Limits, now time.Time) *clientState {
	st := cs.m[ip]
	if st == nil {
		if len(cs.m) >= maxTrackedClients {
			cs.evict(now)
		}
		st = &clientState{}
		if l.RequestsPerSecond > 0 {
			st.lim = rate.NewLimiter(rate.Limit(l.RequestsPerSecond), max(l.Burst, 1))
		}
		cs.m[ip] = st
	}
	st.seen = now
	return st
}

// evict forgets idle clients (no blocking query open), the longest idle
// first, until a tenth of the room is free.
func (cs *clients) evict(now time.Time) {
	for ip, st := range cs.m {
		if st.blocking == 0 && now.Sub(st.seen) > time.Minute {
			delete(cs.m, ip)
		}
	}
	for ip, st := range cs.m {
		if len(cs.m) < maxTrackedClients*9/10 {
			return
		}
		if st.blocking == 0 {
			delete(cs.m, ip)
		}
	}
}

// ClientKey names the budget a client address draws on: an IPv4 address
// (IPv4-mapped IPv6 included) is one client, and an IPv6 address counts as
// its /64, the smallest block a host is given: one host could otherwise
// take 2^64 fresh budgets.
func ClientKey(a netip.Addr) string {
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// trusted reports whether a is one of the trusted proxies.
func (l Limits) trusted(a netip.Addr) bool { return cidr.Contains(l.TrustedProxies, a) }

// exempt reports whether a client at a is not limited: loopback, unless
// asked (LimitLoopback) or a trusted proxy is configured.
func (l Limits) exempt(a netip.Addr) bool {
	return !l.LimitLoopback && len(l.TrustedProxies) == 0 && a.IsLoopback()
}

// peerAddr parses a connection's remote address ("" port-less or not IP:
// the zero Addr).
func peerAddr(remote string) netip.Addr {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap().WithZone("")
}

// clientAddr is the address of the client that sent r: its TCP peer or,
// when the peer is a trusted proxy, the address that proxy forwarded for.
func (l Limits) clientAddr(r *http.Request) netip.Addr {
	peer := peerAddr(r.RemoteAddr)
	if !peer.IsValid() || !l.trusted(peer) {
		return peer
	}
	return l.forwardedFor(peer, r.Header.Values("X-Forwarded-For"))
}

// forwardedFor walks X-Forwarded-For from the right (each proxy appends
// the address it received from) and returns the first address that is not
// a trusted proxy. An entry that is no address ends the walk at the last
// trusted hop: what lies left of it was written by whoever that hop
// heard, possibly the client itself.
func (l Limits) forwardedFor(peer netip.Addr, headers []string) netip.Addr {
	addr := peer
	for i := len(headers) - 1; i >= 0; i-- {
		items := strings.Split(headers[i], ",")
		for j := len(items) - 1; j >= 0; j-- {
			a, ok := parseForwarded(items[j])
			if !ok {
				return addr
			}
			addr = a
			if !l.trusted(a) {
				return a
			}
		}
	}
	return addr
}

// parseForwarded reads one X-Forwarded-For entry: an address, possibly
// with a port or in brackets.
func parseForwarded(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
	if err != nil {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	}
	return a.Unmap().WithZone(""), true
}

// clientIP is the client's address for logs (see clientAddr).
func (s *Server) clientIP(c *gin.Context) string {
	if a := s.cfg.Limits.clientAddr(c.Request); a.IsValid() {
		return a.String()
	}
	return c.Request.RemoteAddr
}

// limited returns the key of the client's budget, and false when the
// client is exempt from the per-client limits.
func (s *Server) limited(c *gin.Context) (string, bool) {
	a := s.cfg.Limits.clientAddr(c.Request)
	if !a.IsValid() {
		return c.Request.RemoteAddr, true
	}
	if s.cfg.Limits.exempt(a) {
		return "", false
	}
	return ClientKey(a), true
}

// rateLimit is the first middleware: a client over its rate gets 429.
func (s *Server) rateLimit(c *gin.Context) {
	if s.cfg.Limits.RequestsPerSecond <= 0 {
		c.Next()
		return
	}
	ip, ok := s.limited(c)
	if !ok {
		c.Next()
		return
	}
	s.clients.mu.Lock()
	st := s.clients.get(ip, s.cfg.Limits, time.Now())
	allowed := st.lim.Allow()
	s.clients.mu.Unlock()
	if !allowed {
		s.tooMany(c, fmt.Sprintf("too many requests from %s: more than %g a second (--limit-requests-per-client)", ip, s.cfg.Limits.RequestsPerSecond))
		return
	}
	c.Next()
}

func (s *Server) tooMany(c *gin.Context, msg string) {
	c.Header("Retry-After", "1")
	c.AbortWithStatusJSON(http.StatusTooManyRequests, wire.ErrorBody{Error: msg + "; retry after 1 s", Code: "rate_limited"})
}

// BlockingContext bounds one blocking query: it counts the query against
// its client and in the metrics, and its context ends after wait or when
// StopWaiting is called. Call done when the query ends. ok is false (and
// 429 sent) when the client holds too many. Other endpoints on the engine
// (Consul's) use it too.
func (s *Server) BlockingContext(c *gin.Context, wait time.Duration) (ctx context.Context, done func(), ok bool) {
	release, ok := s.holdBlocking(c)
	if !ok {
		return nil, nil, false
	}
	s.metrics.blocking.Inc()
	ctx, cancel := context.WithTimeout(c.Request.Context(), wait)
	stop := context.AfterFunc(s.closing, cancel)
	return ctx, func() {
		stop()
		cancel()
		s.metrics.blocking.Dec()
		release()
	}, true
}

func (s *Server) holdBlocking(c *gin.Context) (release func(), ok bool) {
	max := s.cfg.Limits.BlockingPerClient
	ip, limited := s.limited(c)
	if max <= 0 || !limited {
		return func() {}, true
	}
	s.clients.mu.Lock()
	st := s.clients.get(ip, s.cfg.Limits, time.Now())
	if st.blocking >= max {
		s.clients.mu.Unlock()
		s.tooMany(c, fmt.Sprintf("%s holds %d blocking queries, the most a client may (--limit-blocking-per-client)", ip, max))
		return nil, false
	}
	st.blocking++
	s.clients.mu.Unlock()
	return func() {
		s.clients.mu.Lock()
		st.blocking--
		s.clients.mu.Unlock()
	}, true
}

// LimitListener caps the connections one client (an IPv4 address or an
// IPv6 /64, see ClientKey) holds open on ln at l.ConnectionsPerClient (0:
// no cap). Trusted proxies are not capped, nor are loopback clients unless
// l.LimitLoopback or l.TrustedProxies say so. A connection over the cap is
// answered 429 and closed at once; under TLS (tlsAbove: the HTTP server
// reads TLS from these connections) it is only closed, since a plaintext
// answer would be noise in a handshake.
func LimitListener(ln net.Listener, l Limits, tlsAbove bool) net.Listener {
	if l.ConnectionsPerClient <= 0 {
		return ln
	}
	return &limitListener{Listener: ln, max: l.ConnectionsPerClient, limits: l, tls: tlsAbove, open: map[string]int{}}
}

type limitListener struct {
	net.Listener
	max    int
	limits Limits
	tls    bool
	mu     sync.Mutex
	open   map[string]int
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		host := c.RemoteAddr().String()
		if a := peerAddr(host); a.IsValid() {
			if l.limits.exempt(a) || l.limits.trusted(a) {
				return c, nil
			}
			host = ClientKey(a)
		}
		l.mu.Lock()
		n := l.open[host]
		if n >= l.max {
			l.mu.Unlock()
			if l.tls {
				c.Close()
			} else {
				go refuse(c, host, l.max)
			}
			continue
		}
		l.open[host] = n + 1
		l.mu.Unlock()
		return &countedConn{Conn: c, release: func() {
			l.mu.Lock()
			if l.open[host]--; l.open[host] <= 0 {
				delete(l.open, host)
			}
			l.mu.Unlock()
		}}, nil
	}
}

func refuse(c net.Conn, host string, max int) {
	defer c.Close()
	body := `{"error":"too many connections from ` + host + `: at most ` + strconv.Itoa(max) +
		` (--limit-connections-per-client); retry after 1 s","code":"too_many_connections"}`
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(c, "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}
