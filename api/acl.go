package api

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/switchyard-io/switchyard/store"
)

// Access control. Every route declares what it needs (a Need) when it is
// added; one middleware resolves the caller's token and checks the need
// before any handler runs. A route added without a need is refused to
// everyone while access control is on, so forgetting one fails closed.

// Scope says where a route's access applies.
type Scope uint8

// Scopes of a Need.
const (
	// ScopeOpen needs no token: health, the leader and the servers.
	ScopeOpen Scope = iota + 1
	// ScopeAnyToken needs a valid token, whatever its rules.
	ScopeAnyToken
	// ScopeCluster needs the access on every namespace ("*" rules).
	ScopeCluster
	// ScopeNamespace needs the access on the namespace of the path, all of
	// its services.
	ScopeNamespace
	// ScopeService needs the access on the service of the path.
	ScopeService
	// ScopeSomeInNamespace needs the access on at least one service of the
	// path's namespace; the handler shows only what the token may read.
	ScopeSomeInNamespace
	// ScopeSome needs the access somewhere; the handler filters.
	ScopeSome
	// ScopeHandler leaves the check to the handler, which knows the
	// namespace and service only once it has read the request (Consul's
	// endpoints): it calls Server.Authorize.
	ScopeHandler
)

// Need is what a route requires of the caller's token.
type Need struct {
	Access store.Access
	Scope  Scope
}

// Needs of the routes.
var (
	open          = Need{Scope: ScopeOpen}
	anyToken      = Need{Scope: ScopeAnyToken}
	clusterRead   = Need{store.AccessRead, ScopeCluster}
	clusterAdmin  = Need{store.AccessAdmin, ScopeCluster}
	nsRead        = Need{store.AccessRead, ScopeSomeInNamespace}
	nsAdmin       = Need{store.AccessAdmin, ScopeNamespace}
	svcRead       = Need{store.AccessRead, ScopeService}
	svcWrite      = Need{store.AccessWrite, ScopeService}
	svcAdmin      = Need{store.AccessAdmin, ScopeService}
	someRead      = Need{store.AccessRead, ScopeSome}
	handlerDecide = Need{Scope: ScopeHandler}
)

// Headers that carry a token. X-Consul-Token is read too, for Consul's
// clients.
const (
	HeaderToken       = "X-Switchyard-Token"
	headerConsulToken = "X-Consul-Token"
	// HeaderTokenUnknown marks an answer to an unknown token on a route
	// the anonymous token may call: it was answered as anonymous.
	HeaderTokenUnknown = "X-Switchyard-Token-Unknown"
)

const ctxCaller = "switchyard.caller"

// caller is who made a request, resolved once by the middleware.
type caller struct {
	token     *store.Token // nil: an unknown token was presented
	presented bool         // a token came with the request
	// unknown: the token presented is not known; token is then the
	// anonymous one on routes it may call (see anonymousMeets).
	unknown bool
}

// accessor names the caller in the audit log.
func (k *caller) accessor() string {
	switch {
	case k == nil:
		return ""
	case k.unknown:
		return "unknown"
	case k.token != nil:
		return k.token.AccessorID
	case k.presented:
		return "unknown"
	}
	return store.AnonymousAccessor
}

// DeniedError is a request refused by access control: 401 when no valid
// token came with it, 403 when the token lacks the access.
type DeniedError struct {
	Status int
	Msg    string
}

func (e *DeniedError) Error() string { return e.Msg }

// SecretPrefix starts every token secret, so that secret scanners and
// people recognise one.
const SecretPrefix = "swy_"

