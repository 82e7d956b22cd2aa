// Package consulcompat serves the part of HashiCorp Consul's HTTP API that
// service-discovery tools use (Prometheus consul_sd_configs, Traefik,
// Fabio, consul-template, Spring Cloud Consul, gRPC resolvers), on the
// registry's own listener, over the same catalog. The mapping is in
// docs/consul-compat.md.
package consulcompat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/switchyard-io/switchyard/api"
	"github.com/switchyard-io/switchyard/catalog"
	"github.com/switchyard-io/switchyard/health/check"
	"github.com/switchyard-io/switchyard/store"
)

// Reserved metadata keys, kept with an instance registered through the
// agent endpoints and never shown in Consul's Meta.
const (
	metaPrefix  = "switchyard."
	metaNode    = metaPrefix + "node"     // the agent (server) it was registered through
	metaCheckID = metaPrefix + "check-id" // a CheckID other than service:<id>
	metaCheck   = metaPrefix + "check-name"
	metaReason  = metaPrefix + "maintenance-reason"
)

// Config configures the Consul-compatible endpoints.
type Config struct {
	// NodeName is this server's name (Consul's agent node name).
	NodeName string
	// Locality is this server's; its datacenter is Consul's Datacenter
	// ("dc1" when unset).
	Locality store.Locality
	// Namespace serves requests that carry no ?ns= (default "default").
	Namespace string
	// Catalog is the catalog service the native API uses (api.Server's
	// Catalog): registrations here obey the same rules and limits, and TTL
	// passes are heartbeats. Required.
	Catalog *catalog.Catalog
	// MaxBodyBytes caps request bodies, as the native API's (413 above it;
	// 0: 1 MiB).
	MaxBodyBytes int64
	// DefaultWait and MaxWait bound blocking queries (Consul: 5 and 10 min).
	DefaultWait, MaxWait time.Duration
	Logger               *slog.Logger
	// Blocking bounds a blocking query (api.Server's BlockingContext): it
	// counts it against its client, and ends it after wait or at shutdown.
	// Nil: the wait and the closing context given to New bound it alone.
	Blocking func(c *gin.Context, wait time.Duration) (ctx context.Context, done func(), ok bool)
	// Auth checks tokens (api.Server provides it); nil: everything is
	// allowed.
	Auth Auth
	// CacheBytes bounds the memory of the remembered answers, by which an
	// answer keeps its X-Consul-Index while its bytes stay the same (see
	// answerCache); 0: DefaultCacheBytes.
	CacheBytes int64
}

// Auth is access control, as api.Server does it.
type Auth interface {
	// Guard records what a route needs; routes without one are refused.
	Guard(method, path string, n api.Need)
	// Authorize returns a *api.DeniedError unless the caller may have
	// access on service svc of ns (svc "": the namespace).
	Authorize(c *gin.Context, access store.Access, ns, svc string) error
	// Allowed is Authorize as a yes or no, for filtering lists.
	Allowed(c *gin.Context, access store.Access, ns, svc string) bool
	// AllowedSome reports whether the caller may have access on some
	// service of ns.
	AllowedSome(c *gin.Context, access store.Access, ns string) bool
	// Accessor names the caller's token ("" while access control is off).
	Accessor(c *gin.Context) string
	// Refresh looks the caller's token up again (after a blocking wait).
	Refresh(c *gin.Context) error
}

// authzKey keeps, in the request's context, the checks a handler made, so
// that a blocking read can make them again after each wait.
const authzKey = "consulcompat.checks"

type authzCheck struct {
	access  store.Access
	ns, svc string
	some    bool
}

// recheck looks the token up again and repeats the handler's checks: a
// token revoked or narrowed during a blocking wait gets no answer.
func (s *Server) recheck(c *gin.Context) error {
	if s.cfg.Auth == nil {
		return nil
	}
	err := s.cfg.Auth.Refresh(c)
	if err == nil {
		v, _ := c.Get(authzKey)
		checks, _ := v.([]authzCheck)
		for _, k := range checks {
			if k.some && !s.cfg.Auth.AllowedSome(c, k.access, k.ns) {
				err = s.cfg.Auth.Authorize(c, k.access, k.ns, "")
			} else if !k.some {
				err = s.cfg.Auth.Authorize(c, k.access, k.ns, k.svc)
			}
			if err != nil {
				break
			}
		}
	}
	return err
}

