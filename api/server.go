// Package api serves the registry's HTTP API with gin. It reads from the
// local store and sends writes through the node, which forwards them to the
// leader when needed.
package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/catalog"
	"github.com/switchyard-io/switchyard/docs"
	"github.com/switchyard-io/switchyard/gossip"
	"github.com/switchyard-io/switchyard/raft"
	"github.com/switchyard-io/switchyard/route"
	"github.com/switchyard-io/switchyard/store"
)

// Node is what the API needs from a registry server; *raft.Node provides it.
// Every method may be called from many request goroutines at once.
type Node interface {
	// Store returns the local catalog replica.
	Store() *store.Store
	// Apply commits a command (forwarded to the leader when needed) and
	// returns once this node has applied it.
	Apply(ctx context.Context, cmd *store.Command) (uint64, error)
	// ConsistentRead waits until a read of the local store is linearizable.
	ConsistentRead(ctx context.Context) error
	// Ready reports whether the node has caught up with the leader.
	Ready() bool
	// Staleness says whether a leader is known and when it was last heard.
	Staleness() (knownLeader bool, lastContact time.Duration)
	// Leader returns the leader's id and Raft address.
	Leader() (id, raftAddr string)
	// Members lists the servers of the cluster.
	Members() ([]raft.Member, error)
	// Join adds a server to the cluster as a voter.
	Join(ctx context.Context, id, raftAddr string) error
	// Restore replaces the catalog with a backup's snapshot; leader only.
	Restore(ctx context.Context, snapshot []byte) error
}

// Config configures the API. Start from DefaultConfig.
type Config struct {
	// MaxBodyBytes caps request bodies; larger ones get 413.
	MaxBodyBytes int64
	// MaxRequestLineBytes caps the request URI (path and query); longer
	// ones get 414 before routing (0: no cap here). Keep it below the HTTP
	// server's MaxHeaderBytes, which counts the request line too and
	// answers 431 itself above that.
	MaxRequestLineBytes int
	// DefaultWait and MaxWait bound blocking queries.
	DefaultWait time.Duration
	MaxWait     time.Duration
	Logger      *slog.Logger
	// Catalog holds the rules every registration obeys (limits, the check
	// policy, liveness); the API builds its catalog service from it. The
	// Consul-compatible API and DNS share that service (Server.Catalog).
	Catalog catalog.Config
	// Gossip lists the servers as the gossip pool sees them (nil: the
	// members list shows the Raft configuration alone).
	Gossip Gossip
	// Metrics serves GET /metrics (nil: no such endpoint).
	Metrics http.Handler
	// Checks reports what the server-side check of an instance last saw
	// (nil: GET …/check answers from the catalog alone).
	Checks Checks
	// Locality is where this server runs: the caller's locality for
	// lookups that do not say (near=).
	Locality store.Locality
	// Topology gives round-trip times between datacenters, to order other
	// regions (nil: by name).
	Topology route.Topology
	// Limits bound what one client may take.
	Limits Limits
	// Registerer receives the API's metrics (nil: not exported).
	Registerer prometheus.Registerer
	// Audit receives one line per request that may change something (nil:
	// Logger, with component=audit).
	Audit *slog.Logger
	// RTT builds the matrix of round-trip times between datacenters (nil:
	// GET /v1/cluster/rtt answers an empty one).
	RTT func(ctx context.Context) (wire.RTTMatrix, error)
	// DrillReports is the folder registry drill writes its reports to
	// ("": GET /v1/drills lists none).
	DrillReports string
	// Console serves the web console under /ui/ (nil: none).
	Console http.Handler
	// Keyring lets an admin rotate this server's gossip keys (nil: GET and
	// PUT /v1/operator/keyring answer 409 not_encrypted).
	Keyring Keyring
	// TokenCatchUpInterval is the shortest time between two consistent
	// reads this server makes to look an unknown token up again (see
	// tokenCatchUp; 0: DefaultTokenCatchUpInterval).
	TokenCatchUpInterval time.Duration
	// AccessControl requires a token with the right rules on every request
	// but health, leader and members (see acl.go). Off: everything is open.
	AccessControl bool
	// AllowedHosts, when not empty, are the only names a request's Host
	// header may carry (any port, case ignored): a page whose name an
	// attacker made resolve to this server (DNS rebinding) is refused with
	// 421. GET /v1/health answers whatever the Host. Empty: any Host.
	AllowedHosts []string
}

// Checks is what the API needs from the server-side checks.
type Checks interface {
	// CheckStatus fills in what the check of in last saw, asking the
	// server that runs it when that is another one.
	CheckStatus(ctx context.Context, in *store.Instance, out *wire.CheckStatus) error
}

// Gossip is what the API needs from the gossip pool; *gossip.Pool
// provides it.
type Gossip interface {
	Members() []gossip.Member
}