// NewSecret returns a fresh token secret: the prefix and 256 random bits.
func NewSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return SecretPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// NewAccessor returns a fresh accessor id: 128 random bits in hex.
func NewAccessor() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// HashSecret is what the catalog keeps of a secret.
func HashSecret(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// CheckSecret refuses secrets an operator must not use: empty, short, or
// a placeholder from documentation.
func CheckSecret(secret string) error {
	s := strings.TrimSpace(secret)
	if s == "" {
		return errors.New("the token secret is empty")
	}
	if len(s) < 32 {
		return fmt.Errorf("the token secret has %d characters; use at least 32 random ones (registry token secret makes one)", len(s))
	}
	low := strings.ToLower(s)
	for _, bad := range []string{"example", "changeme", "change-me", "placeholder", "secret", "password", "xxxxxxxx", "00000000", "your-token"} {
		if strings.Contains(low, bad) {
			return fmt.Errorf("the token secret looks like a placeholder (it contains %q); use a random one (registry token secret makes one)", bad)
		}
	}
	distinct := map[rune]bool{}
	for _, r := range s {
		distinct[r] = true
	}
	if len(distinct) < 10 {
		return errors.New("the token secret repeats too few characters to be random; use a random one (registry token secret makes one)")
	}
	return nil
}

// TokenSecret reads the secret a request carries, if any.
func TokenSecret(r *http.Request) string {
	if v := r.Header.Get(HeaderToken); v != "" {
		return strings.TrimSpace(v)
	}
	if v := r.Header.Get("Authorization"); v != "" {
		if scheme, rest, ok := strings.Cut(v, " "); ok && strings.EqualFold(scheme, "bearer") {
			return strings.TrimSpace(rest)
		}
	}
	return strings.TrimSpace(r.Header.Get(headerConsulToken))
}

// routeKey names a route by its method and path template (c.FullPath()); a
// struct key, so that looking a request's route up allocates nothing.
type routeKey struct{ method, path string }

func routeOf(c *gin.Context) routeKey { return routeKey{c.Request.Method, c.FullPath()} }

// need records what the route method path needs; routes are added through
// the helpers below, which call it.
func (s *Server) need(method, path string, n Need) {
	s.needs[routeKey{method, path}] = n
}

// Guard records what a route added through Extend needs. Without it the
// route is refused to everyone while access control is on.
func (s *Server) Guard(method, path string, n Need) { s.need(method, path, n) }

// HandlerChecks is the Need of a route whose handler calls Authorize.
var HandlerChecks = handlerDecide

// OpenRoute is the Need of a route anyone may call.
var OpenRoute = open

// AnyTokenRoute is the Need of a route any valid token may call.
var AnyTokenRoute = anyToken

// Accessor names the caller's token for logs and per-token caches: its
// accessor, "anonymous", or "unknown"; "" while access control is off.
func (s *Server) Accessor(c *gin.Context) string {
	if !s.cfg.AccessControl {
		return ""
	}
	return s.resolve(c).accessor()
}

// seesProbeDetail reports whether the caller may read health checks'
// full output: admins of the whole cluster, and everyone while access
// control is off.
func (s *Server) seesProbeDetail(c *gin.Context) bool {
	if !s.cfg.AccessControl {
		return true
	}
	return s.resolve(c).token.Allows(store.AccessAdmin, "", "")
}

// resolve finds the caller of a request, once.
func (s *Server) resolve(c *gin.Context) *caller {
	if v, ok := c.Get(ctxCaller); ok {
		return v.(*caller)
	}
	return s.resolveNow(c)
}

// resolveNow looks the caller's token up again (after a blocking wait, its
// rules may have changed or it may be gone).
func (s *Server) resolveNow(c *gin.Context) *caller {
	k := &caller{}
	if secret := TokenSecret(c.Request); secret != "" {
		k.presented = true
		hash := HashSecret(secret)
		k.token = s.node.Store().TokenBySecretHash(hash)
		if k.token == nil && s.cfg.AccessControl {
			if s.anonymousMeets(c) {
				// What anyone may have costs the leader nothing.
				k.token, k.unknown = s.node.Store().Anonymous(), true
				c.Header(HeaderTokenUnknown, "answered as anonymous")
			} else if s.catchUp.wait(c.Request.Context(), time.Now(), s.node.ConsistentRead) == nil {
				// A token made an instant ago on the leader may not have
				// reached this replica yet (see tokenCatchUp).
				k.token = s.node.Store().TokenBySecretHash(hash)
			}
			k.unknown = k.unknown || k.token == nil
		}
	} else {
		k.token = s.node.Store().Anonymous()
	}
	c.Set(ctxCaller, k)
	return k
}

// authorize is the access-control middleware.
func (s *Server) authorize(c *gin.Context) {
	if !s.cfg.AccessControl {
		return
	}
	r := routeOf(c)
	if r.path == "" {
		return // no such endpoint: 404 or 405 follows
	}
	// A route without a Need has the zero one, which checkNeed refuses.
	if err := s.checkNeed(c, s.resolve(c), s.needs[r]); err != nil {
		s.fail(c, err)
	}
}

// Refresh looks the caller's token up again and checks the route's need
// with what it holds now: a blocking query calls it after its wait, so a
// token revoked or narrowed meanwhile gets no answer. Handlers whose route
// is HandlerChecks check again themselves (with Authorize, which then sees
// the fresh token). Nil while access control is off.
func (s *Server) Refresh(c *gin.Context) error {
	if !s.cfg.AccessControl {
		return nil
	}
	k := s.resolveNow(c)
	return s.checkNeed(c, k, s.needs[routeOf(c)])
}

// checkNeed returns nil if caller k meets need n on this request's path.
func (s *Server) checkNeed(c *gin.Context, k *caller, n Need) error {
	var err error
	switch n.Scope {
	case ScopeOpen, ScopeHandler:
		return nil
	case ScopeAnyToken:
		if k.token == nil || (!k.presented && len(k.token.Rules) == 0) {
			err = s.denied(k, "call "+c.FullPath())
		}
	case ScopeCluster:
		err = s.check(k, n.Access, "", "")
	case ScopeNamespace:
		err = s.check(k, n.Access, c.Param("ns"), "")
	case ScopeService:
		err = s.check(k, n.Access, c.Param("ns"), c.Param("svc"))
	case ScopeSomeInNamespace:
		if !k.token.AllowsSome(n.Access, c.Param("ns")) {
			err = s.denied(k, fmt.Sprintf("%s any service of namespace %q (needs a rule like %s:%s)", n.Access, c.Param("ns"), n.Access, c.Param("ns")))
		}
	case ScopeSome:
		if !k.token.AllowsSome(n.Access, "") {
			err = s.denied(k, fmt.Sprintf("%s anything (needs at least one %s rule)", n.Access, n.Access))
		}
	default:
		err = &DeniedError{http.StatusForbidden, fmt.Sprintf("%s %s has no access rule; no token may call it", c.Request.Method, c.FullPath())}
	}
	return err
}

// check returns nil if the caller may have access on service svc of
// namespace ns ("" for the namespace itself; ns "" for the whole cluster),
// or the error to answer.
func (s *Server) check(k *caller, access store.Access, ns, svc string) error {
	if k.token.Allows(access, ns, svc) {
		return nil
	}
	var what, rule string
	switch {
	case ns == "":
		what, rule = "the cluster", access.String()+":*"
	case svc == "":
		what, rule = fmt.Sprintf("namespace %q", ns), access.String()+":"+ns
	default:
		what, rule = fmt.Sprintf("service %s/%s", ns, svc), fmt.Sprintf("%s:%s/%s", access, ns, svc)
	}
	return s.denied(k, fmt.Sprintf("%s %s (needs a rule like %s)", access, what, rule))
}

func (s *Server) denied(k *caller, what string) error {
	switch {
	case k.unknown || (k.presented && k.token == nil):
		return &DeniedError{http.StatusUnauthorized, "the token is not known to this cluster (mistyped, revoked, or from another cluster)"}
	case !k.presented:
		return &DeniedError{http.StatusUnauthorized, fmt.Sprintf("a token is needed to %s: send it in the %s header or as Authorization: Bearer", what, HeaderToken)}
	}
	return &DeniedError{http.StatusForbidden, fmt.Sprintf("token %s may not %s", k.token.AccessorID, what)}
}

// Authorize checks, for a handler whose route is HandlerChecks, that the
// caller may have access on service svc of namespace ns (svc "": the
// namespace; ns "": the cluster). It returns a *DeniedError to answer, or
// nil; always nil while access control is off.
func (s *Server) Authorize(c *gin.Context, access store.Access, ns, svc string) error {
	if !s.cfg.AccessControl {
		return nil
	}
	return s.check(s.resolve(c), access, ns, svc)
}

// Allowed reports whether the caller may have access on svc in ns: what a
// list shows. Always true while access control is off.
func (s *Server) Allowed(c *gin.Context, access store.Access, ns, svc string) bool {
	return !s.cfg.AccessControl || s.resolve(c).token.Allows(access, ns, svc)
}

// AllowedSome reports whether the caller may have access on some service
// of ns (ns "": of any namespace).
func (s *Server) AllowedSome(c *gin.Context, access store.Access, ns string) bool {
	if !s.cfg.AccessControl {
		return true
	}
	k := s.resolve(c)
	return k.token.AllowsSome(access, ns)
}