func remember(c *gin.Context, k authzCheck) {
	v, _ := c.Get(authzKey)
	checks, _ := v.([]authzCheck)
	c.Set(authzKey, append(checks, k))
}

// Server answers Consul's endpoints from node's catalog.
type Server struct {
	cfg    Config
	node   api.Node
	cat    *catalog.Catalog
	logger *slog.Logger

	mu      sync.Mutex
	answers *answerCache // see indexFor
	closing context.Context
}

type answerIndex struct {
	hash  uint64
	index uint64
	view  uint64 // the views' index the answer was built from
}

// New builds the endpoints; Mount adds them to an engine. closing ends every
// blocking query when it is cancelled.
func New(closing context.Context, cfg Config, node api.Node) (*Server, error) {
	if cfg.Catalog == nil {
		return nil, errors.New("consulcompat: config: no catalog")
	}
	if cfg.Namespace == "" {
		cfg.Namespace = store.DefaultNamespace
	}
	if cfg.Locality.Datacenter == "" {
		cfg.Locality.Datacenter = "dc1"
	}
	if cfg.DefaultWait <= 0 {
		cfg.DefaultWait = 5 * time.Minute
	}
	if cfg.MaxWait < cfg.DefaultWait {
		cfg.MaxWait = max(10*time.Minute, cfg.DefaultWait)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.CacheBytes <= 0 {
		cfg.CacheBytes = DefaultCacheBytes
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	return &Server{cfg: cfg, node: node, cat: cfg.Catalog, logger: cfg.Logger, answers: newAnswerCache(cfg.CacheBytes), closing: closing}, nil
}

// Mount adds the endpoints to e. Each handler checks the token itself, once
// it knows the namespace and service (from the query, the body or an
// instance id).
func (s *Server) Mount(e *gin.Engine) {
	v1 := e.Group("/v1")
	add := func(method, path string, n api.Need, h gin.HandlerFunc) {
		if s.cfg.Auth != nil {
			s.cfg.Auth.Guard(method, "/v1"+path, n)
		}
		v1.Handle(method, path, h)
	}
	get := func(path string, h gin.HandlerFunc) { add(http.MethodGet, path, api.HandlerChecks, h) }
	put := func(path string, h gin.HandlerFunc) { add(http.MethodPut, path, api.HandlerChecks, h) }
	add(http.MethodGet, "/status/leader", api.OpenRoute, s.statusLeader)
	add(http.MethodGet, "/status/peers", api.OpenRoute, s.statusPeers)
	add(http.MethodGet, "/agent/self", api.AnyTokenRoute, s.agentSelf)
	add(http.MethodGet, "/catalog/datacenters", api.AnyTokenRoute, s.catalogDatacenters)

	get("/agent/services", s.agentServices)
	put("/agent/service/register", s.agentRegister)
	put("/agent/service/deregister/:id", s.agentDeregister)
	put("/agent/service/maintenance/:id", s.agentMaintenance)
	put("/agent/check/pass/*check", s.checkTTL("passing"))
	put("/agent/check/warn/*check", s.checkTTL("warning"))
	put("/agent/check/fail/*check", s.checkTTL("critical"))
	put("/agent/check/update/*check", s.checkTTL(""))

	get("/catalog/services", s.catalogServices)
	get("/catalog/service/:svc", s.catalogService)
	get("/catalog/nodes", s.catalogNodes)
	get("/catalog/node/:node", s.catalogNode)

	get("/health/service/:svc", s.healthService)
	get("/health/checks/:svc", s.healthChecks)
	get("/health/state/:state", s.healthState)
}

// allowed reports whether the caller may have access on svc in ns (what a
// list shows).
func (s *Server) allowed(c *gin.Context, access store.Access, ns, svc string) bool {
	return s.cfg.Auth == nil || s.cfg.Auth.Allowed(c, access, ns, svc)
}

// authorize answers 401/403 and returns false unless the caller may have
// access on svc in ns.
func (s *Server) authorize(c *gin.Context, access store.Access, ns, svc string) bool {
	if s.cfg.Auth == nil {
		return true
	}
	if err := s.cfg.Auth.Authorize(c, access, ns, svc); err != nil {
		s.fail(c, err)
		return false
	}
	remember(c, authzCheck{access: access, ns: ns, svc: svc})
	return true
}

// checkSome returns the denial unless the caller may have access on some
// service of ns, and remembers the check for blocking reads (recheck).
func (s *Server) checkSome(c *gin.Context, access store.Access, ns string) error {
	if s.cfg.Auth == nil {
		return nil
	}
	if !s.cfg.Auth.AllowedSome(c, access, ns) {
		return s.cfg.Auth.Authorize(c, access, ns, "")
	}
	remember(c, authzCheck{access: access, ns: ns, some: true})
	return nil
}

// namespaceFor reads the request's namespace (see namespace) and checks
// that the caller may have access on some service of it, answering the
// error itself when not.
func (s *Server) namespaceFor(c *gin.Context, access store.Access) (string, bool) {
	ns, err := s.namespace(c)
	if err == nil && access > store.AccessRead {
		err = s.checkSome(c, access, ns)
	}
	if err != nil {
		s.fail(c, err)
		return "", false
	}
	return ns, true
}

// readableServices lists the services of ns the caller may read.
func (s *Server) readableServices(c *gin.Context, ns string) (*store.NamespaceView, []*store.ServiceView, error) {
	nv, svcs, err := s.cat.Services(ns)
	if err != nil || s.cfg.Auth == nil {
		return nv, svcs, err
	}
	out := make([]*store.ServiceView, 0, len(svcs))
	for _, sv := range svcs {
		if s.allowed(c, store.AccessRead, ns, sv.Service.Name) {
			out = append(out, sv)
		}
	}
	return nv, out, nil
}

// Consul answers errors in plain text.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &httpError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) error {
	return &httpError{http.StatusNotFound, fmt.Sprintf(format, args...)}
}

// fail answers an error as Consul does, in plain text: the one place this
// dialect maps errors to statuses.
func (s *Server) fail(c *gin.Context, err error) {
	status := http.StatusInternalServerError
	var he *httpError
	var denied *api.DeniedError
	switch {
	case errors.As(err, &he):
		status = he.status
	case errors.As(err, &denied):
		status = denied.Status
	case errors.Is(err, store.ErrInvalid), errors.Is(err, check.ErrTargetDenied), errors.Is(err, check.ErrIntervalTooShort),
		errors.Is(err, catalog.ErrNotEphemeral):
		status = http.StatusBadRequest
	case errors.Is(err, api.ErrBodyTooLarge):
		status = http.StatusRequestEntityTooLarge
	case errors.Is(err, store.ErrNamespaceNotFound), errors.Is(err, store.ErrServiceNotFound), errors.Is(err, store.ErrInstanceNotFound):
		status = http.StatusNotFound
	case errors.Is(err, catalog.ErrTooManyInstances), errors.Is(err, store.ErrConflict):
		status = http.StatusConflict
	case errors.Is(err, catalog.ErrNotReady), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		status = http.StatusServiceUnavailable
	}
	if status == http.StatusInternalServerError {
		s.logger.Error("consul api", "path", c.Request.URL.Path, "err", err)
	}
	if status == http.StatusServiceUnavailable {
		c.Header("Retry-After", "1")
	}
	c.Data(status, "text/plain; charset=utf-8", []byte(err.Error()))
	c.Abort()
}

// namespace is ?ns= or the configured one; it must exist.
func (s *Server) namespace(c *gin.Context) (string, error) {
	ns := c.Query("ns")
	if ns == "" {
		ns = c.Query("namespace")
	}
	if ns == "" {
		ns = s.cfg.Namespace
	}
	if err := store.ValidateName("namespace", ns); err != nil {
		return "", badRequest("%v", err)
	}
	// Whether a namespace exists is for those who may read in it; every
	// handler that takes one needs that much.
	if err := s.checkSome(c, store.AccessRead, ns); err != nil {
		return "", err
	}
	if _, err := s.cat.Namespace(ns); err != nil {
		return "", notFound("namespace %q not found (create it with PUT /v1/namespaces/%s)", ns, ns)
	}
	return ns, nil
}

// query is the outcome of one evaluation of a read: the answer, the index
// of the views it came from, and a channel closed when they change.
type query func() (body any, index uint64, changed <-chan struct{}, err error)

// read answers a read with Consul's blocking semantics: with ?index=N it
// waits (up to ?wait=, default 5 min, at most 10) until the answer's
// X-Consul-Index moves past N. The index moves only when the answer's
// bytes change (see indexFor), so a watcher of one service is not woken by
// another's changes.
func (s *Server) read(c *gin.Context, key string, q query) {
	if err := s.cat.Ready(); err != nil {
		s.fail(c, err)
		return
	}
	if _, ok := c.GetQuery("consistent"); ok {
		if err := s.cat.ConsistentRead(c.Request.Context()); err != nil {
			s.fail(c, &httpError{http.StatusInternalServerError, "No cluster leader: " + err.Error()})
			return
		}
	}
	var minIndex uint64
	if v := c.Query("index"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			s.fail(c, badRequest("Invalid index: %q is not a non-negative integer", v))
			return
		}
		minIndex = n
	}
	wait := s.cfg.DefaultWait
	if v := c.Query("wait"); v != "" {
		d, err := parseWait(v)
		if err != nil {
			s.fail(c, badRequest("Invalid wait time: %q (use 30s, 5m...)", v))
			return
		}
		if d > 0 { // Consul: 0 means the default
			wait = min(d, s.cfg.MaxWait)
		}
	}
	ctx := c.Request.Context()
	if minIndex > 0 {
		if s.cfg.Blocking != nil {
			var done func()
			var ok bool
			if ctx, done, ok = s.cfg.Blocking(c, wait); !ok {
				return
			}
			defer done()
		} else {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, wait)
			defer cancel()
			defer context.AfterFunc(s.closing, cancel)()
		}
	}
	// The catalog's one long-poll loop, with Consul's index rule inside the
	// query: the index of an answer is the one its bytes were first seen
	// at (indexFor), so a watcher wakes only when its answer changes.
	var (
		body []byte
		idx  uint64
	)
	woken := false
	_, err := s.cat.Wait(ctx, minIndex, func() (uint64, <-chan struct{}, error) {
		// Each run after the first follows a wake-up: the token may have
		// been revoked or narrowed meanwhile.
		if woken {
			if err := s.recheck(c); err != nil {
				return 0, nil, err
			}
		}
		woken = true
		for stale := 0; ; stale++ {
			ans, vidx, changed, err := q()
			if err != nil {
				return 0, nil, err
			}
			b, err := json.Marshal(ans)
			if err != nil {
				return 0, nil, err
			}
			var current bool
			idx, current = s.indexFor(key, b, vidx)
			if !current {
				// Built from views older than an answer already indexed:
				// build it again. Views only move forward, unless a restore
				// moved them back: then forget the remembered answer.
				if stale >= 3 {
					s.forget(key)
				}
				continue
			}
			body = b
			// Consul waits until the index passes ?index=, even one this
			// server never gave (from another cluster, or made up): unlike
			// the native rule, a lower index is no reason to answer early.
			return max(idx, minIndex), changed, nil
		}
	})
	if err == nil && minIndex > 0 {
		err = s.recheck(c) // the wait may have ended by its time
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	s.headers(c, idx)
	c.Data(http.StatusOK, "application/json", body)
}