// DefaultConfig returns the default API settings.
func DefaultConfig() Config {
	return Config{MaxBodyBytes: 1 << 20, MaxRequestLineBytes: DefaultMaxRequestLineBytes, DefaultWait: 5 * time.Minute, MaxWait: 10 * time.Minute, Limits: DefaultLimits(), Catalog: catalog.DefaultConfig()}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.MaxBodyBytes <= 0 {
		return fmt.Errorf("api: config: max body bytes must be positive")
	}
	if c.MaxRequestLineBytes < 0 {
		return fmt.Errorf("api: config: max request line bytes must not be negative (0 turns the cap off)")
	}
	if c.DefaultWait <= 0 || c.MaxWait < c.DefaultWait {
		return fmt.Errorf("api: config: need 0 < default wait <= max wait")
	}
	if l := c.Limits; l.RequestsPerSecond < 0 || l.Burst < 0 || l.BlockingPerClient < 0 || l.ConnectionsPerClient < 0 {
		return fmt.Errorf("api: config: limits must not be negative (0 turns one off)")
	}
	if err := c.Catalog.Validate(); err != nil {
		return err
	}
	for _, p := range c.Limits.TrustedProxies {
		if !p.IsValid() {
			return fmt.Errorf("api: config: trusted proxy %v is not a valid CIDR", p)
		}
	}
	for _, h := range c.AllowedHosts {
		if hostName(h) == "" {
			return fmt.Errorf("api: config: allowed host %q is empty", h)
		}
	}
	return nil
}

// Server is the HTTP API of one registry server.
type Server struct {
	cfg    Config
	node   Node
	cat    *catalog.Catalog
	logger *slog.Logger
	engine *gin.Engine
	// closing ends every blocking query at once when the server stops.
	closing     context.Context
	stopWaiting context.CancelFunc
	clients     clients
	metrics     *metrics
	audit       *slog.Logger
	// needs maps each route (its method and template) to what it requires.
	needs map[routeKey]Need
	// crossOrigin refuses state-changing requests a browser sends from
	// another site; hosts are the names Host may carry (nil: any).
	crossOrigin *http.CrossOriginProtection
	hosts       map[string]bool
	// catchUp bounds the consistent reads unknown tokens cause.
	catchUp *tokenCatchUp
}

// routes adds routes to a group, each with its Need.
type routes struct {
	s *Server
	g *gin.RouterGroup
}

func (r routes) group(path string, h ...gin.HandlerFunc) routes {
	return routes{s: r.s, g: r.g.Group(path, h...)}
}

func (r routes) add(method, path string, n Need, h ...gin.HandlerFunc) {
	full := r.g.BasePath()
	if path != "" {
		full = strings.TrimRight(full, "/") + path
	}
	r.s.need(method, full, n)
	r.g.Handle(method, path, h...)
}

func (r routes) GET(path string, n Need, h ...gin.HandlerFunc) { r.add(http.MethodGet, path, n, h...) }
func (r routes) PUT(path string, n Need, h ...gin.HandlerFunc) { r.add(http.MethodPut, path, n, h...) }
func (r routes) POST(path string, n Need, h ...gin.HandlerFunc) {
	r.add(http.MethodPost, path, n, h...)
}
func (r routes) DELETE(path string, n Need, h ...gin.HandlerFunc) {
	r.add(http.MethodDelete, path, n, h...)
}
func (r routes) PATCH(path string, n Need, h ...gin.HandlerFunc) {
	r.add(http.MethodPatch, path, n, h...)
}

func init() { gin.SetMode(gin.ReleaseMode) }

