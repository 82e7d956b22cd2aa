package api

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"

	"github.com/switchyard-io/switchyard/store"
)

// Limits bound what one client may take from a server. Zero disables a
// limit. Clients are told apart by the TCP peer's IP, never by a header a
// client could set.
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
	// MaxInstancesPerService refuses a new instance in a service that has
	// that many (checked on the server that takes the request: concurrent
	// registrations on several servers can pass it by a few).
	MaxInstancesPerService int
	// MaxMetadataBytes caps the metadata of one instance: its keys and
	// values together, in bytes (400 above it). The store's own caps (64
	// keys, 128-byte keys, 512-byte values) hold whatever this says.
	MaxMetadataBytes int
	// LimitLoopback applies the per-client limits to loopback clients too
	// (local agents and benchmarks are not limited by default).
	LimitLoopback bool
}

// DefaultLimits: generous enough for a fleet behind one address, tight
// enough that one client cannot hold every connection or goroutine.
func DefaultLimits() Limits {
	return Limits{BlockingPerClient: 512, ConnectionsPerClient: 1024, MaxInstancesPerService: 100_000, MaxMetadataBytes: 8192}
}

// CheckMetadata refuses an instance whose metadata is over the limit
// (MaxMetadataBytes; 0: no limit beyond the store's).
func (l Limits) CheckMetadata(in *store.Instance) error {
	if l.MaxMetadataBytes <= 0 {
		return nil
	}
	n := 0
	for k, v := range in.Metadata {
		n += len(k) + len(v)
	}
	if n > l.MaxMetadataBytes {
		return fmt.Errorf("%w: metadata is %d bytes (keys and values), this server takes at most %d (--max-metadata-bytes)", store.ErrInvalid, n, l.MaxMetadataBytes)
	}
	return nil
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

func (s *Server) limited(c *gin.Context) (string, bool) {
	ip := c.RemoteIP()
	if !s.cfg.Limits.LimitLoopback {
		if a := net.ParseIP(ip); a != nil && a.IsLoopback() {
			return ip, false
		}
	}
	return ip, true
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
	c.AbortWithStatusJSON(http.StatusTooManyRequests, ErrorBody{Error: msg + "; retry after 1 s", Code: "rate_limited"})
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

// LimitListener caps the connections one client IP holds open on ln (0:
// no cap; loopback clients are not capped unless limitLoopback). A
// connection over the cap is answered 429 and closed at once; under TLS
// (tlsAbove: the HTTP server reads TLS from these connections) it is only
// closed, since a plaintext answer would be noise in a handshake.
func LimitListener(ln net.Listener, perClient int, limitLoopback, tlsAbove bool) net.Listener {
	if perClient <= 0 {
		return ln
	}
	return &limitListener{Listener: ln, max: perClient, loopback: limitLoopback, tls: tlsAbove, open: map[string]int{}}
}

type limitListener struct {
	net.Listener
	max      int
	loopback bool
	tls      bool
	mu       sync.Mutex
	open     map[string]int
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
		if ip := net.ParseIP(host); !l.loopback && ip != nil && ip.IsLoopback() {
			return c, nil
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