func (s *Server) headers(c *gin.Context, idx uint64) {
	known, last := s.node.Staleness()
	h := c.Writer.Header()
	h.Set("X-Consul-Index", strconv.FormatUint(max(idx, 1), 10))
	h.Set("X-Consul-KnownLeader", strconv.FormatBool(known))
	h.Set("X-Consul-LastContact", strconv.FormatInt(last.Milliseconds(), 10))
	h.Set("X-Consul-Effective-Consistency", "stale")
}

// parseWait takes Go durations and Consul's bare seconds ("30").
func parseWait(v string) (time.Duration, error) {
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("bad wait %q", v)
	}
	return d, nil
}

func (s *Server) forget(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answers.delete(key)
}

// indexFor gives an answer its X-Consul-Index: the index of the views it
// was built from when its bytes first appeared, and the same index for as
// long as the bytes stay the same. Answers are remembered by key (the
// normalised query, see cacheKey) within a bound in bytes; a forgotten one
// gets its views' current index, which is never lower than before, so the
// index never goes backwards.
//
// current is false when the answer was built from views older than the
// ones of the answer remembered (a request that raced a newer one): the
// caller builds it again.
func (s *Server) indexFor(key string, b []byte, viewIndex uint64) (index uint64, current bool) {
	h := fnv.New64a()
	h.Write(b)
	sum := h.Sum64()
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.answers.get(key)
	if ok && viewIndex < a.view {
		return 0, false
	}
	if ok && a.hash == sum {
		return a.index, true
	}
	idx := max(viewIndex, 1)
	if ok && a.index >= idx {
		idx = a.index + 1
	}
	s.answers.put(key, answerIndex{hash: sum, index: idx, view: viewIndex})
	return idx, true
}