// New builds the API over node.
func New(cfg Config, node Node) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cat, err := catalog.New(cfg.Catalog, node)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, node: node, cat: cat, logger: logger, clients: clients{m: map[string]*clientState{}},
		metrics: newMetrics(cfg.Registerer), audit: cfg.Audit, needs: map[routeKey]Need{},
		crossOrigin: http.NewCrossOriginProtection(), hosts: allowedHosts(cfg.AllowedHosts)}
	if cfg.TokenCatchUpInterval <= 0 {
		cfg.TokenCatchUpInterval = DefaultTokenCatchUpInterval
	}
	s.catchUp = newTokenCatchUp(cfg.TokenCatchUpInterval)
	if s.audit == nil {
		s.audit = logger.With("component", "audit")
	}
	s.closing, s.stopWaiting = context.WithCancel(context.Background())
	e := gin.New()
	// gin would believe X-Forwarded-For from anyone; clients are told
	// apart by Limits.clientAddr alone.
	e.ForwardedByClientIP = false
	e.HandleMethodNotAllowed = true
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.Use(s.observe, s.requestLine, s.recover, s.guard, s.rateLimit, s.caughtUp, s.authorize)
	e.NoRoute(func(c *gin.Context) {
		c.JSON(http.StatusNotFound, wire.ErrorBody{Error: fmt.Sprintf("no endpoint %s %s; see docs/api.md", c.Request.Method, c.Request.URL.Path), Code: "not_found"})
	})
	e.NoMethod(func(c *gin.Context) {
		c.JSON(http.StatusMethodNotAllowed, wire.ErrorBody{Error: fmt.Sprintf("method %s is not allowed on %s", c.Request.Method, c.Request.URL.Path), Code: "method_not_allowed"})
	})

	r := routes{s: s, g: &e.RouterGroup}
	if cfg.Metrics != nil {
		r.GET("/metrics", clusterRead, gin.WrapH(cfg.Metrics))
	}
	v1 := r.group("/v1")
	v1.GET("/health", open, s.health)
	v1.GET("/openapi.yaml", open, func(c *gin.Context) { c.Data(http.StatusOK, "application/yaml", docs.OpenAPI) })
	v1.GET("/cluster/leader", open, s.leader)
	v1.GET("/cluster/members", open, s.members)
	v1.POST("/cluster/join", clusterAdmin, s.join)
	v1.DELETE("/cluster/self-preservation", clusterAdmin, s.endSelfPreservation)
	v1.GET("/snapshot", clusterAdmin, s.saveSnapshot)
	v1.PUT("/snapshot", clusterAdmin, s.restoreSnapshot)

	v1.GET("/cluster/rtt", anyToken, s.rttMatrix)
	v1.GET("/topology", someRead, s.read, s.topology)
	v1.GET("/drills", clusterRead, s.listDrills)
	v1.GET("/drills/:name", clusterRead, s.getDrill)
	v1.GET("/drills/:name/timeline", clusterRead, s.drillTimeline)
	if cfg.Console != nil {
		// Static files only: every call they make to the API carries the
		// token entered in the page.
		r.GET("/ui/*file", open, gin.WrapH(http.StripPrefix("/ui", cfg.Console)))
		r.GET("/ui", open, func(c *gin.Context) { c.Redirect(http.StatusMovedPermanently, "/ui/") })
		r.GET("/", open, func(c *gin.Context) { c.Redirect(http.StatusFound, "/ui/") })
	}
	v1.GET("/operator/keyring", clusterAdmin, s.getKeyring)
	v1.PUT("/operator/keyring", clusterAdmin, s.putKeyring)

	v1.GET("/acl/self", anyToken, s.tokenSelf)
	v1.GET("/acl/tokens", clusterAdmin, s.listTokens)
	v1.POST("/acl/tokens", clusterAdmin, s.createToken)
	v1.GET("/acl/tokens/:accessor", clusterAdmin, s.getToken)
	v1.PUT("/acl/tokens/:accessor", clusterAdmin, s.updateToken)
	v1.DELETE("/acl/tokens/:accessor", clusterAdmin, s.revokeToken)

	v1.GET("/namespaces", someRead, s.read, s.listNamespaces)
	ns := v1.group("/namespaces/:ns", s.names)
	ns.GET("", nsRead, s.read, s.getNamespace)
	ns.PUT("", nsAdmin, s.putNamespace)
	ns.DELETE("", nsAdmin, s.deleteNamespace)
	ns.GET("/services", nsRead, s.read, s.listServices)
	ns.GET("/services/:svc", svcRead, s.read, s.getService)
	ns.PUT("/services/:svc", svcAdmin, s.putService)
	ns.DELETE("/services/:svc", svcAdmin, s.deleteService)
	ns.GET("/services/:svc/instances", svcRead, s.read, s.listInstances)
	ns.GET("/services/:svc/instances/:id", svcRead, s.read, s.getInstance)
	ns.GET("/services/:svc/pick", svcRead, s.read, s.pick)
	ns.PUT("/services/:svc/instances/:id", svcWrite, s.register)
	ns.DELETE("/services/:svc/instances/:id", svcWrite, s.deregister)
	ns.PATCH("/services/:svc/instances/:id", svcWrite, s.patchInstance)
	ns.PUT("/services/:svc/instances/:id/heartbeat", svcWrite, s.heartbeat)
	ns.GET("/services/:svc/instances/:id/check", svcRead, s.checkStatus)
	ns.GET("/services/:svc/heartbeats", svcRead, s.heartbeats)
	ns.GET("/services/:svc/history", svcRead, s.serviceHistory)
	ns.GET("/services/:svc/instances/:id/history", svcRead, s.instanceHistory)
	s.engine = e
	return s, nil
}

// Handler returns the http.Handler serving the API.
func (s *Server) Handler() http.Handler { return s.engine }

// Extend adds routes to the API's engine (before it serves): f gets the
// engine and a context cancelled by StopWaiting, to end blocking queries.
func (s *Server) Extend(f func(e *gin.Engine, closing context.Context)) { f(s.engine, s.closing) }

// Closing is done when the server stops serving: blocking queries of other
// doors end with it, as this API's do.
func (s *Server) Closing() context.Context { return s.closing }

// StopWaiting makes every blocking query, running or future, answer at once
// with what it has. Call it before http.Server.Shutdown so that long polls do
// not hold the shutdown for their whole wait; writes are not interrupted.
func (s *Server) StopWaiting() { s.stopWaiting() }

func (s *Server) recover(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			if r == http.ErrAbortHandler {
				panic(r)
			}
			s.logger.Error("panic in handler", "path", c.Request.URL.Path, "panic", r)
			c.AbortWithStatusJSON(http.StatusInternalServerError, wire.ErrorBody{Error: "internal error", Code: "internal"})
		}
	}()
	c.Next()
}

// names validates the path's names before any handler runs, so every
// handler may trust them.
func (s *Server) names(c *gin.Context) {
	for _, p := range []struct{ param, what string }{{"ns", "namespace"}, {"svc", "service"}, {"id", "instance id"}} {
		v, ok := c.Params.Get(p.param)
		if !ok {
			continue
		}
		if err := store.ValidateName(p.what, v); err != nil {
			s.fail(c, err)
			return
		}
	}
	c.Next()
}

// read runs before every catalog read: it honours consistent=true and sets
// the staleness headers. A node that has not caught up never gets here
// (caughtUp refuses every read before routing reaches the handlers).
func (s *Server) read(c *gin.Context) {
	if v := c.Query("consistent"); v != "" {
		consistent, err := strconv.ParseBool(v)
		if err != nil {
			s.fail(c, fmt.Errorf("%w: consistent=%q: use true or false", ErrBadRequest, v))
			return
		}
		if consistent {
			if err := s.node.ConsistentRead(c.Request.Context()); err != nil {
				s.fail(c, err)
				return
			}
		}
	}
	known, last := s.node.Staleness()
	c.Header("X-Switchyard-Known-Leader", strconv.FormatBool(known))
	c.Header("X-Switchyard-Last-Contact", strconv.FormatInt(last.Milliseconds(), 10))
	c.Next()
}

// ready answers 503 and reports false while the node has not caught up:
// its local state could miss acknowledged writes.
// Catalog is the catalog service under this API, for the other doors of
// the same server (the Consul-compatible API, DNS).
func (s *Server) Catalog() *catalog.Catalog { return s.cat }

func (s *Server) ready(c *gin.Context) bool {
	if err := s.cat.Ready(); err != nil {
		s.fail(c, err)
		return false
	}
	return true
}

// blockingParams parses index= and wait=.
func (s *Server) blockingParams(c *gin.Context) (uint64, time.Duration, error) {
	var idx uint64
	if v := c.Query("index"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%w: index=%q must be a non-negative integer (the X-Switchyard-Index of a previous answer)", ErrBadRequest, v)
		}
		idx = n
	}
	wait := s.cfg.DefaultWait
	if v := c.Query("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return 0, 0, fmt.Errorf("%w: wait=%q must be a duration such as 30s or 5m", ErrBadRequest, v)
		}
		wait = min(d, s.cfg.MaxWait)
	}
	return idx, wait, nil
}

// block runs query as a blocking query when index= is given.
func (s *Server) block(c *gin.Context, query store.QueryFunc) (uint64, bool) {
	minIndex, wait, err := s.blockingParams(c)
	if err != nil {
		s.fail(c, err)
		return 0, false
	}
	ctx := c.Request.Context()
	if minIndex > 0 {
		var done func()
		var ok bool
		if ctx, done, ok = s.BlockingContext(c, wait); !ok {
			return 0, false
		}
		defer done()
	}
	idx, err := s.cat.Wait(ctx, minIndex, query)
	if err == nil && minIndex > 0 {
		err = s.Refresh(c) // the token may have changed during the wait
	}
	if err != nil {
		s.fail(c, err)
		return 0, false
	}
	setIndex(c, idx)
	return idx, true
}

func setIndex(c *gin.Context, idx uint64) {
	c.Header("X-Switchyard-Index", strconv.FormatUint(max(idx, 1), 10))
}

// write sends a command through the node.
func (s *Server) write(c *gin.Context, cmd *store.Command) (uint64, bool) {
	idx, err := s.node.Apply(c.Request.Context(), cmd)
	if err != nil {
		s.fail(c, err)
		return 0, false
	}
	setIndex(c, idx)
	return idx, true
}

func (s *Server) body(c *gin.Context) ([]byte, bool) {
	b, err := readBody(c.Request, s.cfg.MaxBodyBytes)
	if err != nil {
		s.fail(c, err)
		return nil, false
	}
	return b, true
}
